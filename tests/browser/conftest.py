"""Real Chromium (Debian's package) driven by Playwright."""

import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str | None:
    return os.environ.get("SCALP_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
def page(monkeypatch):
    """A fresh Chromium page at 1280×800, for one test."""
    yield from _chromium_page(monkeypatch, width=1280, height=800)


@pytest.fixture
def phone(monkeypatch):
    """A fresh Chromium page at a phone's width (390×844, an iPhone 12–15), touch enabled."""
    yield from _chromium_page(monkeypatch, width=390, height=844, has_touch=True)


def _chromium_page(monkeypatch, *, width: int, height: int, **options):
    """A fresh Chromium page of that size.

    Playwright's sync API keeps an event loop running in this thread while it is alive, so
    Django's async-context guard is lifted for exactly that window (the tests' ORM calls are
    plain synchronous setup); the browser is gone before the database is flushed.
    """
    path = chromium_path()
    if path is None:
        pytest.fail("Debian chromium is not installed: run `make test` (it installs it).")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        yield context.new_page()
        context.close()
        browser.close()

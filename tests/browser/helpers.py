"""Shared steps of the browser tests."""

from django.contrib.auth import get_user_model

USER, PASSWORD = "trader", "s3cret-pass-123"


def log_in(page, base: str, path: str = "/") -> None:
    """Create the trader and log in through the form, landing on ``path``."""
    get_user_model().objects.create_user(USER, "", PASSWORD)
    page.goto(f"{base}{path}")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")

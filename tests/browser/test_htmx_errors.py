"""No htmx request fails silently: the size check of the builder's CSV before it is sent, and
the page's alert for an error answer (the 413 of the body limits) or no answer at all."""

import re

import pytest
from playwright.sync_api import expect

from rules.models import Rule
from scalpsite.limits import DEFAULT, UPLOAD
from tests.browser.helpers import log_in

pytestmark = pytest.mark.browser

PREVIEW_PATH = "/rules/builder/preview/"
MB = 1024 * 1024


def write_bars(path, count: int = 10):
    lines = ["time,open,high,low,close,volume"]
    lines += [f"{1_700_000_000 + i * 5},100,100,100,{100 + i % 3},100" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_big_csv(path, size: int):
    """A CSV file of exactly ``size`` bytes (its content never matters: it is too large)."""
    header = b"time,open,high,low,close,volume\n"
    path.write_bytes(header + b"1700000000,1,1,1,1,1\n" * ((size - len(header)) // 21 + 1))
    with path.open("r+b") as file:
        file.truncate(size)
    return path


def preview_posts(page) -> list[str]:
    """The POSTs of the page to the preview endpoint, as they are sent."""
    posts: list[str] = []
    page.on(
        "request",
        lambda request: (
            posts.append(request.url)
            if request.method == "POST" and request.url.endswith(PREVIEW_PATH)
            else None
        ),
    )
    return posts


def test_a_csv_over_5_mb_is_refused_before_it_is_sent(live_daphne, page, tmp_path, artifacts_dir):
    log_in(page, live_daphne, "/rules/new/")
    posts = preview_posts(page)
    file_field = page.get_by_label("CSV file of bars (up to 5 MB)")
    file_field.set_input_files(write_big_csv(tmp_path / "bars.csv", 6 * MB))
    expect(page.get_by_label("CSV file", exact=True)).to_be_checked()

    page.get_by_role("button", name="Preview").click()
    sentence = page.locator("#err-csv-size")
    expect(sentence).to_have_text(
        "The file is 6.0 MB, over the preview's 5 MB limit; cut it to the bars you want to see."
    )
    expect(sentence).to_be_visible()
    expect(file_field).to_have_attribute("aria-invalid", "true")
    expect(file_field).to_have_attribute("aria-describedby", "err-csv-size")
    expect(file_field).to_be_focused()
    expect(page.get_by_role("alert")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "rules-preview-csv-too-large.png")

    # A file that fits is previewed. The builder's requests go one after the other (hx-sync
    # queue), so had the large file's preview been sent it would be in `posts` first.
    file_field.set_input_files(write_bars(tmp_path / "small.csv"))
    expect(sentence).to_be_empty()
    expect(sentence).to_be_hidden()
    expect(file_field).not_to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview-summary")).to_contain_text(re.compile(r"over 10 bars"))
    assert posts == [f"{live_daphne}{PREVIEW_PATH}"]


def test_save_leaves_a_csv_over_5_mb_behind(live_daphne, page, tmp_path):
    """Save never reads the preview's file: it saves the rule without sending a file too large
    for the server to take."""
    log_in(page, live_daphne, "/rules/new/")
    page.get_by_label("Name").fill("Saved with a big file chosen")
    file_field = page.get_by_label("CSV file of bars (up to 5 MB)")
    file_field.set_input_files(write_big_csv(tmp_path / "bars.csv", 6 * MB))
    expect(page.locator("#err-csv-size")).to_contain_text("The file is 6.0 MB")
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url(f"{live_daphne}/rules/")
    expect(page.get_by_role("status")).to_contain_text("Created the rule")
    assert Rule.objects.filter(name="Saved with a big file chosen").exists()


def test_a_refused_htmx_request_shows_the_servers_sentence(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/rules/new/")
    # Past the browser's checks: an htmx request with a body over the 1 MB limit of this path.
    page.evaluate(
        """size => htmx.ajax("POST", "/watchlists/new/",
                             {values: {symbols: "x".repeat(size)}, swap: "none"})""",
        DEFAULT.size + 100_000,
    )
    alert = page.get_by_role("alert")
    expect(alert).to_have_count(1, timeout=20_000)
    expect(alert).to_contain_text(DEFAULT.sentence)
    expect(alert).to_be_in_viewport()
    page.screenshot(path=artifacts_dir / "htmx-error-alert.png")
    alert.get_by_role("button", name="Dismiss").click()
    expect(page.get_by_role("alert")).to_have_count(0)


def test_the_builders_preview_refused_by_the_server_is_not_silent(live_daphne, page, tmp_path):
    """Without the browser's size check, the server's 413 (or the cut connection) shows."""
    log_in(page, live_daphne, "/rules/new/")
    page.evaluate(
        "document.querySelectorAll('[data-max-upload-mb]')"
        ".forEach(el => el.removeAttribute('data-max-upload-mb'))"
    )
    posts = preview_posts(page)
    file_field = page.get_by_label("CSV file of bars (up to 5 MB)")
    file_field.set_input_files(write_big_csv(tmp_path / "bars.csv", 6 * MB))
    page.get_by_role("button", name="Preview").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_count(1, timeout=20_000)
    # Chromium reads the 413 while it still sends; were the connection cut first, the alert
    # would say so instead: either way the trader is told.
    expect(alert).to_contain_text(
        re.compile(f"{re.escape(UPLOAD.sentence)}|could not reach the server")
    )
    assert posts == [f"{live_daphne}{PREVIEW_PATH}"]


def test_an_html_error_or_no_answer_gets_a_sentence_of_its_own(live_daphne, page):
    log_in(page, live_daphne, "/rules/new/")
    alert = page.get_by_role("alert")

    page.route(
        f"**{PREVIEW_PATH}",
        lambda route: route.fulfill(
            status=500, content_type="text/html", body="<h1>Server Error</h1><p>boom</p>"
        ),
    )
    page.get_by_role("button", name="Preview").click()
    expect(alert).to_have_text(re.compile(r"\(500\)"))
    expect(alert).not_to_contain_text("boom")

    # A short plain-text answer is shown as text, never as markup.
    page.unroute(f"**{PREVIEW_PATH}")
    page.route(
        f"**{PREVIEW_PATH}",
        lambda route: route.fulfill(
            status=409, content_type="text/plain", body="<b>Stop the engine</b> first."
        ),
    )
    page.get_by_role("button", name="Preview").click()
    expect(alert).to_contain_text("<b>Stop the engine</b> first.")
    expect(alert.locator("b")).to_have_count(0)

    page.unroute(f"**{PREVIEW_PATH}")
    page.route(f"**{PREVIEW_PATH}", lambda route: route.abort("connectionrefused"))
    page.get_by_role("button", name="Preview").click()
    expect(alert).to_contain_text("could not reach the server")
    expect(alert).to_have_count(1)

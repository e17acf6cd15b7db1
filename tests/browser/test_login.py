"""Log in through real Chromium against a real Daphne."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.browser


def test_login_and_dashboard(live_daphne, page, artifacts_dir):
    get_user_model().objects.create_superuser("trader", "", "s3cret-pass-123")
    page.goto(f"{live_daphne}/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", "trader")
    page.fill("input[name=password]", "not it")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").is_visible()
    page.screenshot(path=artifacts_dir / "login-error.png")
    page.fill("input[name=password]", "s3cret-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_daphne}/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.get_by_text("PRICE > MA5 AND MA5 > MA10").is_visible()
    page.screenshot(path=artifacts_dir / "dashboard.png", full_page=True)

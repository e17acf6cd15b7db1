"""The Settings page through Django's test client: save (and its refusals), the IB connection
test against the fake TWS, the consumer token (show, rotate), the example client command,
locks while the engine runs, CSRF and login."""

from __future__ import annotations

import html
import re
import shlex
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from engine.models import AppSettings
from engine.services import settings_get
from rules.services import rule_set_active
from tests.conftest import ROOT, free_port
from tests.factories import make_rule, make_running_engine
from watchlists.models import Watchlist

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
PAGE = "/settings/"
TEST_URL = "/settings/test-connection/"
ROTATE_URL = "/settings/rotate-token/"
LOCKED = "The engine is running: stop it before changing the connection, feed or bar size."


@pytest.fixture
def user():
    return get_user_model().objects.create_user("trader", "", "s3cret-pass-123")


@pytest.fixture
def client(user) -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def connection_result(page: str) -> tuple[str, bool, str]:
    """(classes, ok, sentence) of the connection test's result box."""
    match = re.search(r'<p class="([^"]*)"\s+data-ok="(true|false)">(.*?)</p>', page, re.S)
    assert match, "no connection test result"
    return match[1], match[2] == "true", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match[3]))


def text(resp) -> str:
    return html.unescape(resp.content.decode())


def slot(page: str, field: str) -> str:
    match = re.search(rf'<p id="err-{field}"[^>]*>(.*?)</p>', page, re.S)
    assert match, f"no error slot for {field}"
    return match[1].strip()


def form_data(**changes) -> dict:
    data = {
        "ib_host": "127.0.0.1",
        "ib_port": "7497",
        "ib_client_id": "17",
        "feed": "demo",
        "csv_path": "",
        "bar_seconds": "5",
    }
    data.update(changes)
    return data


def stored() -> dict:
    s = settings_get()
    return {f: getattr(s, f) for f in ("ib_host", "ib_port", "ib_client_id", "feed", "bar_seconds")}


# The page


def test_page_shows_the_settings_and_the_masked_token(client):
    settings_get()
    AppSettings.objects.filter(pk=1).update(ib_host="10.0.0.5", ib_port=4002, ib_client_id=23)
    token = settings_get().feed_token
    resp = client.get(PAGE)
    assert resp.status_code == 200
    page = resp.content.decode()
    assert re.search(r'name="ib_host" id="id_ib_host" value="10.0.0.5"', page)
    assert re.search(r'name="ib_port" id="id_ib_port" value="4002"', page)
    assert re.search(r'name="ib_client_id" id="id_ib_client_id" value="23"', page)
    assert re.search(r'name="feed" value="demo" id="[^"]+" class="[^"]+" checked', page)
    assert re.search(r'name="bar_seconds" value="5" id="[^"]+" class="[^"]+" checked', page)
    # The token is masked until revealed; the command's copy shows it masked too.
    token_input = re.search(r'<input id="feed-token-value"[^>]*>', page)[0]
    assert 'type="password"' in token_input and f'value="{token}"' in token_input
    command = re.search(r'data-testid="consumer-command"><code>(.*?)</code>', page, re.S)[1]
    assert re.search(
        rf"<span data-token-mask>•+</span><span data-token hidden>{token}</span>", command
    )
    # The paper and live ports are offered.
    for port in ("7497", "7496", "4002", "4001"):
        assert f'<option value="{port}"' in page


def test_example_client_command_is_ready_to_paste(client):
    token = settings_get().feed_token
    page = text(client.get(PAGE))
    copy_values = re.findall(r'data-copy="([^"]+)"', page)
    command = next(c for c in copy_values if c.startswith("python examples/signal_consumer.py"))
    assert command == (
        f"python examples/signal_consumer.py --url ws://localhost/ws/signals/ --token {token}"
    )
    assert token in copy_values
    curl = next(c for c in copy_values if c.startswith("curl"))
    assert curl == (
        f"curl -H 'Authorization: Bearer {token}' 'http://localhost/api/signals/?since=0'"
    )
    # Every option the command uses is one the example client accepts.
    argv = shlex.split(command)
    help_text = subprocess.run(
        [sys.executable, argv[1], "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for option in (a for a in argv if a.startswith("--")):
        assert option in help_text


def test_example_command_follows_the_host_and_port_of_the_request(user):
    client = Client(HTTP_HOST="127.0.0.1:8123")
    client.force_login(user)
    page = text(client.get(PAGE))
    assert "--url ws://127.0.0.1:8123/ws/signals/ --token" in page


def test_login_is_required():
    anon = Client(HTTP_HOST="localhost")
    before = settings_get().feed_token
    for method, path in (("get", PAGE), ("post", PAGE), ("post", TEST_URL), ("post", ROTATE_URL),
                         ("get", ROTATE_URL)):  # fmt: skip
        resp = getattr(anon, method)(path, form_data(ib_port="4001"))
        assert resp.status_code == 302, path
        assert resp["Location"].startswith("/accounts/login/"), path
    assert settings_get().feed_token == before
    assert settings_get().ib_port == 7497


def test_csrf_is_enforced(user):
    strict = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    strict.force_login(user)
    before = settings_get().feed_token
    assert strict.post(PAGE, form_data(ib_port="4001")).status_code == 403
    assert strict.post(ROTATE_URL, headers=HX).status_code == 403
    assert strict.post(TEST_URL, form_data(), headers=HX).status_code == 403
    assert settings_get().feed_token == before
    assert settings_get().ib_port == 7497
    page = strict.get(PAGE).content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page)[1]
    assert strict.post(ROTATE_URL, headers={**HX, "X-CSRFToken": token}).status_code == 200
    assert settings_get().feed_token != before


def test_env_overrides_are_pointed_out(client, monkeypatch):
    monkeypatch.setenv("SCALP_IB_PORT", "4002")
    page = text(client.get(PAGE))
    assert "SCALP_IB_PORT=4002 in the environment overrides this for the engine." in page
    assert "SCALP_IB_HOST=" not in page


# Save


def test_save_stores_the_settings(client, tmp_path):
    bars = tmp_path / "bars.csv"
    bars.write_text("time,open,high,low,close,volume\n")
    data = form_data(ib_host=" tws.local ", ib_port="4002", ib_client_id="0", feed="csv",
                     csv_path=str(bars), bar_seconds="60")  # fmt: skip
    resp = client.post(PAGE, data)
    assert resp.status_code == 302 and resp["Location"] == PAGE
    s = settings_get()
    assert (s.ib_host, s.ib_port, s.ib_client_id) == ("tws.local", 4002, 0)
    assert (s.feed, s.csv_path, s.bar_seconds) == ("csv", str(bars), 60)
    page = text(client.get(PAGE))
    assert "Settings saved: they apply the next time the engine starts." in page
    assert re.search(r'name="bar_seconds" value="60" id="[^"]+" class="[^"]+" checked', page)


@pytest.mark.parametrize(
    ("changes", "field", "sentence"),
    [
        ({"ib_port": "70000"}, "ib_port", "A port is between 1 and 65535."),
        ({"ib_port": "0"}, "ib_port", "A port is between 1 and 65535."),
        ({"ib_port": "seven"}, "ib_port", "The port is a whole number, e.g. 7497."),
        ({"ib_port": ""}, "ib_port", "Type the API port, e.g. 7497 for TWS paper trading."),
        ({"ib_host": ""}, "ib_host", "Type the host TWS / IB Gateway runs on, e.g. 127.0.0.1."),
        ({"ib_host": "my tws!"}, "ib_host",
         "“my tws!” is not a host name or IP address, e.g. 127.0.0.1 or tws.local."),
        ({"ib_client_id": "-1"}, "ib_client_id", "A client id can't be negative."),
        ({"feed": "bloomberg"}, "feed", "Choose a feed: IB, demo or CSV."),
        ({"bar_seconds": "30"}, "bar_seconds", "Choose a bar size: 5 seconds or 1 minute."),
        ({"feed": "csv"}, "csv_path",
         "The CSV feed replays a file: type the path of a CSV file of bars."),
        ({"feed": "csv", "csv_path": "/nowhere/bars.csv"}, "csv_path",
         "There is no file at /nowhere/bars.csv."),
    ],
)  # fmt: skip
def test_save_refusals_are_inline_sentences(client, changes, field, sentence):
    before = stored()
    # Every other field changes too: nothing of a refused form may be stored.
    resp = client.post(PAGE, form_data(**{"ib_port": "4001", "ib_client_id": "5", **changes}))
    assert resp.status_code == 400
    page = text(resp)
    assert slot(page, field) == sentence
    assert "The settings were not saved: fix the fields marked in red." in page
    assert stored() == before


@pytest.mark.parametrize(
    ("changes", "field", "sentence"),
    [
        (
            {"ib_port": "\u0667\u0664\u0669\u0667"},
            "ib_port",
            "The port is a whole number, e.g. 7497.",
        ),
        ({"ib_port": "7\u00b2"}, "ib_port", "The port is a whole number, e.g. 7497."),
        ({"ib_port": "9" * 5000}, "ib_port", "The port is a whole number, e.g. 7497."),
        (
            {"ib_client_id": "\uff11\uff17"},
            "ib_client_id",
            "The client id is a whole number, e.g. 17.",
        ),
    ],
)
def test_whole_numbers_are_ascii_digits(client, changes, field, sentence):
    """int() takes Arabic-Indic and full-width digits: a port typed that way is refused, not
    silently read as 7497."""
    before = stored()
    resp = client.post(PAGE, form_data(**{"ib_port": "4001", **changes}))
    assert resp.status_code == 400
    assert slot(text(resp), field) == sentence
    assert stored() == before


def test_save_is_refused_while_the_engine_runs(client):
    make_running_engine(watchlist=Watchlist.objects.get(is_active=True))
    page = text(client.get(PAGE))
    assert LOCKED in page
    assert re.search(r'<fieldset class="min-w-0 space-y-3" disabled>', page)
    before = stored()
    resp = client.post(PAGE, form_data(ib_port="4001", bar_seconds="60"))
    assert resp.status_code == 400
    errors = re.search(r'data-testid="form-errors">(.*?)</div>', text(resp), re.S)[1]
    assert LOCKED in errors
    assert stored() == before


def test_a_bar_size_an_active_rules_timeframe_does_not_fit_is_refused(client):
    """MA20@5s can't run on 1-minute bars (DESIGN §7.2): switching to them says which active
    rule is in the way; an inactive rule is not, and an unchanged bar size is not checked."""
    definition = {
        "logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": "MA20@5s"}],
        "cooldown_sec": 0, "trigger": "level",
    }  # fmt: skip
    fine = make_rule(name="Fine grain", definition=definition)
    rule_set_active(rule=fine, active=True)
    before = stored()
    resp = client.post(PAGE, form_data(bar_seconds="60", ib_port="4001"))
    assert resp.status_code == 400
    assert slot(text(resp), "bar_seconds") == (
        "The active rule “Fine grain” doesn't fit that bar size: MA20@5s is on a timeframe "
        "shorter than the run's 1m bars; use @1m or longer, or a shorter bar size. Edit or "
        "deactivate the rule on the Rules page first."
    )
    assert stored() == before
    assert client.post(PAGE, form_data(ib_port="4001")).status_code == 302  # 5 s kept: fine
    rule_set_active(rule=fine, active=False)
    assert client.post(PAGE, form_data(bar_seconds="60")).status_code == 302
    assert settings_get().bar_seconds == 60


def test_demo_feed_keeps_a_stale_csv_path(client):
    """A path only matters for the CSV feed: a stale one doesn't block other changes."""
    resp = client.post(PAGE, form_data(feed="demo", csv_path="/gone.csv", ib_port="4001"))
    assert resp.status_code == 302
    assert (settings_get().ib_port, settings_get().csv_path) == (4001, "/gone.csv")


# Test connection


def test_connection_test_reports_success_in_words(client, fake_tws):
    before = stored()
    resp = client.post(TEST_URL, form_data(ib_port=str(fake_tws.port), ib_client_id="99"),
                       headers=HX)  # fmt: skip
    assert resp.status_code == 200
    fragment = text(resp)
    assert "<html" not in fragment
    classes, ok, sentence = connection_result(fragment)
    assert ok
    assert f"Connected to TWS / IB Gateway at 127.0.0.1:{fake_tws.port}" in sentence
    assert "DU1234567 (paper trading)" in sentence
    assert "emerald" in classes and "rose" not in classes
    # Testing saves nothing.
    assert stored() == before


def test_connection_test_reports_an_unreachable_port(client):
    port = free_port()
    resp = client.post(TEST_URL, form_data(ib_port=str(port)), headers=HX)
    assert resp.status_code == 200
    classes, ok, sentence = connection_result(text(resp))
    assert not ok
    assert sentence.strip() == (
        f"✕ Can't reach TWS / IB Gateway at 127.0.0.1:{port} — is it running with the API "
        "enabled (Configure → API → Settings)?"
    )
    assert "rose" in classes and "emerald" not in classes


def test_connection_test_checks_the_fields_first(client):
    resp = client.post(TEST_URL, form_data(ib_port="99999", ib_host=""), headers=HX)
    assert resp.status_code == 200
    fragment = text(resp)
    assert "Fix the connection fields marked in red, then test again." in fragment
    # The inline slots next to the fields are replaced out of band.
    assert re.search(r'<p id="err-ib_port"[^>]*hx-swap-oob="true">A port is between 1 and 65535.',
                     fragment)  # fmt: skip
    assert slot(fragment, "ib_host") == "Type the host TWS / IB Gateway runs on, e.g. 127.0.0.1."
    assert slot(fragment, "ib_client_id") == ""


def test_connection_test_without_javascript_shows_the_page(client, fake_tws):
    resp = client.post(TEST_URL, form_data(ib_port=str(fake_tws.port), ib_client_id="98"))
    assert resp.status_code == 200
    page = text(resp)
    assert "<html" in page
    assert f"Connected to TWS / IB Gateway at 127.0.0.1:{fake_tws.port}" in page
    # What was typed (unsaved) stays in the form.
    assert re.search(rf'name="ib_port" id="id_ib_port" value="{fake_tws.port}"', page)
    assert settings_get().ib_port == 7497


# The token


def test_rotate_with_htmx_replaces_the_token_box(client):
    old = settings_get().feed_token
    resp = client.post(ROTATE_URL, headers=HX)
    assert resp.status_code == 200
    new = settings_get().feed_token
    assert new != old and len(new) >= 40
    fragment = text(resp)
    assert fragment.lstrip().startswith('<section id="feed-token"')
    assert f'value="{new}"' in fragment and old not in fragment
    assert f"--token {new}" in fragment
    assert "New token issued. Programs must use it from now on" in fragment


def test_rotate_without_javascript_confirms_first(client):
    old = settings_get().feed_token
    resp = client.get(ROTATE_URL)
    assert resp.status_code == 200
    assert "Issue a new consumer token?" in text(resp)
    assert settings_get().feed_token == old
    resp = client.post(ROTATE_URL)
    assert resp.status_code == 302 and resp["Location"] == f"{PAGE}#feed-token"
    assert settings_get().feed_token != old
    page = text(client.get(PAGE))
    assert "New token issued." in page and settings_get().feed_token in page


def test_the_old_token_is_refused_by_the_api_after_rotation(client):
    old = settings_get().feed_token
    api = Client(HTTP_HOST="localhost")
    assert api.get("/api/signals/", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    client.post(ROTATE_URL, headers=HX)
    assert api.get("/api/signals/", headers={"Authorization": f"Bearer {old}"}).status_code in (
        401,
        403,
    )
    new = settings_get().feed_token
    assert api.get("/api/signals/", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_methods(client):
    assert client.get(TEST_URL).status_code == 405
    assert client.put(PAGE).status_code == 405
    assert reverse("engine:settings") == PAGE


# Instruments: regular trading hours only, the futures roll window (DESIGN §7.1)


def test_rth_and_roll_window_are_saved_and_reach_the_ib_feed_config(client):
    resp = client.post(PAGE, form_data(use_rth="on", roll_days="8"))
    assert resp.status_code == 302
    app_settings = settings_get()
    assert (app_settings.use_rth, app_settings.roll_days) == (True, 8)
    page = text(client.get(PAGE))
    assert re.search(r'name="use_rth" id="id_use_rth" class="[^"]+" checked', page)
    assert re.search(r'name="roll_days" id="id_roll_days" value="8"', page)
    from engine.worker.config import ib_connection

    config = ib_connection(app_settings)
    assert (config["use_rth"], config["roll_days"]) == (True, 8)
    # Unticked and left empty: all hours, the default window.
    assert client.post(PAGE, form_data(roll_days="")).status_code == 302
    assert (settings_get().use_rth, settings_get().roll_days) == (False, 5)


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        ("31", "The roll window is at most 30 days."),
        ("-1", "The roll window can't be negative."),
        ("٥", "The roll window is a whole number of days, e.g. 5."),
        ("5" * 5000, "The roll window is a whole number of days, e.g. 5."),
    ],
)
def test_a_bad_roll_window_is_refused_with_a_sentence(client, raw, sentence):
    before = settings_get().roll_days
    page = text(client.post(PAGE, form_data(roll_days=raw)))
    assert slot(page, "roll_days") == sentence
    assert settings_get().roll_days == before


# Riding out the gateway: the next client id when ours is taken, the daily restart (issue 14)

RESTART_FIELDS = ("ib_next_client_id", "ib_restart_time", "ib_restart_zone")
NOT_A_TIME = (
    "is not a time of day: type HH:MM from 00:00 to 23:59, e.g. 23:45 "
    "(or leave it empty if you don't know it)."
)
NOT_A_ZONE = (
    "is not a time zone: type a name such as America/New_York, America/Chicago, "
    "Europe/London or UTC."
)


def stored_restart() -> tuple:
    s = settings_get()
    return tuple(getattr(s, name) for name in RESTART_FIELDS)


def test_restart_settings_default_and_are_shown_in_the_ib_section(client):
    assert stored_restart() == (False, "23:45", "America/New_York")
    page = text(client.get(PAGE))
    ib = page[page.index('id="ib-heading"') : page.index('id="feed-heading"')]
    assert (
        'name="ib_next_client_id" id="id_ib_next_client_id" class="accent-emerald-500" aria' in ib
    )
    assert 'name="ib_restart_time" id="id_ib_restart_time" value="23:45"' in ib
    assert 'name="ib_restart_zone" id="id_ib_restart_zone" value="America/New_York"' in ib
    assert "If the client id is taken, use the next free one" in ib
    assert (
        "TWS / IB Gateway restarts itself daily (Configure → Lock and Exit → Auto restart); "
        "the engine says so and waits instead of alarming you."
    ) in ib


def test_restart_settings_are_saved_and_reach_the_ib_feed_config(client):
    from engine.worker.config import ib_connection

    data = form_data(ib_next_client_id="on", ib_restart_time=" 5:07 ",
                     ib_restart_zone="europe/london")  # fmt: skip
    resp = client.post(PAGE, data)
    assert resp.status_code == 302, slot(text(resp), "ib_restart_zone")
    # Written as the time zone database and a clock write them.
    assert stored_restart() == (True, "05:07", "Europe/London")
    page = text(client.get(PAGE))
    assert re.search(r'name="ib_next_client_id" id="id_ib_next_client_id" [^>]*checked', page)
    assert 'id="id_ib_restart_time" value="05:07"' in page
    config = ib_connection(settings_get())
    assert (config["next_client_id"], config["restart_time"], config["restart_zone"]) == (
        True, "05:07", "Europe/London"
    )  # fmt: skip
    # An empty restart time means "unknown"; unticked: keep retrying the same id.
    resp = client.post(PAGE, form_data(ib_restart_time="", ib_restart_zone="UTC"))
    assert resp.status_code == 302
    assert stored_restart() == (False, "", "UTC")
    assert ib_connection(settings_get())["restart_time"] == ""


@pytest.mark.parametrize(
    ("field", "raw", "sentence"),
    [
        ("ib_restart_time", "²3:45", f"“²3:45” {NOT_A_TIME}"),
        ("ib_restart_time", "٢٣:٤٥", f"“٢٣:٤٥” {NOT_A_TIME}"),
        ("ib_restart_time", "24:00", f"“24:00” {NOT_A_TIME}"),
        ("ib_restart_time", "23:60", f"“23:60” {NOT_A_TIME}"),
        ("ib_restart_time", "23:45\x00", f"“23:45\\x00” {NOT_A_TIME}"),
        ("ib_restart_time", "2345", f"“2345” {NOT_A_TIME}"),
        ("ib_restart_time", "1" * 5000, f"“111111111111… (5000 characters)” {NOT_A_TIME}"),
        ("ib_restart_zone", "Mars/Olympus", f"“Mars/Olympus” {NOT_A_ZONE}"),
        ("ib_restart_zone", "../etc", f"“../etc” {NOT_A_ZONE}"),
        ("ib_restart_zone", "/etc/localtime", f"“/etc/localtime” {NOT_A_ZONE}"),
        ("ib_restart_zone", "America", f"“America” {NOT_A_ZONE}"),
        ("ib_restart_zone", "UTC\x00", f"“UTC\\x00” {NOT_A_ZONE}"),
        ("ib_restart_zone", "A" * 5000, f"“AAAAAAAAAAAA… (5000 characters)” {NOT_A_ZONE}"),
        ("ib_restart_zone", " ", "Type the time zone of the restart time, e.g. America/New_York."),
    ],
)  # fmt: skip
def test_a_bad_restart_time_or_zone_is_one_sentence_and_nothing_is_saved(
    client, field, raw, sentence
):
    before, settings_before = stored_restart(), stored()
    # The other fields change too: nothing of a refused form may be stored.
    resp = client.post(PAGE, form_data(ib_port="4001", ib_next_client_id="on", **{field: raw}))
    assert resp.status_code == 400
    page = text(resp)
    assert slot(page, field) == sentence
    assert "The settings were not saved: fix the fields marked in red." in page
    assert (stored_restart(), stored()) == (before, settings_before)


def test_every_settings_entry_point_cleans_the_restart_fields_alike():
    """``settings_update`` (what the page, the admin and code call) reads the restart fields
    through the same cleaners: the same sentence, one per field, nothing saved."""
    from django.core.exceptions import ValidationError

    from engine.services import settings_update

    before = stored_restart()
    for field, raw, sentence in [
        ("ib_restart_time", "24:00", f"“24:00” {NOT_A_TIME}"),
        ("ib_restart_time", "9" * 5000, f"“999999999999… (5000 characters)” {NOT_A_TIME}"),
        ("ib_restart_zone", "../etc", f"“../etc” {NOT_A_ZONE}"),
        ("ib_restart_time", 2345, "The ib_restart_time setting is text, not 2345."),
    ]:
        with pytest.raises(ValidationError) as refused:
            settings_update(ib_next_client_id=True, **{field: raw})
        assert refused.value.message_dict == {field: [sentence]}
        assert stored_restart() == before
    settings_update(ib_restart_time="0:00", ib_restart_zone="asia/tokyo")
    assert stored_restart() == (False, "00:00", "Asia/Tokyo")


# Outcome horizons and bar retention (issue 13)


def stored_outcomes() -> tuple[str, int]:
    s = settings_get()
    return s.outcome_horizons, s.bar_retention_days


def test_outcome_settings_default_are_shown_and_saved_in_canonical_form(client):
    page = text(client.get(PAGE))
    assert 'name="outcome_horizons" id="id_outcome_horizons" value="1m,5m,15m"' in page
    assert 'name="bar_retention_days" id="id_bar_retention_days" value="30"' in page
    resp = client.post(PAGE, form_data(outcome_horizons=" 15M, 30s,1h ", bar_retention_days="90"))
    assert resp.status_code == 302
    assert stored_outcomes() == ("30s,15m,1h", 90)
    # Left out of a POST (an older form), both take their defaults rather than an error.
    assert client.post(PAGE, form_data()).status_code == 302
    assert stored_outcomes() == ("1m,5m,15m", 30)


@pytest.mark.parametrize(
    ("field", "raw", "sentence"),
    [
        ("outcome_horizons", "²m", "“²m” is not a horizon: write a whole number and s, m or h, "
         "e.g. 30s, 5m or 1h (comma-separated: 1m,5m,15m)."),
        ("outcome_horizons", "0s", "“0s” is not between 1s and 24h."),
        ("outcome_horizons", "25h", "“25h” is not between 1s and 24h."),
        ("outcome_horizons", "1m,60s", "The horizon 1m is given twice."),
        ("outcome_horizons", "1m\x00", "“1m\\x00” is not a horizon: write a whole number and s, m "
         "or h, e.g. 30s, 5m or 1h (comma-separated: 1m,5m,15m)."),
        ("outcome_horizons", "", "Give at least one horizon, e.g. 1m,5m,15m."),
        ("outcome_horizons", "1s,2s,3s,4s,5s,6s,7s", "Give at most 6 horizons, not 7."),
        ("bar_retention_days", "99999", "Keep bars for at most 3650 days (10 years)."),
        ("bar_retention_days", "0", "Keep bars for at least 1 day."),
        ("bar_retention_days", "３0", "Keep bars for a whole number of days, e.g. 30."),
        ("bar_retention_days", "9" * 5000, "Keep bars for a whole number of days, e.g. 30."),
    ],
)  # fmt: skip
def test_a_bad_outcome_setting_is_one_sentence_and_nothing_is_saved(client, field, raw, sentence):
    before = stored_outcomes(), stored()
    resp = client.post(PAGE, form_data(ib_port="4001", **{field: raw}))
    assert resp.status_code == 400
    page = text(resp)
    assert slot(page, field) == sentence
    assert (stored_outcomes(), stored()) == before

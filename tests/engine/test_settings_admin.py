"""The admin's Settings form: the same validation and the same run lock as the Settings page."""

from __future__ import annotations

import html
import re

import pytest

from engine.services import settings_get
from tests.factories import make_running_engine
from watchlists.models import Watchlist

pytestmark = pytest.mark.django_db

LOCKED = "The engine is running: stop it before changing the connection, feed or bar size."
FIELDS = ("ib_host", "ib_port", "ib_client_id", "feed", "csv_path", "bar_seconds")


def url() -> str:
    return f"/admin/engine/appsettings/{settings_get().pk}/change/"


def stored() -> tuple:
    s = settings_get()
    return tuple(getattr(s, name) for name in FIELDS)


def admin_data(**changes) -> dict:
    s = settings_get()
    data = {name: str(getattr(s, name)) for name in FIELDS}
    data.update(changes)
    return data


def test_admin_shows_the_stored_settings(admin_client):
    page = admin_client.get(url()).content.decode()
    assert 'name="ib_host" value="127.0.0.1"' in page
    assert 'name="ib_port" value="7497"' in page
    assert 'name="feed" value="demo"' in page and "checked" in page


def test_admin_saves_valid_settings(admin_client, tmp_path):
    bars = tmp_path / "bars.csv"
    bars.write_text("time,open,high,low,close,volume\n")
    data = admin_data(ib_host=" tws.local ", ib_port="4002", feed="csv", csv_path=str(bars),
                      bar_seconds="60")  # fmt: skip
    resp = admin_client.post(url(), data)
    assert resp.status_code == 302, resp.content.decode()[-2000:]
    s = settings_get()
    assert (s.ib_host, s.ib_port, s.feed, s.csv_path, s.bar_seconds) == (
        "tws.local", 4002, "csv", str(bars), 60
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"ib_host": "my tws!"},
         "“my tws!” is not a host name or IP address, e.g. 127.0.0.1 or tws.local."),
        ({"ib_port": "0"}, "A port is between 1 and 65535."),
        ({"ib_port": "70000"}, "A port is between 1 and 65535."),
        ({"feed": "csv", "csv_path": ""},
         "The CSV feed replays a file: type the path of a CSV file of bars."),
        ({"feed": "csv", "csv_path": "/nowhere/bars.csv"},
         "There is no file at /nowhere/bars.csv."),
    ],
)  # fmt: skip
def test_admin_refuses_what_the_settings_page_refuses(admin_client, changes, sentence):
    before = stored()
    resp = admin_client.post(url(), admin_data(ib_client_id="5", **changes))
    assert resp.status_code == 200
    assert sentence in html.unescape(resp.content.decode())
    assert stored() == before


def test_admin_refuses_settings_while_the_engine_runs(admin_client):
    make_running_engine(watchlist=Watchlist.objects.get(is_active=True))
    before = stored()
    resp = admin_client.post(url(), admin_data(ib_port="4001", bar_seconds="60"))
    assert resp.status_code == 200
    assert LOCKED in html.unescape(resp.content.decode())
    assert stored() == before


def test_admin_edits_every_settings_field():
    """A field the admin leaves out is posted empty and saved so (RTH off, the default roll
    window): the admin's form holds every field ``settings_update`` takes."""
    from engine.admin import AppSettingsAdmin
    from engine.services import SETTINGS_FIELDS

    assert set(AppSettingsAdmin.fields) == SETTINGS_FIELDS


def test_admin_saves_the_restart_settings_and_keeps_the_others(admin_client):
    from engine.services import settings_update

    settings_update(use_rth=True, roll_days=9)
    data = admin_data(use_rth="on", roll_days="9", ib_next_client_id="on",
                      ib_restart_time="7:30", ib_restart_zone="america/chicago")  # fmt: skip
    resp = admin_client.post(url(), data)
    assert resp.status_code == 302, html.unescape(resp.content.decode())[-2000:]
    s = settings_get()
    assert (s.ib_next_client_id, s.ib_restart_time, s.ib_restart_zone) == (
        True, "07:30", "America/Chicago"
    )  # fmt: skip
    assert (s.use_rth, s.roll_days) == (True, 9)


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"ib_restart_time": "²3:45"}, "“²3:45” is not a time of day"),
        ({"ib_restart_time": "24:00"}, "“24:00” is not a time of day"),
        ({"ib_restart_time": "23:60"}, "“23:60” is not a time of day"),
        ({"ib_restart_time": "12:00\x00"}, "“12:00\\x00” is not a time of day"),
        ({"ib_restart_time": "1" * 5000}, "“111111111111… (5000 characters)” is not a time"),
        ({"ib_restart_zone": "Mars/Olympus"}, "“Mars/Olympus” is not a time zone"),
        ({"ib_restart_zone": "../etc"}, "“../etc” is not a time zone"),
        ({"ib_restart_zone": "Z" * 5000}, "“ZZZZZZZZZZZZ… (5000 characters)” is not a time zone"),
    ],
)  # fmt: skip
def test_admin_refuses_a_bad_restart_time_or_zone_in_one_sentence(admin_client, changes, sentence):
    before = (stored(), settings_get().ib_restart_time, settings_get().ib_restart_zone)
    resp = admin_client.post(url(), admin_data(ib_port="4001", **changes))
    assert resp.status_code == 200
    page = html.unescape(resp.content.decode())
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', page, re.S)
    assert len(errors) == 1 and sentence in errors[0], errors
    assert (stored(), settings_get().ib_restart_time, settings_get().ib_restart_zone) == before


def test_admin_saves_the_outcome_and_retention_settings_through_the_same_cleaner(admin_client):
    data = admin_data(ib_restart_time="23:45", ib_restart_zone="America/New_York", roll_days="5",
                      outcome_horizons=" 15M, 1m ", bar_retention_days="7")  # fmt: skip
    resp = admin_client.post(url(), data)
    assert resp.status_code == 302, html.unescape(resp.content.decode())[-2000:]
    s = settings_get()
    assert (s.outcome_horizons, s.bar_retention_days) == ("1m,15m", 7)


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"outcome_horizons": "²m"}, "“²m” is not a horizon"),
        ({"outcome_horizons": "25h"}, "“25h” is not between 1s and 24h"),
        ({"outcome_horizons": "1m\x00"}, "is not a horizon"),
        ({"bar_retention_days": "0"}, "Keep bars for at least 1 day."),
        ({"bar_retention_days": "99999"}, "Keep bars for at most 3650 days"),
        ({"bar_retention_days": "３0"}, "Keep bars for a whole number of days"),
    ],
)  # fmt: skip
def test_admin_refuses_bad_outcome_or_retention_settings(admin_client, changes, sentence):
    before = (settings_get().outcome_horizons, settings_get().bar_retention_days)
    data = admin_data(ib_restart_time="23:45", ib_restart_zone="America/New_York",
                      roll_days="5", **changes)  # fmt: skip
    resp = admin_client.post(url(), data)
    assert resp.status_code == 200
    assert sentence in html.unescape(resp.content.decode())
    assert (settings_get().outcome_horizons, settings_get().bar_retention_days) == before

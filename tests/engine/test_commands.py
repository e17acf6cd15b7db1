"""The headless CLI: ensureadmin, feedtoken, rules import/export, watchlist."""

import json
import os
import stat
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from engine.services import settings_get
from rules.models import Rule
from tests.conftest import ROOT, subprocess_env
from tests.factories import DEFAULT_DEFINITION, make_running_engine
from watchlists.models import Watchlist


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.django_db
def test_ensureadmin_creates_admin_once_with_a_private_password_file(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    os.environ.pop("SCALP_ADMIN_PASSWORD", None)
    call_command("ensureadmin")
    out = capsys.readouterr().out
    path = tmp_path / "admin-password.txt"
    password = path.read_text().split("password: ")[1].strip()
    assert password in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user = get_user_model().objects.get()
    assert user.username == "admin" and user.is_superuser and user.check_password(password)
    call_command("ensureadmin")
    assert capsys.readouterr().out == ""
    assert get_user_model().objects.count() == 1


@pytest.mark.django_db
def test_ensureadmin_takes_the_password_from_the_environment(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("SCALP_ADMIN_PASSWORD", "correct horse battery")
    call_command("ensureadmin")
    assert get_user_model().objects.get().check_password("correct horse battery")
    assert not (tmp_path / "admin-password.txt").exists()


@pytest.mark.django_db
def test_feedtoken_prints_and_rotates(capsys):
    call_command("feedtoken")
    first = capsys.readouterr().out.strip()
    assert first == settings_get().feed_token and len(first) >= 32
    call_command("feedtoken", "--rotate")
    second = capsys.readouterr().out.strip()
    assert second != first and second == settings_get().feed_token


@pytest.mark.django_db(transaction=True)
def test_rules_import_and_export_round_trip(tmp_path):
    path = tmp_path / "rule.json"
    path.write_text(json.dumps({"name": "Cross", **DEFAULT_DEFINITION, "cooldown_sec": 30}))
    result = manage("rules", "import", str(path))
    assert result.returncode == 0, result.stderr
    rule = Rule.objects.get(name="Cross")
    exported = json.loads(manage("rules", "export", str(rule.pk)).stdout)
    assert exported == {"id": rule.pk, "name": "Cross", "type": "custom",
                        **DEFAULT_DEFINITION, "cooldown_sec": 30}  # fmt: skip
    everything = json.loads(manage("rules", "export").stdout)
    assert [r["name"] for r in everything] == ["MA Momentum", "Cross"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"name": "x", "logic": "AND",', "not valid JSON"),
        (json.dumps({"name": "x", **DEFAULT_DEFINITION, "logic": "NAND"}), "logic"),
        (json.dumps({**DEFAULT_DEFINITION}), "name"),
    ],
)
def test_rules_import_bad_input_exits_2_with_one_line(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = manage("rules", "import", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr
    assert Rule.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_watchlist_cli_create_activate_and_errors():
    ok = manage("watchlist", "create", "Semis", "nvda", "amd", "--activate")
    assert ok.returncode == 0, ok.stderr
    assert Watchlist.objects.get(is_active=True).symbols == ["NVDA", "AMD"]
    assert manage("watchlist", "activate", "Default").returncode == 0
    assert Watchlist.objects.get(is_active=True).name == "Default"
    too_many = manage("watchlist", "create", "Big", "A", "B", "C", "D", "E", "F")
    assert too_many.returncode == 2
    assert "at most 5 symbols" in too_many.stderr
    assert len(too_many.stderr.strip().splitlines()) == 1
    bad = manage("watchlist", "create", "Bad", "AA$")
    assert bad.returncode == 2 and "not a valid symbol" in bad.stderr
    missing = manage("watchlist", "activate", "Nope")
    assert missing.returncode == 2 and "No watchlist named 'Nope'" in missing.stderr
    assert not Watchlist.objects.filter(name__in=["Big", "Bad"]).exists()


def one_line_exit_2(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


HUGE_COOLDOWN = json.dumps({"name": "x", **DEFAULT_DEFINITION}).replace(
    '"cooldown_sec": 60', '"cooldown_sec": ' + "9" * 5000
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        (HUGE_COOLDOWN, "is too long"),
        (json.dumps({"name": "a\x00b", **DEFAULT_DEFINITION}), "control character"),
        (json.dumps({"name": "a\nb", **DEFAULT_DEFINITION}), "control character"),
        (json.dumps({"name": 12345, **DEFAULT_DEFINITION}), "must be text"),
        (json.dumps({"name": True, **DEFAULT_DEFINITION}), "must be text"),
        (json.dumps({"name": ["x"], **DEFAULT_DEFINITION}), "must be text"),
        ("[]", "no rules"),
    ],
)
def test_rules_import_refuses_hostile_files_with_one_line(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert fragment in one_line_exit_2(manage("rules", "import", str(path)))
    assert Rule.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_rules_import_of_a_list_is_all_or_nothing(tmp_path):
    path = tmp_path / "two.json"
    good = {"name": "First", **DEFAULT_DEFINITION}
    path.write_text(json.dumps([good, {"name": "Second", **DEFAULT_DEFINITION, "logic": "X"}]))
    line = one_line_exit_2(manage("rules", "import", str(path)))
    assert "Rule 2 of 2: logic" in line
    assert not Rule.objects.filter(name="First").exists()
    path.write_text(json.dumps([good, {"name": "Second", **DEFAULT_DEFINITION}]))
    result = manage("rules", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Imported rule") == 2
    assert Rule.objects.filter(name__in=["First", "Second"]).count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        (HUGE_COOLDOWN, "is too long"),
        (json.dumps({"name": "a\nb", **DEFAULT_DEFINITION}), "control character"),
    ],
)
def test_replay_refuses_hostile_rule_files_with_one_line(tmp_path, content, fragment):
    rule = tmp_path / "rule.json"
    rule.write_text(content)
    bars = tmp_path / "bars.csv"
    bars.write_text("time,open,high,low,close,volume\n1700000000,1,1,1,1,1\n")
    line = one_line_exit_2(manage("replay", "--bars", str(bars), "--rule", str(rule)))
    assert fragment in line and "rule.json" in line


@pytest.mark.django_db(transaction=True)
def test_watchlist_create_activate_while_running_creates_nothing():
    state = make_running_engine(watchlist=Watchlist.objects.get(is_active=True))
    # Alive for an hour, so the child process sees a live run however slowly it starts.
    state.heartbeat = timezone.now() + timedelta(hours=1)
    state.save()
    line = one_line_exit_2(manage("watchlist", "create", "X", "AAPL", "--activate"))
    assert "stop it before switching the active watchlist" in line
    assert not Watchlist.objects.filter(name="X").exists()
    assert manage("watchlist", "create", "X", "AAPL").returncode == 0
    assert Watchlist.objects.get(name="X").symbols == ["AAPL"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("raw", ["abc", "\u0663", "-1", "9" * 5000])
def test_rules_export_refuses_a_bad_id_with_one_line(raw):
    assert "id=" in one_line_exit_2(manage("rules", "export", raw))


@pytest.mark.django_db(transaction=True)
def test_watchlist_create_reads_each_argument_like_the_symbols_box():
    result = manage("watchlist", "create", "Pair", "aapl msft", "nvda,amd", "BRK.B")
    assert result.returncode == 0, result.stderr
    assert Watchlist.objects.get(name="Pair").symbols == ["AAPL", "MSFT", "NVDA", "AMD", "BRK B"]
    assert "at least one symbol" in one_line_exit_2(manage("watchlist", "create", "None", " , "))

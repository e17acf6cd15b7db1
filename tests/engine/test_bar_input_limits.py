"""Bar input a person or an attacker can write: times out of range, prices finer than the core
keeps, odd symbols — one sentence in `replay`, the preview and the csv feed, never a crash."""

import json
import re
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from engine.core.bars import BarFileError, iter_csv_bars, parse_time
from signals.models import Signal
from tests.conftest import ROOT, subprocess_env
from tests.engine.helpers import engine_state, start_worker, stop_worker, wait_until

HEADER = "time,open,high,low,close,volume"
RULE = {"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": 0}],
        "cooldown_sec": 0}  # fmt: skip
BAD_TIMES = [
    "99999999999999",
    "-99999999999999",
    "-5",
    "1e20",
    "9999-12-31T23:59:59",
    "253402300799",
    "0001-01-01T00:00:00",
]


def bar_file(tmp_path, lines: list[str], name="bars.csv", header=HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def csv_feed_error(tmp_path, path) -> str:
    """Run the csv feed over ``path`` in a worker process; the error state's message. The
    worker must survive the bad file, stop cleanly and log no traceback."""
    log_path = tmp_path / "worker.log"
    proc = start_worker("--csv", str(path), "--speed", "max", "--start", log_path=log_path)
    try:
        state = wait_until(lambda: (s := engine_state()) and s.state == "error" and s,
                           what="the error state")  # fmt: skip
        assert proc.poll() is None, "the worker must survive bad input"
    finally:
        assert stop_worker(proc) == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()
    return state.message


def replay(*args: str, tmp_path) -> subprocess.CompletedProcess:
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(RULE))
    return subprocess.run(
        [sys.executable, "manage.py", "replay", "--rule", str(rule), *args],
        cwd=ROOT, env=subprocess_env(SCALP_VAR_DIR=str(tmp_path)), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def client(db) -> Client:
    user = get_user_model().objects.create_user("trader", "", "s3cret-pass-123")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def preview(client, body: bytes, name="bars.csv") -> str:
    data = {"name": "", "logic": "AND", "cooldown_sec": "0", "trigger": "level", "text": "",
            "row": ["r0"], "left": ["PRICE"], "op": [">"], "right": ["MA5"],
            "source": "csv", "bars": "720",
            "csv_file": SimpleUploadedFile(name, body, "text/csv")}  # fmt: skip
    resp = client.post("/rules/builder/preview/", data, headers={"HX-Request": "true"})
    assert resp.status_code == 200
    return resp.content.decode().replace("&#x27;", "'")


# --- times --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", BAD_TIMES)
def test_parse_time_refuses_times_outside_1970_to_2100(text):
    with pytest.raises(ValueError, match="out of range: bars must start between 1970-01-01"):
        parse_time(text)


@pytest.mark.parametrize("text", BAD_TIMES)
def test_a_bar_file_with_a_time_out_of_range_names_the_line(tmp_path, text):
    path = bar_file(tmp_path, ["1765877400,1,1,1,1,1", f"{text},1,1,1,1,1"])
    with pytest.raises(BarFileError, match="line 3: time .* is out of range"):
        list(iter_csv_bars(path))
    with pytest.raises(BarFileError, match="line 3: time .* is out of range"):
        list(iter_csv_bars(path, bar_seconds=5))


def test_a_huge_gap_can_not_push_a_close_time_past_what_format_time_prints(tmp_path):
    path = bar_file(tmp_path, ["0,1,1,1,1,1", "4102444799,1,1,1,1,1"])
    result = replay("--bars", str(path), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize("text", ["99999999999999", "1e20", "9999-12-31T23:59:59"])
def test_replay_refuses_a_time_out_of_range_in_one_line(tmp_path, text):
    path = bar_file(tmp_path, [f"{text},1,1,1,1,1"])
    for extra in ([], ["--bar-seconds", "5"]):
        result = replay("--bars", str(path), *extra, tmp_path=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"replay: {path}, line 2: time ")
        assert "out of range" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["99999999999999", "0", "-5", "1e3", "٣"])
def test_replay_bar_seconds_out_of_range_is_one_line(tmp_path, value):
    path = bar_file(tmp_path, ["1765877400,1,1,1,1,1"])
    result = replay("--bars", str(path), "--bar-seconds", value, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "--bar-seconds" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["99999999999999", "-5", "1e20", "9999-12-31T23:59:59"])
def test_preview_of_a_time_out_of_range_is_a_sentence_not_a_500(client, text):
    page = preview(client, f"{HEADER}\n{text},1,1,1,1,1\n".encode())
    assert "In bars.csv, line 2: time " in page and "out of range" in page


@pytest.mark.django_db(transaction=True)
def test_the_csv_feed_reports_a_time_out_of_range_as_an_error_state(tmp_path):
    path = bar_file(tmp_path, ["1765877400,1,1,1,1,1", "99999999999999,1,1,1,1,1"])
    message = csv_feed_error(tmp_path, path)
    assert "bars.csv, line 3: time '99999999999999' is out of range" in message


# --- prices finer than the core keeps -----------------------------------------------------

FINE = "prices finer than 0.00000001 (8 decimals) are not supported"


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [
        ("1765877405,1,1,1,1.234567891,1", "close", "1.234567891"),
        ("1765877405,1,1,0.000000005,1,1", "low", "0.000000005"),
        ("1765877405,1e-9,1,1,1,1", "open", "1e-9"),
        ("1765877405,1,238.730000001,1,1,1", "high", "238.730000001"),
    ],
)
def test_a_price_finer_than_1e8_is_refused_naming_line_and_value(tmp_path, row, column, value):
    path = bar_file(tmp_path, ["1765877400,1,1,1,1,1", row])
    expected = f"line 3: column {column}: price {value} is finer than 0.00000001; {FINE}"
    with pytest.raises(BarFileError, match=re.escape(expected)):
        list(iter_csv_bars(path))


def test_eight_decimals_and_trailing_zeros_are_exact_and_accepted(tmp_path):
    path = bar_file(tmp_path, ["1765877400,238.73000001,1.5000000000,0.00000001,1e-8,1"])
    (bar,) = iter_csv_bars(path)
    assert (bar.open, bar.high, bar.low, bar.close) == (238.73000001, 1.5, 1e-8, 1e-8)


def test_replay_refuses_nine_decimal_prices_instead_of_rounding(tmp_path):
    rows = [f"{1765877400 + 5 * i},1,1,1,{1 + i * 1e-9:.9f},1" for i in range(30)]
    path = bar_file(tmp_path, rows)
    result = replay("--bars", str(path), tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout
    assert result.stderr.strip() == (
        f"replay: {path}, line 3: column close: price 1.000000001 is finer than 0.00000001; {FINE}"
    )


def test_preview_refuses_nine_decimal_prices(client):
    page = preview(client, f"{HEADER}\n1765877400,1,1,1,1.234567891,1\n".encode())
    assert f"price 1.234567891 is finer than 0.00000001; {FINE}" in page


@pytest.mark.django_db(transaction=True)
def test_the_csv_feed_refuses_nine_decimal_prices(tmp_path):
    path = bar_file(tmp_path, ["1765877400,1,1,1,1,1", "1765877405,1,1,1,1.000000001,1"])
    message = csv_feed_error(tmp_path, path)
    assert "bars.csv, line 3: column close: price 1.000000001 is finer" in message


def test_float_noise_is_read_as_the_price_it_stands_for(tmp_path):
    # Python and pandas write 190.05 + 0.02 in full; that is 190.07, not a finer price.
    assert repr(190.05 + 0.02) == "190.07000000000002"
    path = bar_file(tmp_path, [f"1765877400,{190.05 + 0.02!r},{0.1 + 0.2!r},1,{1.1 * 3!r},1"])
    (bar,) = iter_csv_bars(path)
    assert (bar.open, bar.high, bar.close) == (190.07, 0.3, 3.3)


# --- symbols: the watchlist's validator at every entry point -------------------------------

LONG = "A" * 29


@pytest.mark.parametrize("symbol", ["=1+2", LONG, "AAPL;rm"])
def test_replay_refuses_a_symbol_the_watchlist_refuses(tmp_path, symbol):
    path = bar_file(tmp_path, [f"{symbol},1765877400,1,1,1,1,1"],
                    header=f"symbol,{HEADER}")  # fmt: skip
    result = replay("--bars", str(path), tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"replay: {path}, line 2: column symbol: ")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    result = replay("--bars", str(path), "--symbol", symbol, tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("replay: --symbol: ") and "symbol" in result.stderr[17:]
    assert len(result.stderr.splitlines()) == 1


def test_replay_names_a_file_without_a_symbol_column_through_the_same_validator(tmp_path):
    path = bar_file(tmp_path, ["1765877400,1,1,1,1,1"], name="=cmd_5s.csv")
    result = replay("--bars", str(path), tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout
    assert f"replay: {path}, line 2: symbol from the file name: " in result.stderr
    assert "=CMD" in result.stderr


def test_preview_refuses_a_symbol_the_watchlist_refuses(client):
    page = preview(client, f"symbol,{HEADER}\n=1+2,1765877400,1,1,1,1,1\n".encode())
    assert "In bars.csv, line 2: column symbol: " in page and "=1+2" in page


@pytest.mark.django_db(transaction=True)
def test_the_csv_feed_refuses_a_symbol_the_watchlist_refuses(tmp_path):
    rows = ["AAPL,1765877400,1,1,1,1,1", "AAPL,1765877405,1,1,1,1,1",
            f"{LONG},1765877405,1,1,1,1,1"]  # fmt: skip
    path = bar_file(tmp_path, rows, header=f"symbol,{HEADER}")
    assert "bars.csv, line 4: column symbol: " in csv_feed_error(tmp_path, path)
    assert not Signal.objects.filter(symbol=LONG).exists()

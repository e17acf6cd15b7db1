"""The chart history API (validation, login, signals for markers) and the chart around a
signal (its bars, another stored size, the no-bars sentence)."""

from datetime import UTC, datetime

import pytest

from bars.services import bars_store
from engine.core.bars import Bar
from engine.core.machine import SymbolInputs
from engine.core.outcomes import Outcome
from signals.services import outcomes_record, signal_record

pytestmark = pytest.mark.django_db

T0 = 1_765_895_400  # 2025-12-16 14:30:00 UTC


def make_bars(n: int, *, symbol: str = "AAPL", seconds: int = 5, start: int = T0) -> list[Bar]:
    return [
        Bar(symbol, start + seconds * i, seconds, 100 + i, 101 + i, 99 + i, 100.5 + i, 10 + i)
        for i in range(n)
    ]


def make_signal(close: int, *, symbol: str = "AAPL", side: str | None = "buy", seconds: int = 5):
    row = signal_record(
        time=datetime.fromtimestamp(close, tz=UTC),
        symbol=symbol,
        price=123.5,
        rule_id=7,
        rule_name="Dip buy",
        bar_seconds=seconds,
        values={"PRICE": 123.5},
        side=side,
    )
    assert row is not None
    return row


def test_api_needs_a_login(client):
    resp = client.get("/bars/api/?symbol=AAPL")
    assert resp.status_code == 403
    assert resp.json() == {"event": "error", "message": "Log in to read stored bars."}


def test_api_bars_oldest_first_with_signals_in_range(admin_client):
    bars_store(make_bars(10))
    bars_store(make_bars(3, seconds=60))
    inside = make_signal(T0 + 25)  # the close of the bar starting at T0 + 20
    make_signal(T0 + 25, symbol="MSFT")
    make_signal(T0 - 100)  # before the range
    body = admin_client.get("/bars/api/?symbol=aapl&seconds=5&limit=4").json()
    assert body["symbol"] == "AAPL" and body["seconds"] == 5
    assert body["bars"] == [
        [T0 + 5 * i, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0 + i] for i in range(6, 10)
    ]
    assert body["signals"] == []  # the signal's bar is older than these four
    body = admin_client.get(f"/bars/api/?symbol=AAPL&seconds=5&before={T0 + 30}").json()
    assert [b[0] for b in body["bars"]] == [T0 + 5 * i for i in range(6)]
    assert body["signals"] == [
        {
            "id": inside.pk,
            "time": T0 + 25,
            "price": 123.5,
            "side": "buy",
            "rule_id": 7,
            "rule_name": "Dip buy",
        }
    ]
    # the default size is 5 seconds; an unknown symbol or size has no bars
    assert len(admin_client.get("/bars/api/?symbol=AAPL").json()["bars"]) == 10
    assert len(admin_client.get("/bars/api/?symbol=AAPL&seconds=60").json()["bars"]) == 3
    assert admin_client.get("/bars/api/?symbol=ZZZZ&seconds=5").json()["bars"] == []
    assert admin_client.get("/bars/api/?symbol=AAPL&seconds=15").json()["bars"] == []


BAD_QUERIES = [
    ("", "Name a symbol"),
    ("symbol=%20", "Name a symbol"),
    ("symbol=AAPL&seconds=%C2%B2", "seconds='²' is not a whole number"),
    ("symbol=AAPL&seconds=%D9%A3", "seconds='٣' is not a whole number"),
    ("symbol=AAPL&seconds=0", "seconds=0 is out of range"),
    ("symbol=AAPL&seconds=-5", "is not a whole number"),
    ("symbol=AAPL&limit=5001", "limit=5001 is out of range: use 1 to 5000"),
    ("symbol=AAPL&limit=" + "9" * 5000, "is out of range"),
    ("symbol=AAPL&before=" + "9" * 5000, "is out of range"),
    ("symbol=AAPL&before=1.5", "is not a whole number"),
    ("symbol=AAPL&before=%00", "is not a whole number"),
    ("symbol=AA%00PL", ""),
    ("symbol=" + "A" * 5000, ""),
]


def test_api_bad_parameters_are_400_with_one_sentence(admin_client):
    # one client for every case: logging in is the slow part of each test
    for query, sentence in BAD_QUERIES:
        resp = admin_client.get(f"/bars/api/?{query}")
        assert resp.status_code == 400, query
        message = resp.json()["message"]
        assert sentence in message, (query, message)
        assert message.endswith(".") and "\n" not in message and len(message) < 300, message


def test_api_is_get_only(admin_client):
    assert admin_client.post("/bars/api/?symbol=AAPL").status_code == 405


def test_signal_chart_shows_the_bars_around_the_signal(admin_client):
    bars_store(make_bars(50))
    bars_store(make_bars(5, start=T0 + 10 * 3600))  # far after: outside the window
    row = make_signal(T0 + 100)
    resp = admin_client.get(f"/bars/signal/{row.pk}/")
    assert resp.status_code == 200
    chart = resp.context["chart"]
    assert chart["seconds"] == 5
    assert [b[0] for b in chart["bars"]] == [T0 + 5 * i for i in range(50)]
    assert chart["signals"][0]["id"] == row.pk and chart["signals"][0]["time"] == T0 + 100
    html = resp.content.decode()
    assert 'id="signal-chart-data"' in html and "Dip buy" in html and "123.5" in html
    assert 'data-testid="no-bars"' not in html and 'data-testid="other-size"' not in html
    assert "2025-12-16 14:31:40</time> UTC" in html
    # its final outcomes are shown with it
    outcomes_record(
        [(row.pk, Outcome(60, 0.25, 0.5, -0.125)), (row.pk, Outcome(300, None, None, None))]
    )
    html = admin_client.get(f"/bars/signal/{row.pk}/").content.decode()
    assert "Outcome 1m" in html and "0.250 %" in html and "MFE 0.500 · MAE -0.125" in html
    assert "Outcome 5m" in html


def test_signal_chart_falls_back_to_another_stored_size(admin_client):
    bars_store(make_bars(30, seconds=60))
    row = make_signal(T0 + 120)
    resp = admin_client.get(f"/bars/signal/{row.pk}/")
    assert resp.context["chart"]["seconds"] == 60
    assert len(resp.context["chart"]["bars"]) == 30
    assert "No 5-second bars are stored around this signal" in resp.content.decode()


def test_signal_chart_without_stored_bars_says_so(admin_client):
    bars_store(make_bars(5, start=T0 - 40 * 86_400))  # long before: pruned in real life
    row = make_signal(T0)
    resp = admin_client.get(f"/bars/signal/{row.pk}/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "No bars are stored for AAPL around this signal" in html
    assert "keeps 30 days" in html


def test_signal_chart_unknown_or_huge_id_is_404_and_login_is_required(client, admin_client):
    assert admin_client.get("/bars/signal/999/").status_code == 404
    assert admin_client.get("/bars/signal/" + "9" * 5000 + "/").status_code == 404
    row = make_signal(T0)
    resp = client.get(f"/bars/signal/{row.pk}/")
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


def test_api_lines_are_the_cores_values(admin_client):
    closes = [100 + (i * 7 % 13) / 4 for i in range(200)]
    bars_store(Bar("AAPL", T0 + 5 * i, 5, c, c + 1, c - 1, c, 100) for i, c in enumerate(closes))
    body = admin_client.get("/bars/api/?symbol=AAPL&limit=10&lines=MA3,EMA5").json()
    assert [b[0] for b in body["bars"]] == [T0 + 5 * i for i in range(190, 200)]
    assert set(body["lines"]) == {"MA3", "EMA5"}
    for k, i in enumerate(range(190, 200)):
        assert body["lines"]["MA3"][k] == pytest.approx(sum(closes[i - 2 : i + 1]) / 3)
    # the EMA over every stored bar, seeded as the core seeds it: the line has settled
    inputs = SymbolInputs(["EMA5"])
    for i, c in enumerate(closes):
        inputs.step(T0 + 5 * i, 5, c, c + 1, c - 1, c, 100)
    assert body["lines"]["EMA5"][-1] == pytest.approx(inputs.sources["EMA5"].num / 1e8, abs=1e-6)
    # too few bars for a period: null until defined
    few = admin_client.get("/bars/api/?symbol=AAPL&before=" + str(T0 + 10) + "&lines=MA3")
    assert few.json()["lines"]["MA3"] == [None, None]
    bad_lines = ("RSI14", "VWAP", "MA1", "MA20@1m", "MA²", ",".join(f"MA{n}" for n in range(2, 11)))
    for bad in bad_lines:
        resp = admin_client.get(f"/bars/api/?symbol=AAPL&lines={bad}")
        assert resp.status_code == 400, bad
    assert admin_client.get("/bars/api/?symbol=AAPL&lines=" + "MA2," * 9).status_code == 200  # one
    resp = admin_client.get("/bars/api/?symbol=AAPL&lines=" + "MA2,MA3," * 20)
    assert resp.status_code == 400 and "at most 8 lines" in resp.json()["message"]

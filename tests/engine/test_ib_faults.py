"""A trading day of IB faults end to end (issue 14): the real worker process (`runengine --feed
ib`) against the fake TWS as its own process. Each fault is one scenario; in each, the stored
signals must equal what `replay` computes over every bar IB had (no loss, no duplicate), and
the engine must say what is going on in sentences a trader can read. The items trade around
the clock (the fake's hours preset "always") so nothing depends on the time of day."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from engine.models import AppSettings
from engine.services import settings_get
from signals.models import Signal
from tests.engine.helpers import (
    Gateway,
    engine_state,
    gateway_symbol,
    interleave,
    live_series,
    push_rows,
    replay_split,
    start_worker,
    state_log_install,
    state_log_remove,
    stop_worker,
    stored_signal_keys,
    wait_processed,
    wait_until,
)
from tests.factories import make_rule, make_watchlist

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0
STALE_AFTER = 15.0  # IBFeed's stale_after: an open market's silence the watchdog allows
MA_RULE = {
    "logic": "AND", "cooldown_sec": 15, "trigger": "level",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"},
                   {"left": "MA5", "op": ">", "right": "MA10"}],
}  # fmt: skip
BASES = {"AAPL": 190.0, "MSFT": 410.0, "IBM": 230.0}


def stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def has_setting(name: str) -> bool:
    return any(f.name == name for f in AppSettings._meta.get_fields())


def set_settings(**values: object) -> None:
    """Update the Settings row. A field the code doesn't have is left out: the test then
    fails on what the engine says and does, as it should on code without the setting."""
    values = {k: v for k, v in values.items() if has_setting(k)}
    AppSettings.objects.filter(pk=settings_get().pk).update(**values)


class Day:
    """One run of the engine against the fake TWS: the items' sawtooth bars (history, then
    live bars taken in order, all of them IB's data whether delivered or not), the gateway,
    the worker and every state it wrote."""

    def __init__(self, tmp_path, log, symbols=("AAPL", "MSFT"), live: int = 200) -> None:
        self.tmp_path = tmp_path
        self.log = log
        self.symbols = list(symbols)
        self.history: dict[str, list[tuple]] = {}
        self.source: dict[str, list[tuple]] = {}
        for symbol in self.symbols:
            self.history[symbol], self.source[symbol] = live_series(symbol, BASES[symbol], live)
        self.taken: list[tuple] = []
        self.unsent: set[str] = set()  # close times of bars only IB's history can bring
        self.gw: Gateway | None = None
        self.proc = None
        self.rule = make_rule(name="Fast MA", definition=MA_RULE)
        self.watchlist = make_watchlist(name="IB day", symbols=self.symbols)

    # ---- setup ----------------------------------------------------------------------------

    def start(self, *, details: dict | None = None, timeout: float = WAIT, **script) -> Day:
        """Start the gateway (``details``: per symbol, SymbolSpec fields over the preset
        "always"; ``script``: more script keys), then the worker; wait until it runs with
        every item subscribed."""
        details = details or {}
        symbols = [
            gateway_symbol(s, self.history[s], **{"hours": "always", **details.get(s, {})})
            for s in self.symbols
        ]
        self.gw = Gateway({"symbols": symbols, **script}, workdir=self.tmp_path).start()
        self.proc = start_worker(
            "--feed", "ib", "--rule", str(self.rule.pk), "--watchlist", self.watchlist.name,
            "--start", log_path=self.tmp_path / "worker.log",
            SCALP_IB_HOST="127.0.0.1", SCALP_IB_PORT=str(self.gw.port), SCALP_IB_CLIENT_ID="17",
        )  # fmt: skip
        wait_until(self.running, timeout=timeout, what="running")
        for symbol in self.symbols:
            self.gw.call("wait_subscribed", symbol=symbol, timeout=timeout)
        assert not Signal.objects.exists(), "history bars must never emit"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_worker(self.proc)
        if self.gw is not None:
            self.gw.stop()

    # ---- bars -----------------------------------------------------------------------------

    def take(self, n: int, symbols: list[str] | None = None) -> list[tuple]:
        """The next ``n`` bars of each symbol, in time order."""
        rows = []
        for symbol in symbols or self.symbols:
            batch, self.source[symbol] = self.source[symbol][:n], self.source[symbol][n:]
            assert len(batch) == n, f"the test ran out of {symbol} bars"
            rows += batch
        rows = interleave(rows)
        self.taken += rows
        return rows

    def push(self, n: int, *, delivered: int | None = 1, symbols=None) -> list[tuple]:
        """Push the next ``n`` bars of each item; ``delivered=0``: IB records them but sends
        them to no subscription (only a backfill can bring them)."""
        assert self.gw is not None
        rows = self.take(n, symbols)
        reached = push_rows(self.gw, rows, delivered=delivered)
        self.unsent |= {stamp(row[0] + 5) for row, n in zip(rows, reached, strict=True) if not n}
        return rows

    def flow_until_delivered(self, symbol: str, *, within: float) -> float:
        """Push a bar of each item every half second until one of ``symbol`` reaches a
        subscription again; returns the seconds that took (at most ``within``)."""
        assert self.gw is not None
        began = time.monotonic()
        while True:
            rows = self.take(1)
            reached = push_rows(self.gw, rows, delivered=None)
            self.unsent |= {stamp(r[0] + 5) for r, n in zip(rows, reached, strict=True) if not n}
            if any(n and row[6] == symbol for row, n in zip(rows, reached, strict=True)):
                return time.monotonic() - began
            assert time.monotonic() - began < within, (
                f"{symbol}'s bars reached no subscription for {within:.0f} s"
            )
            time.sleep(0.5)

    # ---- what the engine says -------------------------------------------------------------

    def running(self) -> bool:
        return (state := engine_state()) is not None and state.state == "running"

    def messages(self, state: str | None = None) -> list[str]:
        return [m for s, m in self.log() if state is None or s == state]

    def said(self, *parts: str, state: str | None = None) -> str | None:
        """The first message (of ``state``) holding every one of ``parts``."""
        return next((m for m in self.messages(state) if all(p in m for p in parts)), None)

    def wait_said(self, *parts: str, state: str | None = None, timeout: float = WAIT) -> str:
        return wait_until(
            lambda: self.said(*parts, state=state), timeout=timeout,
            what=f"a {state or 'status'} message with {parts}; so far: {self.messages()[-6:]}",
        )  # fmt: skip

    def stream(self, symbol: str) -> tuple[str | None, str]:
        """The item's stream state in the engine state (streaming / stale / closed / refused)
        and its reason."""
        item = (engine_state().symbols or {}).get(symbol) or {}
        return item.get("stream"), item.get("stream_reason") or ""

    def wait_stream(self, symbol: str, stream: str, timeout: float = WAIT) -> str:
        """Until ``symbol``'s stream state is ``stream``; returns its reason."""
        wait_until(
            lambda: self.stream(symbol)[0] == stream, timeout=timeout,
            what=f"{symbol} {stream} (now {self.stream(symbol)})",
        )  # fmt: skip
        return self.stream(symbol)[1]

    def wait_streaming(self) -> None:
        """Every item streaming again (the feed checks its streams every second)."""
        for symbol in self.symbols:
            self.wait_stream(symbol, "streaming", timeout=5)

    def subscribes(self, symbol: str) -> int:
        assert self.gw is not None
        return sum(s["symbol"] == symbol for s in self.gw.call("logs")["subscribed"])

    # ---- the verdict ----------------------------------------------------------------------

    def finish(self, *, min_signals: int = 10) -> None:
        """Stop the worker; the stored signals must be exactly replay's over every bar IB
        had (history, then every live bar taken, delivered or not)."""
        assert self.proc is not None
        code = stop_worker(self.proc)
        assert code == 0, (self.tmp_path / "worker.log").read_text()
        history = [row for rows in self.history.values() for row in rows]
        expected, in_warmup = replay_split(self.tmp_path, self.rule, history, self.taken)
        assert len(expected) >= min_signals and in_warmup, "the bars must fire in both parts"
        if self.unsent:
            assert {t for t, *_ in expected} & self.unsent, "no signal from a bar never sent"
        stored = stored_signal_keys()
        missing = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        assert stored == expected, f"worker and replay disagree: missing {missing}, extra {extra}"
        assert Signal.objects.count() == len(set(stored)), "a duplicate signal"


@pytest.fixture
def day(tmp_path):
    # No daily restart time: a lost connection is never taken for it, whatever the hour.
    set_settings(ib_restart_time="")
    log = state_log_install()
    days: list[Day] = []

    def make(**kwargs) -> Day:
        days.append(Day(tmp_path, log, **kwargs))
        return days[-1]

    try:
        yield make
    finally:
        for d in days:
            d.stop()
        state_log_remove()


# ---- 1. 1100 → bars pause → 1102 (data kept) --------------------------------------------------


def test_1100_then_1102_pauses_without_resubscribing_and_fills_the_gap(day):
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("connectivity_lost")
    d.wait_said("TWS / IB Gateway lost its connection to IB's servers", state="reconnecting")
    for symbol in d.symbols:
        assert "lost its connection to IB's servers" in d.wait_stream(symbol, "stale")
    d.push(3, delivered=0)  # IB records them; TWS can't pass them on
    # Longer than the watchdog's window: renewing subscriptions now would be a storm of
    # requests for nothing (IB's servers are away).
    time.sleep(STALE_AFTER + 3)
    assert d.subscribes("AAPL") == d.subscribes("MSFT") == 1
    d.gw.call("connectivity_restored", data_kept=True)
    back = d.wait_said("connected to IB's servers again", state="running")
    assert "6 bars backfilled" in back, back
    wait_processed(d.push(20))
    assert d.subscribes("AAPL") == d.subscribes("MSFT") == 1, "data kept: no resubscription"
    assert d.gw.call("state")["cancel_count"] == 0
    d.wait_streaming()
    d.finish()


# ---- 2. 1100 → 1101 (data lost) --------------------------------------------------------------


def test_1100_then_1101_resubscribes_and_backfills_the_gap(day):
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("connectivity_lost")
    d.wait_said("lost its connection to IB's servers", state="reconnecting")
    d.push(3, delivered=0)
    d.gw.call("connectivity_restored", data_kept=False)
    back = d.wait_said("connected to IB's servers again", "market data was lost", state="running")
    assert "data resubscribed, 6 bars backfilled" in back, back
    for symbol in d.symbols:
        d.gw.call("wait_subscribed", symbol=symbol, total=2, timeout=WAIT)
    # As in real TWS the old subscriptions stay silent: only the new ones deliver, once.
    wait_processed(d.push(20))
    assert d.subscribes("AAPL") == d.subscribes("MSFT") == 2
    d.wait_streaming()
    d.finish()


# ---- 3. data-farm blip 2103 → 2104, then a subscription silently stops -------------------------


def test_farm_blip_then_silent_subscriptions_are_renewed_and_backfilled(day):
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("farm_broken")
    d.wait_said("IB market data farm connection is broken")
    d.push(2, delivered=0)
    # The farm is back, and AAPL's subscription is dead without a word (the bug reports).
    d.gw.call("farm_ok", mute=["AAPL"])
    took = d.flow_until_delivered("AAPL", within=STALE_AFTER + 5)
    # Later, AAPL's renewed subscription stops silently too: the watchdog, not the farm
    # notice, must find it.
    d.push(3)
    d.gw.call("mute", symbol="AAPL")
    took_again = d.flow_until_delivered("AAPL", within=STALE_AFTER + 5)
    wait_processed(d.push(20))
    assert d.said("AAPL", "renew"), d.messages()
    assert d.subscribes("AAPL") >= 3
    d.wait_streaming()
    print(f"AAPL flowing again {took:.1f} s after 2104, {took_again:.1f} s after going silent")
    # Every bar of the silent stretches (those IB recorded but never sent) comes from
    # history: replay's signals, no more, no less.
    d.finish()


def closed_hours(now: float) -> str:
    """An IB schedule (UTC) with no session from 3 days ago to 4 days ahead."""
    today = datetime.fromtimestamp(now, UTC).date()
    days = [today + timedelta(days=n) for n in range(-3, 8)]
    return ";".join(
        f"{day:%Y%m%d}:0930-{day:%Y%m%d}:1600" if day == days[-1] else f"{day:%Y%m%d}:CLOSED"
        for day in days
    )


def test_a_silent_item_whose_market_is_closed_is_not_resubscribed(day):
    d = day(symbols=("AAPL", "IBM"))
    hours = closed_hours(time.time())
    d.start(details={"IBM": {"trading_hours": hours, "liquid_hours": hours,
                             "time_zone_id": "UTC"}})  # fmt: skip
    assert "closed" in d.wait_stream("IBM", "closed")
    assert d.said("IBM — closed", "IB sends no realtime bars while a market is closed")
    wait_processed(d.push(20, symbols=["AAPL"]))
    # Both silent now; AAPL's market is open (its subscription is renewed), IBM's is closed.
    wait_until(lambda: d.subscribes("AAPL") >= 2, timeout=STALE_AFTER + 5, what="AAPL renewed")
    time.sleep(1)  # IBM has been silent longer than AAPL (no bars at all): one more check
    assert d.subscribes("IBM") == 1, "IB sends nothing while a market is closed: no renewal"
    assert d.stream("IBM")[0] == "closed"
    assert not d.said("IBM: no bars from IB"), d.messages()
    d.finish(min_signals=3)


# ---- 4. the gateway's daily restart -----------------------------------------------------------


def test_daily_restart_is_explained_and_the_engine_resumes(day):
    at = datetime.now(UTC).strftime("%H:%M")
    set_settings(ib_restart_time=at, ib_restart_zone="UTC")
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("daily_restart", seconds=4)
    said = d.wait_said("daily restart", state="reconnecting")
    assert said.startswith(f"TWS / IB Gateway daily restart ({at} UTC); back at"), said
    for symbol in d.symbols:
        assert "daily restart" in d.wait_stream(symbol, "stale")
    d.push(3, delivered=0)  # while the gateway is away: IB records them
    back = d.wait_said("Reconnected", "backfilled", state="running")
    assert "6 bars backfilled" in back, back
    wait_processed(d.push(20))
    assert not [m for m in d.messages() if "Lost the connection" in m]
    d.wait_streaming()
    d.finish()


# ---- 5. pacing violations in the warm-up and the backfill -------------------------------------


def test_pacing_violations_are_waited_out_and_every_item_warms_up(day):
    d = day()
    # IB counts pacing on its side (other programs' requests too): the warm-up's first two
    # requests are refused.
    d.start(enforce_pacing=True, actions=[{"cmd": "refuse_history", "count": 2}],
            timeout=60)  # fmt: skip
    assert d.said("IB refused a history request (pacing violation); waiting"), d.messages()
    wait_processed(d.push(10))
    d.gw.call("stop")
    d.push(3, delivered=0)
    d.gw.call("refuse_history", count=1)  # the backfill's first request
    d.gw.call("start")
    back = d.wait_said("Reconnected", "backfilled", state="running", timeout=60)
    assert "6 bars backfilled" in back, back
    wait_processed(d.push(20))
    gateway = d.gw.call("state")
    assert gateway["pacing_violations"] == [], "the engine itself kept IB's pacing rules"
    assert gateway["history_refusals"] == 0
    d.finish()


# ---- 6. a competing live session; the client id taken on reconnect ----------------------------


def test_competing_session_is_explained_and_bars_resume_when_it_ends(day):
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("competing_session", on=True)
    d.wait_said("competing live session")
    for symbol in d.symbols:
        assert "competing live session" in d.wait_stream(symbol, "refused")
    d.push(3, delivered=0)
    time.sleep(2)
    assert d.subscribes("AAPL") == d.subscribes("MSFT") == 1, "no resubscribe storm"
    d.gw.call("competing_session", on=False)
    wait_processed(d.push(20))  # the existing subscriptions deliver again
    d.wait_said("Bars from IB again: the competing live session ended.")
    d.wait_streaming()
    d.finish()


def test_client_id_taken_on_reconnect_is_retried_until_released(day):
    set_settings(ib_next_client_id=False)
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("take_client_id", client_id=17)
    d.gw.call("drop")
    wait_until(lambda: d.gw.call("state")["client_ids"].count(17) >= 3, timeout=WAIT,
               what="two refused reconnects")  # fmt: skip
    said = d.wait_said("Client id 17 is in use by another program", state="reconnecting")
    assert "Settings" in said, said
    d.push(3, delivered=0)
    assert engine_state().state == "reconnecting" and d.proc.poll() is None
    d.gw.call("release_client_id", client_id=17)
    d.wait_said("Reconnected", "6 bars backfilled", state="running")
    assert set(d.gw.call("state")["client_ids"]) == {17}, "the same client id, retried"
    wait_processed(d.push(20))
    d.finish()


def test_client_id_taken_on_reconnect_takes_the_next_when_allowed(day):
    set_settings(ib_next_client_id=True)
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("stop")
    d.push(3, delivered=0)
    d.gw.call("take_client_id", client_id=17)
    d.gw.call("start")
    back = d.wait_said("Reconnected", state="running")
    assert back.endswith(" as client id 18."), back
    assert "6 bars backfilled" in back, back
    assert d.said("Client id 17 is in use by another program; trying client id 18")
    assert d.gw.call("state")["client_ids"][-2:] == [17, 18]
    wait_processed(d.push(20))
    d.finish()


# ---- 7. a trade bust cancels a realtime subscription ------------------------------------------


def test_trade_bust_resubscribes_and_fills_the_gap(day):
    d = day().start()
    wait_processed(d.push(10))
    d.gw.call("trade_bust", symbol="AAPL")
    d.push(2, delivered=None)  # around the bust: some reach no subscription
    d.wait_said("AAPL:", "trade bust")
    time.sleep(0.5)
    aapl = [s for s in d.gw.call("state")["subscriptions"] if s["symbol"] == "AAPL"]
    assert [s["muted"] for s in aapl] == [False], aapl
    wait_processed(d.push(20))
    d.wait_streaming()
    d.finish()


# ---- 8. a bar twice, out of order, far in the future or the past ------------------------------


def test_bad_bars_are_ignored_counted_and_never_signal_twice(day):
    d = day().start()
    first = d.push(10)
    wait_processed(first)
    aapl = [r for r in first if r[6] == "AAPL"]
    t = aapl[-1][0]
    bad = [
        aapl[-1],  # the last bar again
        aapl[-4],  # an older one, out of order
        (t + 86400, *aapl[-1][1:]),  # a day ahead
        (t - 86400, *aapl[-1][1:]),  # a day old
    ]
    for row in bad:
        push_rows(d.gw, [row])  # IB sends them as given
    wait_processed(d.push(20))
    d.wait_said("AAPL: ignored 4 bars")
    d.finish()

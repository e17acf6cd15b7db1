"""Benchmark of per-instrument trading hours (engine/feeds/hours.py) and the demo's paths.

    python bench/hours_bench.py [--calls 200000]

Reports:

* ``is_open`` + ``line`` per call (what the status, the tiles and the watchdog ask about
  every item every second), open and closed, for hours read from IB's strings and for the
  exchange-calendar fallbacks (target: under 20 µs per pair, i.e. microseconds);
* ``TradingHours.from_ib`` on a month of CME sessions in each of IB's two formats;
* the fallback calendars' one-time build (pandas import included in the first);
* the demo market's bars per second for a stock (cents) and for ES and EURUSD (tick grids).

Times are wall-clock medians over batches; CPU time is printed beside the totals since other
programs may share the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.core.instruments import parse_item  # noqa: E402
from engine.feeds.demo import demo_market  # noqa: E402
from engine.feeds.hours import TradingHours, fallback_hours  # noqa: E402

TARGET_PAIR_US = 20.0
BATCH = 1_000


def cme_month(newer: bool) -> str:
    """A month of Globex sessions as IB writes them (newer: dated ends; older: trading day)."""
    parts = []
    day = date(2026, 11, 1)  # a Sunday
    for _ in range(30):
        nxt = day + timedelta(days=1)
        if day.weekday() == 5:
            parts.append(f"{day:%Y%m%d}:CLOSED")
        elif day.weekday() in (6, 0, 1, 2, 3):  # evening opens Sunday to Thursday
            if newer:
                parts.append(f"{day:%Y%m%d}:1700-{nxt:%Y%m%d}:1600")
            else:
                parts.append(f"{nxt:%Y%m%d}:1700-1600")
        day = nxt
    return ";".join(parts)


def per_call_us(fn, calls: int) -> float:
    samples = []
    for _ in range(max(1, calls // BATCH)):
        start = time.perf_counter_ns()
        for _ in range(BATCH):
            fn()
        samples.append((time.perf_counter_ns() - start) / BATCH / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    cpu0 = time.process_time()

    print("from_ib (a month of CME sessions):")
    for newer in (True, False):
        text = cme_month(newer)
        us = per_call_us(
            lambda text=text: TradingHours.from_ib(text, "", "US/Central", venue="CME Globex"),
            2_000,
        )
        label = "newer format" if newer else "older format"
        print(f"  {label:14} {len(text):5} chars  {us:8.1f} µs per parse")

    print("fallback calendars, first build:")
    built = {}
    for item in ("AAPL", "ES:FUT:CME", "SAP:STK:IBIS:EUR", "EURUSD:CASH", "BTC:CRYPTO"):
        start = time.perf_counter()
        built[item] = fallback_hours(parse_item(item))
        print(f"  {item:18} {time.perf_counter() - start:7.3f} s")

    cme = TradingHours.from_ib(cme_month(True), "", "US/Central", venue="CME Globex")
    cases = [
        ("IB CME, open", cme, datetime(2026, 11, 10, 15, tzinfo=UTC)),
        ("IB CME, closed (weekend)", cme, datetime(2026, 11, 14, 12, tzinfo=UTC)),
        ("ES fallback, open", built["ES:FUT:CME"], datetime(2026, 12, 8, 15, tzinfo=UTC)),
        ("ES fallback, closed", built["ES:FUT:CME"], datetime(2026, 12, 5, 12, tzinfo=UTC)),
        ("AAPL, closed (rth)", built["AAPL"], datetime(2026, 12, 8, 10, tzinfo=UTC)),
        ("SAP, closed", built["SAP:STK:IBIS:EUR"], datetime(2026, 12, 8, 20, tzinfo=UTC)),
        ("EURUSD, open", built["EURUSD:CASH"], datetime(2026, 12, 9, 3, tzinfo=UTC)),
        ("BTC, open", built["BTC:CRYPTO"], datetime(2026, 12, 5, 12, tzinfo=UTC)),
    ]
    print(f"is_open + line per call (target < {TARGET_PAIR_US:g} µs):")
    worst = 0.0
    for label, hours, now in cases:
        rth = label.endswith("(rth)")
        us = per_call_us(
            lambda hours=hours, now=now, rth=rth: (
                hours.is_open(now, rth=rth),
                hours.line(now, rth=rth),
            ),
            args.calls // len(cases),
        )
        worst = max(worst, us)
        print(f"  {label:26} {us:6.2f} µs   {hours.line(now, rth=rth)}")

    print("demo bars per second:")
    for item in ("AAPL", "ES:FUT:CME", "EURUSD:CASH"):
        market = demo_market(item)
        count = 200_000
        start = time.perf_counter()
        for i in range(count):
            market.bar(item, i * 5, 5)
        print(f"  {item:12} {count / (time.perf_counter() - start):12,.0f} bars/s")

    print(f"CPU time: {time.process_time() - cpu0:.1f} s")
    verdict = "OK" if worst < TARGET_PAIR_US else "SLOW"
    print(f"worst is_open + line: {worst:.2f} µs ({verdict}, target {TARGET_PAIR_US:g} µs)")


if __name__ == "__main__":
    main()

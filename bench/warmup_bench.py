"""Benchmark of long warm-ups (higher-timeframe operands) in the feeds.

    .venv/bin/python bench/warmup_bench.py

Reports, wall clock and CPU time of this process:

* **IB, five symbols, MA200@1h on 5-second bars** (144,721 bars asked per symbol): the IB
  feed through ib_async against the fake TWS running in this process (loopback, answers at
  once, IB's pacing rules enforced). The warm-up stops at the pacing budget (9 requests of
  one hour per symbol, 45 in all); reported: time from ``events()`` to "running", requests,
  bars, pacing violations (must be 0). Against a real TWS each request also waits for IB's
  history farm; the pacing waits measured here are the floor.
* **IB, one symbol, 3,000 bars across a night gap**: the walk back with the hourly map.
* **demo, five symbols, the same rule**: the demo feed's capped warm-up (100,000 bars for all
  symbols) taken into ``SymbolRules.warm`` as the worker does, and the uncapped cost of the
  same rule's 144,721 bars × 5 extrapolated from it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.core.machine import SymbolRules  # noqa: E402
from engine.core.rules import validate_definition  # noqa: E402
from engine.core.text import parse_text  # noqa: E402
from engine.feeds.base import BarEvent, StatusEvent  # noqa: E402
from engine.feeds.demo import DemoFeed  # noqa: E402
from engine.feeds.ib import IBFeed  # noqa: E402
from tests.faketws import FakeTWS  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
HOUR = 3600
RULE = validate_definition({**parse_text("PRICE > MA200@1h AND MA5 > MA20"), "cooldown_sec": 0})


def rows(start: int, count: int, price: float) -> list[tuple]:
    return [(start + i * 5, price, price + 0.02, price - 0.02, price + 0.01, 100) for i in
            range(count)]  # fmt: skip


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


async def ib_run(history: dict[str, list[tuple]], warmup_bars: int, now: int) -> dict:
    gw = FakeTWS(now=lambda: now)
    gw.enforce_pacing = True
    for symbol, bars in history.items():
        gw.add_symbol(symbol, history={5: bars})
    await gw.start()
    feed = IBFeed(host="127.0.0.1", port=gw.port, client_id=17, connect_timeout=5)
    wall, cpu = clocks()
    bars = notices = 0
    try:
        async for event in feed.events(list(history), bar_seconds=5, warmup_bars=warmup_bars):
            if isinstance(event, BarEvent):
                bars += 1
            elif event.state == "notice":
                notices += 1
            elif event.state == "running":
                break
        wall_end, cpu_end = clocks()
    finally:
        await feed.close()
        await gw.stop()
    return {
        "seconds": wall_end - wall,
        "cpu": cpu_end - cpu,
        "requests": len(gw.history_log),
        "bars": bars,
        "notices": notices,
        "violations": len(gw.pacing_violations()),
    }


async def demo_run() -> dict:
    feed = DemoFeed(speed=0, max_bars=0)
    machines: dict[str, SymbolRules] = {}
    wall, cpu = clocks()
    bars = 0
    capped = ""
    async for event in feed.events(SYMBOLS, bar_seconds=5, warmup_bars=RULE.warmup_bars(5)):
        if isinstance(event, BarEvent):
            machine = machines.get(event.bar.symbol)
            if machine is None:
                machine = machines[event.bar.symbol] = SymbolRules([RULE], event.bar.symbol)
            machine.warm(event.bar)
            bars += 1
        elif isinstance(event, StatusEvent) and event.state == "notice":
            capped = event.message
    wall_end, cpu_end = clocks()
    return {"seconds": wall_end - wall, "cpu": cpu_end - cpu, "bars": bars, "notice": capped}


def main() -> None:
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)  # "no data" for the night window
    now = int(time.time()) // HOUR * HOUR
    print(f"rule: {RULE.warmup_bars(5):,} 5-second bars of warm-up per symbol")
    five = asyncio.run(
        ib_run(
            {s: rows(now - 10 * HOUR, 7200, 100.0 + i) for i, s in enumerate(SYMBOLS)},
            RULE.warmup_bars(5),
            now,
        )  # fmt: skip
    )
    print(
        f"IB, 5 symbols over budget: {five['seconds']:.2f} s to running "
        f"(CPU {five['cpu']:.2f} s), {five['requests']} requests, {five['bars']:,} bars, "
        f"{five['notices']} notices, {five['violations']} pacing violations"
    )
    night = {"AAPL": rows(now - 13 * HOUR, 2160, 180.0) + rows(now - 2 * HOUR, 1440, 190.0)}
    one = asyncio.run(ib_run(night, 3000, now))
    print(
        f"IB, 1 symbol across a night: {one['seconds']:.2f} s to running "
        f"(CPU {one['cpu']:.2f} s), {one['requests']} requests, {one['bars']:,} bars, "
        f"{one['violations']} pacing violations"
    )
    demo = asyncio.run(demo_run())
    per_bar = demo["cpu"] / demo["bars"]
    uncapped = per_bar * RULE.warmup_bars(5) * len(SYMBOLS)
    print(
        f"demo, 5 symbols: {demo['bars']:,} warm-up bars into SymbolRules in "
        f"{demo['seconds']:.2f} s (CPU {demo['cpu']:.2f} s, {per_bar * 1e6:.1f} µs a bar); "
        f"uncapped it would be {uncapped:.1f} s of CPU"
    )
    print(f"  {demo['notice']}")


if __name__ == "__main__":
    main()

"""Benchmark of the signal core against a naive pandas loop and a talipp loop.

    python bench/core_bench.py [--bars 1000000] [--pandas-sample 5000] [--keep DIR]
    python bench/core_bench.py --yardstick [--bars 200000] [--repeat 3]
    python bench/core_bench.py --backtest [--bars 1000000] [--repeat 1] [--base 651d44b]

Generates its own file of 5-second bars in a temporary directory and reports, in one run:

* per-bar cost of ``SymbolMachine.on_bar`` (median over batches of 1,000 bars) for the
  default rule and for a rule using EMA/RSI, next to the same rules computed per bar by
  (a) a naive pandas loop that recomputes the indicators over the trailing bars on every bar
  (run on a sample and extrapolated when the full run would take too long; the output says
  so) and (b) an incremental loop built on talipp;
* ``manage.py replay`` end to end on the whole file (CSV parse and JSON out included), and
  the pure replay function without Django start-up;
* peak memory (max RSS) of the replay on the full file and on a tenth of it, to show it is
  flat in the number of bars;
* three active rules with side and ``@1m``/``@5m`` operands on one symbol
  (``SymbolRules``), per bar, next to the default rule measured again in the same run
  (target: at most 3× the single default rule).

``--yardstick`` measures only the core against a plain-float yardstick: the same rules
written as a bare incremental loop over Python floats (running sums, no exactness, no
de-duplication), per bar, and the pure replay against the same loop behind a bare
``csv.reader``, all in CPU time, alternating ``--repeat`` times. The ratios (core ÷
yardstick) change little when other programs load the machine, so they compare two versions
of the core measured at different moments.

``--backtest`` runs, side by side over one file of 5-second bars, each in a child process
(CPU time, peak RSS): a plain float loop reading the CSV (csv.reader and float() of every
field, nothing else), the pure replay, the pure backtest with horizons 1m,5m,15m (the default
rule; JSON lines out), and the pure replay of the ``--base`` commit (a temporary git worktree,
removed afterwards) — so "replay now", "replay before" and "backtest" compare on the same
file under the same load. Targets: replay ≥ 0.25× the float loop's bars/s; backtest ≥ the
replay before's bars/s; backtest peak RSS ≤ 200 MB.

Times are wall-clock and CPU (user+system of the process) where it matters; CPU time is the
fairer number when other programs share the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.core.bars import Bar  # noqa: E402
from engine.core.machine import SymbolMachine, SymbolRules  # noqa: E402
from engine.core.rules import DEFAULT_RULE_DEFINITION, validate_definition  # noqa: E402
from engine.core.text import format_text, parse_text  # noqa: E402

START = int(datetime(2025, 12, 16, 9, 30, tzinfo=UTC).timestamp())
BATCH = 1_000
CHUNK = 100_000
TARGET_CORE_NS = 2_000
TARGET_REPLAY_BARS_PER_S = 200_000
TARGET_PEAK_MB = 200
TARGET_THREE_RULES_RATIO = 3.0

RULES = {
    "default": dict(DEFAULT_RULE_DEFINITION),
    "ema_rsi": {
        **parse_text("EMA9 crosses_above EMA21 AND RSI14 < 70"),
        "cooldown_sec": 60,
        "trigger": "level",
    },
}

# Three active rules on one symbol, with a side and higher-timeframe operands (DESIGN §7.2).
TIMEFRAME_RULES = [
    {**parse_text("PRICE > MA20@1m AND MA5 > MA10"), "cooldown_sec": 60, "side": "buy"},
    {**parse_text("PRICE < MA20@1m AND RSI14@5m > 30"), "cooldown_sec": 60, "side": "sell"},
    {**parse_text("MA5@1m crosses_above MA20@5m"), "cooldown_sec": 300, "side": "buy"},
]


# --------------------------------------------------------------------------------- data


def make_prices(n: int, *, seed: int = 42) -> tuple[list[int], list[int], list[int]]:
    """Tick-size random walk in cents with flat stretches and trends: closes, highs, lows."""
    rng = random.Random(seed)
    price, drift = 18_920, 0
    closes, highs, lows = [], [], []
    for i in range(n):
        if i % 500 == 0:
            drift = rng.choice((-1, 0, 0, 1))
        step = 0 if rng.random() < 0.3 else rng.choice((-2, -1, 1, 2)) + drift
        opened = price
        price = max(100, price + step)
        closes.append(price)
        highs.append(max(opened, price) + rng.choice((0, 1)))
        lows.append(min(opened, price) - rng.choice((0, 1)))
    return closes, highs, lows


def write_csv(path: Path, n: int) -> None:
    closes, highs, lows = make_prices(n)
    rng = random.Random(7)
    with path.open("w") as out:
        out.write("time,open,high,low,close,volume\n")
        opened = closes[0]
        day_cache: dict[int, str] = {}
        for i in range(n):
            t = START + 5 * i
            day = t - t % 86_400
            prefix = day_cache.get(day)
            if prefix is None:
                prefix = day_cache[day] = datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%dT")
            sod = t - day
            stamp = f"{prefix}{sod // 3600:02d}:{sod % 3600 // 60:02d}:{sod % 60:02d}"
            close = closes[i]
            out.write(
                f"{stamp},{opened / 100:.2f},{highs[i] / 100:.2f},{lows[i] / 100:.2f},"
                f"{close / 100:.2f},{rng.randint(1, 60) * 100}\n"
            )
            opened = close


def bar_chunks(n: int):
    """The benchmark bars as Bar objects, CHUNK at a time (bounded memory)."""
    closes, highs, lows = make_prices(n)
    opened = closes[0] / 100
    for start in range(0, n, CHUNK):
        chunk = []
        for i in range(start, min(n, start + CHUNK)):
            close = closes[i] / 100
            chunk.append(
                Bar("AAPL", START + 5 * i, 5, opened, highs[i] / 100, lows[i] / 100, close, 100.0)
            )
            opened = close
        yield chunk


# --------------------------------------------------------------------------- core loops


def time_batches(n: int, make_step):
    """Run ``step(bar)`` over all bars; per-bar ns of every batch of BATCH bars."""
    step, signals = make_step()
    samples: list[float] = []
    clock = time.perf_counter_ns
    fired = 0
    gc.disable()
    try:
        for chunk in bar_chunks(n):
            for k in range(0, len(chunk), BATCH):
                batch = chunk[k : k + BATCH]
                t0 = clock()
                for bar in batch:
                    if step(bar) is not None:
                        fired += 1
                samples.append((clock() - t0) / len(batch))
    finally:
        gc.enable()
    return samples, fired + signals()


def core_step(rule_key: str):
    def make():
        machine = SymbolMachine(validate_definition(RULES[rule_key]), "AAPL")
        return machine.on_bar, lambda: 0

    return make


def rules_step():
    """The three timeframe rules on one symbol; ``step`` returns None when none fires."""

    def make():
        book = SymbolRules([validate_definition(r) for r in TIMEFRAME_RULES], "AAPL")
        on_bar = book.on_bar
        extra = [0]

        def step(bar):
            fired = on_bar(bar)
            if fired:
                extra[0] += len(fired) - 1
                return fired
            return None

        return step, lambda: extra[0]

    return make


def talipp_step(rule_key: str):
    """The same rule as an incremental loop on talipp indicators (float compares)."""
    from talipp.indicators import EMA, RSI, SMA

    def make():
        cooldown = RULES[rule_key]["cooldown_sec"]
        state = {"until": None}
        if rule_key == "default":
            ma5, ma10 = SMA(5), SMA(10)

            def truth(close):
                ma5.add(close)
                ma10.add(close)
                a, b = ma5[-1], ma10[-1]
                return a is not None and b is not None and close > a and a > b

        else:
            ema9, ema21, rsi14 = EMA(9), EMA(21), RSI(14)
            prev = {"above": None}

            def truth(close):
                ema9.add(close)
                ema21.add(close)
                rsi14.add(close)
                a, b, r = ema9[-1], ema21[-1], rsi14[-1]
                if a is None or b is None:
                    prev["above"] = None
                    return False
                was, prev["above"] = prev["above"], a > b
                return was is False and a > b and r is not None and r < 70

        def step(bar):
            fire = truth(bar.close)
            close_time = bar.time + bar.seconds
            until = state["until"]
            if until is not None and close_time < until:
                return None
            state["until"] = None
            if fire:
                state["until"] = close_time + cooldown
                return True
            return None

        return step, lambda: 0

    return make


def plain_step(rule_key: str):
    """The yardstick: the same rule as a bare incremental loop over Python floats."""

    def make():
        cooldown = RULES[rule_key]["cooldown_sec"]
        state = {"until": None}
        if rule_key == "default":
            buf = [0.0] * 10
            sums = [0.0, 0.0, 0]  # sum of the last 5, of the last 10, bars seen

            def truth(close):
                i = sums[2]
                sums[2] = i + 1
                sums[0] += close - buf[(i - 5) % 10] if i >= 5 else close
                sums[1] += close - buf[i % 10]
                buf[i % 10] = close
                if i < 9:
                    return False
                ma5, ma10 = sums[0] / 5, sums[1] / 10
                return close > ma5 and ma5 > ma10

        else:
            k9, k21 = 2 / 10, 2 / 22
            st = {"n": 0, "e9": 0.0, "e21": 0.0, "prev": None, "g": 0.0, "l": 0.0,
                  "above": None}  # fmt: skip

            def truth(close):
                n = st["n"] = st["n"] + 1
                e9, e21 = st["e9"], st["e21"]
                e9 = e9 + close if n <= 9 else e9 + k9 * (close - e9)
                e21 = e21 + close if n <= 21 else e21 + k21 * (close - e21)
                st["e9"], st["e21"] = e9, e21
                prev, st["prev"] = st["prev"], close
                rsi = None
                if prev is not None:
                    change = close - prev
                    gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
                    if n <= 15:
                        st["g"] += gain
                        st["l"] += loss
                        if n == 15:
                            st["g"] /= 14
                            st["l"] /= 14
                    else:
                        st["g"] = (st["g"] * 13 + gain) / 14
                        st["l"] = (st["l"] * 13 + loss) / 14
                    if n >= 15:
                        total = st["g"] + st["l"]
                        rsi = 100 * st["g"] / total if total else 0.0
                if n < 21:
                    return False
                a = e9 / 9 if n == 9 else e9
                b = e21 / 21 if n == 21 else e21
                if n == 21:
                    st["e21"] = b
                was, st["above"] = st["above"], a > b
                return was is False and a > b and rsi is not None and rsi < 70

        def step(bar):
            fire = truth(bar.close)
            close_time = bar.time + bar.seconds
            until = state["until"]
            if until is not None and close_time < until:
                return None
            state["until"] = None
            if fire:
                state["until"] = close_time + cooldown
                return True
            return None

        return step, lambda: 0

    return make


def pandas_step(rule_key: str, lookback: int = 500):
    """Naive loop: keep the bars, recompute indicators over the trailing window each bar."""
    import pandas as pd

    def make():
        closes: list[float] = []
        cooldown = RULES[rule_key]["cooldown_sec"]
        state = {"until": None, "above": None}

        def truth() -> bool:
            series = pd.Series(closes[-lookback:])
            if rule_key == "default":
                ma5 = series.rolling(5).mean().iloc[-1]
                ma10 = series.rolling(10).mean().iloc[-1]
                return bool(series.iloc[-1] > ma5 and ma5 > ma10)
            ema9 = series.ewm(span=9, adjust=False).mean().iloc[-1]
            ema21 = series.ewm(span=21, adjust=False).mean().iloc[-1]
            delta = series.diff()
            gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean().iloc[-1]
            loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean().iloc[-1]
            rsi = 100 * gain / (gain + loss) if gain + loss else 0.0
            above = bool(ema9 > ema21)  # numpy bools are not the False singleton
            was, state["above"] = state["above"], above
            return was is False and above and bool(rsi < 70)

        def step(bar):
            closes.append(bar.close)
            if len(closes) > 4 * lookback:
                del closes[:-lookback]
            fire = truth()
            close_time = bar.time + bar.seconds
            until = state["until"]
            if until is not None and close_time < until:
                return None
            state["until"] = None
            if fire:
                state["until"] = close_time + cooldown
                return True
            return None

        return step, lambda: 0

    return make


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ns": statistics.median(ordered),
        "p90_ns": ordered[int(len(ordered) * 0.9)],
        "mean_ns": statistics.fmean(ordered),
    }


# ------------------------------------------------------------------------------ replay


# Runs a script (argv[1]) with its arguments and reports its own peak RSS (VmHWM) on stderr.
# Measured inside the child because a forked child's ru_maxrss can include the parent's pages.
LAUNCHER = """
import atexit, runpy, sys
def report():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM'):
                sys.stderr.write('PEAK_KB ' + line.split()[1] + '\\n')
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run_measured(script: list[str], **kwargs) -> dict[str, float]:
    """Run a Python script in a child; wall time, CPU time (wait4) and peak RSS."""
    cmd = [sys.executable, "-c", LAUNCHER, *script]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    lines = 0
    assert proc.stdout is not None and proc.stderr is not None
    for _ in proc.stdout:
        lines += 1
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(script)} failed ({proc.returncode}): {err.strip()}")
    peak = [int(x.split()[1]) for x in err.splitlines() if x.startswith("PEAK_KB ")]
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": peak[-1] / 1024 if peak else float("nan"),
        "events": lines,
    }


PURE_REPLAY = (
    "import sys\n"
    "from engine.core.replay import load_rule_file, replay_lines\n"
    "w = sys.stdout.write\n"
    "for line in replay_lines(sys.argv[1], load_rule_file(sys.argv[2])): w(line + '\\n')\n"
)


# The replay yardstick: csv.reader, float() of every field, the plain-float default rule,
# one JSON line per signal. What replay does, minus exactness, checks and Bars.
PLAIN_REPLAY = (
    "import csv, json, sys\n"
    "sys.path.insert(0, sys.argv[3])\n"
    "from bench.core_bench import plain_step\n"
    "class B:\n"
    "    __slots__ = ('time', 'seconds', 'close')\n"
    "step, _ = plain_step('default')()\n"
    "w = sys.stdout.write\n"
    "with open(sys.argv[1], newline='') as f:\n"
    "    rows = csv.reader(f)\n"
    "    next(rows)\n"
    "    b = B()\n"
    "    b.seconds = 5\n"
    "    for i, (t, o, h, lo, c, v) in enumerate(rows):\n"
    "        b.time = i * 5\n"
    "        o, h, lo, b.close, v = float(o), float(h), float(lo), float(c), float(v)\n"
    "        if step(b):\n"
    "            w(json.dumps({'symbol': 'AAPL', 'price': b.close, 'time': t}) + '\\n')\n"
)


def cpu_batches(n: int, make_step) -> tuple[float, int]:
    """Median CPU ns per bar over batches of BATCH bars, and the signal count."""
    step, signals = make_step()
    samples: list[float] = []
    clock = time.process_time_ns
    fired = 0
    gc.disable()
    try:
        for chunk in bar_chunks(n):
            for k in range(0, len(chunk), BATCH):
                batch = chunk[k : k + BATCH]
                t0 = clock()
                for bar in batch:
                    if step(bar) is not None:
                        fired += 1
                samples.append((clock() - t0) / len(batch))
    finally:
        gc.enable()
    return statistics.median(samples), fired + signals()


def yardstick(n: int, repeat: int) -> None:
    """The core against the plain-float yardstick, alternating, in CPU time."""
    print(f"ScalpSignal core vs a plain-float yardstick — {n:,} 5-second bars, repeated "
          f"{repeat}×, CPU time, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    ratios: dict[str, list[float]] = {}
    lines = []
    for _ in range(repeat):
        for key in RULES:
            core_ns, fired = cpu_batches(n, core_step(key))
            plain_ns, plain_fired = cpu_batches(n, plain_step(key))
            ratios.setdefault(key, []).append(core_ns / plain_ns)
            lines.append(f"  {key:<8} core {core_ns / 1000:6.2f}µs ({fired:,} signals)  "
                         f"plain floats {plain_ns / 1000:6.2f}µs ({plain_fired:,})  "
                         f"core/plain {core_ns / plain_ns:5.2f}")  # fmt: skip
            print(lines[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        csv_path = directory / "aapl_5s.csv"
        rule_path = directory / "rule.json"
        write_csv(csv_path, n)
        rule_path.write_text(json.dumps({"id": 1, "name": "MA Momentum", **RULES["default"]}))
        pure, plain = directory / "pure_replay.py", directory / "plain_replay.py"
        pure.write_text(PURE_REPLAY)
        plain.write_text(PLAIN_REPLAY)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for _ in range(repeat):
            core = run_measured([str(pure), str(csv_path), str(rule_path)], cwd=ROOT, env=env)
            base = run_measured([str(plain), str(csv_path), str(rule_path), str(ROOT)],
                                cwd=ROOT, env=env)  # fmt: skip
            ratios.setdefault("replay", []).append(core["cpu_s"] / base["cpu_s"])
            print(f"  replay   pure replay_lines() {n / core['cpu_s']:>9,.0f} bars/s CPU "
                  f"({core['events']:,} events)  plain csv+floats {n / base['cpu_s']:>9,.0f} "
                  f"bars/s ({base['events']:,})  core/plain time "
                  f"{core['cpu_s'] / base['cpu_s']:5.2f}", flush=True)  # fmt: skip
    print("\nMedian core/plain cost ratios (lower is better; 1.00 = as fast as bare floats)")
    for key, values in ratios.items():
        print(f"  {key:<8} {statistics.median(values):5.2f}   (runs: "
              f"{', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip


# The float loop the reader is measured against: csv.reader and float() of every field.
PLAIN_FLOATS = (
    "import csv, sys\n"
    "n = 0\n"
    "with open(sys.argv[1], newline='') as f:\n"
    "    rows = csv.reader(f)\n"
    "    next(rows)\n"
    "    for t, o, h, lo, c, v in rows:\n"
    "        o, h, lo, c, v = float(o), float(h), float(lo), float(c), float(v)\n"
    "        n += 1\n"
    "print(n)\n"
)

PURE_BACKTEST = (
    "import sys\n"
    "from engine.core.backtest import backtest_lines\n"
    "from engine.core.replay import load_rules_file\n"
    "w = sys.stdout.write\n"
    "for line in backtest_lines(sys.argv[1], load_rules_file(sys.argv[2]),\n"
    "                           horizons=(60, 300, 900)):\n"
    "    w(line + '\\n')\n"
)

TARGET_READER_RATIO = 0.25


def backtest_bench(n: int, repeat: int, base: str) -> None:
    """Float loop, replay now, replay at ``base``, backtest: one file, one run, CPU time."""
    print(f"Backtest and replay vs a plain float loop — {n:,} 5-second bars, CPU time, "
          f"repeated {repeat}×, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        csv_path = directory / "aapl_5s.csv"
        rule_path = directory / "rule.json"
        write_csv(csv_path, n)
        rule_path.write_text(json.dumps({"id": 1, "name": "MA Momentum", **RULES["default"]}))
        scripts = {}
        for name, text in (("plain", PLAIN_FLOATS), ("replay", PURE_REPLAY),
                           ("backtest", PURE_BACKTEST)):  # fmt: skip
            scripts[name] = directory / f"{name}.py"
            scripts[name].write_text(text)
        worktree = directory / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), base],
                       check=True, capture_output=True)  # fmt: skip
        try:
            env_now = {**os.environ, "PYTHONPATH": str(ROOT)}
            env_base = {**os.environ, "PYTHONPATH": str(worktree)}
            files = [str(csv_path), str(rule_path)]
            runs: dict[str, list[dict[str, float]]] = {}
            for _ in range(repeat):
                for label, script, cwd, env in (
                    ("float loop", "plain", ROOT, env_now),
                    (f"replay before ({base})", "replay", worktree, env_base),
                    ("replay now", "replay", ROOT, env_now),
                    ("backtest 1m,5m,15m", "backtest", ROOT, env_now),
                ):
                    r = run_measured([str(scripts[script]), *files], cwd=cwd, env=env)
                    runs.setdefault(label, []).append(r)
                    print(f"  {label:<24} {n / r['cpu_s']:>10,.0f} bars/s CPU  "
                          f"{r['cpu_s']:6.2f}s  peak RSS {r['peak_rss_mb']:5.0f} MB  "
                          f"{r['events']:>7,} lines", flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], capture_output=True)  # fmt: skip
    rate = {label: n / statistics.median(r["cpu_s"] for r in rs) for label, rs in runs.items()}
    peak = max(r["peak_rss_mb"] for r in runs["backtest 1m,5m,15m"])
    plain, before = rate["float loop"], rate[f"replay before ({base})"]
    now, backtest = rate["replay now"], rate["backtest 1m,5m,15m"]
    print("\nMedian bars/s (CPU)")
    for label, value in rate.items():
        print(f"  {label:<24} {value:>10,.0f}  = {value / plain:.2f}× the float loop")
    print(f"  replay now / replay before: {now / before:.2f}×; "
          f"backtest / replay before: {backtest / before:.2f}×")  # fmt: skip
    checks = [
        (f"replay ≥ {TARGET_READER_RATIO}× the float loop ({now / plain:.2f}×)",
         now >= TARGET_READER_RATIO * plain),
        (f"backtest {backtest:,.0f} bars/s ≥ replay before {before:,.0f} bars/s",
         backtest >= before),
        (f"backtest peak RSS {peak:.0f} MB ≤ {TARGET_PEAK_MB} MB", peak <= TARGET_PEAK_MB),
    ]  # fmt: skip
    print("\nTargets")
    for name, ok in checks:
        print(f"  [{'x' if ok else ' '}] {name}")


# -------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument(
        "--pandas-sample", type=int, default=5_000,
        help="bars to run the pandas baseline on before extrapolating (0 = all)",
    )  # fmt: skip
    parser.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    parser.add_argument(
        "--only-timeframes", action="store_true",
        help="measure only the three timeframe rules against the default rule",
    )  # fmt: skip
    parser.add_argument(
        "--yardstick", action="store_true",
        help="measure only the core against the plain-float yardstick (CPU time)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="rounds for --yardstick")
    parser.add_argument(
        "--backtest", action="store_true",
        help="float loop, replay now and at --base, and backtest over one file (CPU time)",
    )  # fmt: skip
    parser.add_argument("--base", default="651d44b", help="the commit 'replay before' runs")
    args = parser.parse_args()
    n = args.bars
    if args.backtest:
        backtest_bench(n, args.repeat, args.base)
        return
    if args.yardstick:
        yardstick(n, args.repeat)
        return

    print(f"ScalpSignal core benchmark — {n:,} 5-second bars, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    results: dict[str, object] = {"bars": n}

    # 0. several rules with higher timeframes vs the default rule, measured back to back
    print("\nSeveral active rules (median per bar of batches of 1,000 bars)")
    default_ns = summarize(time_batches(n, core_step("default"))[0])["median_ns"]
    three, three_fired = time_batches(n, rules_step())
    three_ns = summarize(three)["median_ns"]
    ratio = three_ns / default_ns
    print(f"  default rule, one SymbolMachine   {default_ns / 1000:>8.2f}µs")
    for rule in TIMEFRAME_RULES:
        print(f"    {rule['side']:<4} {format_text(validate_definition(rule))}")
    print(f"  3 rules with @1m/@5m, SymbolRules {three_ns / 1000:>8.2f}µs  "
          f"= {ratio:.2f}× the default rule; {three_fired:,} signals")  # fmt: skip
    results["timeframes"] = {"default_ns": default_ns, "three_rules_ns": three_ns,
                             "ratio": ratio, "signals": three_fired}  # fmt: skip
    if args.only_timeframes:
        ok = ratio <= TARGET_THREE_RULES_RATIO
        print(f"\n  [{'x' if ok else ' '}] 3 timeframe rules ≤ {TARGET_THREE_RULES_RATIO:g}× "
              "the default rule")  # fmt: skip
        return

    # 1. per-bar cost
    print("\nPer-bar cost (median of batches of 1,000 bars; lower is better)")
    print(f"{'rule':<10} {'implementation':<34} {'median':>10} {'p90':>10} {'signals':>9}")
    for key in RULES:
        text = format_text(validate_definition(RULES[key]))
        core, fired = time_batches(n, core_step(key))
        core_stats = summarize(core)
        talipp, talipp_fired = time_batches(n, talipp_step(key))
        talipp_stats = summarize(talipp)
        sample = n if args.pandas_sample <= 0 else min(n, args.pandas_sample)
        pandas_samples, pandas_fired = time_batches(sample, pandas_step(key))
        pandas_stats = summarize(pandas_samples)
        note = "" if sample == n else f" (sample of {sample:,}, extrapolated)"
        rows = [
            ("scalpsignal core (incremental)", core_stats, fired),
            ("talipp incremental loop", talipp_stats, talipp_fired),
            ("pandas recompute per bar" + ("*" if note else ""), pandas_stats, pandas_fired),
        ]
        print(f"{key:<10} = {text}")
        for name, st, sig in rows:
            print(f"{'':<10} {name:<34} {st['median_ns'] / 1000:>8.2f}µs "
                  f"{st['p90_ns'] / 1000:>8.2f}µs {sig:>9,}")  # fmt: skip
        pandas_total = pandas_stats["mean_ns"] * n / 1e9
        vs_talipp = talipp_stats["median_ns"] / core_stats["median_ns"]
        vs_pandas = pandas_stats["median_ns"] / core_stats["median_ns"]
        print(f"{'':<10} core vs talipp: {vs_talipp:.1f}× "
              f"faster; vs pandas: {vs_pandas:.0f}× "
              f"faster; pandas over {n:,} bars ≈ {pandas_total:,.0f} s{note}")  # fmt: skip
        results[key] = {
            "rule": text,
            "core": core_stats,
            "talipp": talipp_stats,
            "pandas": {**pandas_stats, "sample_bars": sample, "extrapolated_total_s": pandas_total},
            "signals": {"core": fired, "talipp": talipp_fired},
        }

    # 2. replay end to end
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        csv_path = directory / "aapl_5s.csv"
        small_path = directory / "aapl_5s_small.csv"
        rule_path = directory / "rule.json"
        t0 = time.perf_counter()
        write_csv(csv_path, n)
        write_csv(small_path, max(1, n // 10))
        rule_path.write_text(json.dumps({"id": 1, "name": "MA Momentum", **RULES["default"]}))
        size_mb = csv_path.stat().st_size / 1e6
        took = time.perf_counter() - t0
        print(f"\nReplay end to end ({size_mb:.0f} MB CSV written in {took:.1f} s; "
              "default rule; output read and counted)")  # fmt: skip
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scalpsite.settings",
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        pure_script = directory / "pure_replay.py"
        pure_script.write_text(PURE_REPLAY)
        command = ["manage.py", "replay", "--bars", str(csv_path), "--rule", str(rule_path)]
        small = max(1, n // 10)
        runs = {
            "manage.py replay": run_measured(command, cwd=ROOT, env=env),
            "pure replay_lines()": run_measured(
                [str(pure_script), str(csv_path), str(rule_path)], cwd=ROOT, env=env
            ),
            f"pure, {small:,} bars": run_measured(
                [str(pure_script), str(small_path), str(rule_path)], cwd=ROOT, env=env
            ),
        }
        print(f"{'run':<26} {'wall':>8} {'bars/s wall':>13} {'cpu':>8} {'bars/s cpu':>12} "
              f"{'peak RSS':>10} {'events':>8}")  # fmt: skip
        for name, r in runs.items():
            bars = small if name.startswith("pure, ") else n
            print(f"{name:<26} {r['wall_s']:>7.2f}s {bars / r['wall_s']:>13,.0f} "
                  f"{r['cpu_s']:>7.2f}s {bars / r['cpu_s']:>12,.0f} {r['peak_rss_mb']:>8.0f}MB "
                  f"{r['events']:>8,}")  # fmt: skip
        results["replay"] = runs

    # 3. verdict
    manage_run = runs["manage.py replay"]
    default = results["default"]
    checks = [
        ("core default rule ≤ 2 µs median", default["core"]["median_ns"] <= TARGET_CORE_NS),
        ("core faster than talipp loop",
         default["core"]["median_ns"] < default["talipp"]["median_ns"]),
        ("core ≥ 100× faster than pandas",
         default["pandas"]["median_ns"] >= 100 * default["core"]["median_ns"]),
        ("replay ≥ 200,000 bars/s (wall)", n / manage_run["wall_s"] >= TARGET_REPLAY_BARS_PER_S),
        ("replay peak memory ≤ 200 MB", manage_run["peak_rss_mb"] <= TARGET_PEAK_MB),
        (f"3 timeframe rules ≤ {TARGET_THREE_RULES_RATIO:g}× the default rule",
         ratio <= TARGET_THREE_RULES_RATIO),
    ]  # fmt: skip
    print("\nTargets")
    for name, ok in checks:
        print(f"  [{'x' if ok else ' '}] {name}")
    if args.pandas_sample and args.pandas_sample < n:
        print("* pandas baseline measured on a sample and extrapolated to the full file.")
    if (args.keep or Path(".")).exists() and args.keep:
        (args.keep / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()

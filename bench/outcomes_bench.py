"""Outcome statistics benchmark (issue 13): the stats queries over 100,000 stored outcomes.

    .venv/bin/python bench/outcomes_bench.py [--signals 34000] [--requests 20]

Fills a fresh SQLite file (a temporary SCALP_VAR_DIR, migrated) with --signals signals of 3
rules on 5 symbols over 30 days, each with outcomes at 1m, 5m and 15m (about 3 × signals
rows: 102,000 by default), then times with ``time.perf_counter()``:

- ``outcome_stats`` over all of them (the Signals page's statistics with no filter, the
  rules list with period "all"), over 7 days, and of one rule (a rule's page);
- the pages as a logged-in user through Django's test Client: ``/rules/?period=all``,
  ``/rules/<id>/edit/?period=all``, ``/signals/`` (the page, its statistics load after it)
  and ``/signals/?stats=1`` with HX-Target (the statistics request);
- ``GET /api/signals/?limit=1000`` (outcomes of 1,000 signals) and the CSV export.

p50 / p95 / max per item, and the process's peak RSS. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pages_bench import setup_django  # noqa: E402  (the same temporary database setup)

START = datetime(2025, 11, 1, 14, 30, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMD")
HORIZONS = (60, 300, 900)


def fill(db_path: Path, count: int, rule_ids: list[int]) -> int:
    rng = random.Random(13)
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous = OFF")
    step = 30 * 86400 / count
    with db:
        rows = []
        for n in range(count):
            moment = START + timedelta(seconds=int(n * step))
            rule_id = rule_ids[n % len(rule_ids)]
            rows.append((moment.strftime("%Y-%m-%d %H:%M:%S"), SYMBOLS[n % 5], 100.0 + n % 7,
                         rule_id, f"rule {rule_id}", 5, "{}", moment.strftime("%Y-%m-%d %H:%M:%S"),
                         rng.choice(("", "buy", "sell")), "{}"))  # fmt: skip
        db.executemany(
            "INSERT INTO signals_signal (time, symbol, price, rule_id, rule_name, bar_seconds, "
            '"values", recorded_at, side, contract) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            rows,
        )
        ids = [row[0] for row in db.execute("SELECT id FROM signals_signal")]
        outcomes = []
        for signal_id in ids:
            for horizon in HORIZONS:
                ret = round(rng.gauss(0, 0.3), 6)  # the worker rounds to 1e-6 % (DIGITS)
                outcomes.append((signal_id, horizon, ret, round(abs(ret) + 0.1, 6),
                                 round(-abs(ret) - 0.1, 6),
                                 "2025-12-01 00:00:00"))  # fmt: skip
        db.executemany(
            "INSERT INTO signals_outcome (signal_id, horizon, return_pct, mfe_pct, mae_pct, "
            "recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
            outcomes,
        )
    db.close()
    return len(outcomes)


def timed(label: str, fn, requests: int) -> None:
    fn()  # warm-up
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"  {label:<46} p50 {statistics.median(times):8.1f} ms   p95 {p95:8.1f} ms"
          f"   max {times[-1]:8.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=34_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="outcomes-bench-"))
    setup_django(var_dir)

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from rules.models import Rule
    from rules.services import rule_create
    from signals.models import Signal
    from signals.stats import outcome_stats, period_signals

    system = Rule.objects.get(is_system=True)
    other = rule_create(name="EMA cross", definition={
        "logic": "AND", "conditions": [{"left": "EMA9", "op": "crosses_above", "right": "EMA21"}],
        "cooldown_sec": 30, "trigger": "edge"})  # fmt: skip
    rule_ids = [system.id, other.id, other.id + 1]
    started = time.perf_counter()
    outcomes = fill(Path(settings.DATABASES["default"]["NAME"]), args.signals, rule_ids)
    print(f"{args.signals:,} signals, {outcomes:,} outcomes stored in "
          f"{time.perf_counter() - started:.1f} s ({var_dir})")  # fmt: skip
    now = START + timedelta(days=30)

    print("signals/stats.py outcome_stats (one query, grouped in Python):")
    timed("all signals", lambda: outcome_stats(Signal.objects.all(), HORIZONS), args.requests)
    timed("7 days", lambda: outcome_stats(period_signals("7d", now), HORIZONS), args.requests)
    timed("one rule, all", lambda: outcome_stats(
        period_signals("all", now, rule_id=other.id), HORIZONS), args.requests)  # fmt: skip

    user = get_user_model().objects.create_user("bench", password="bench-pass-123456")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def get(url, **headers):
        def run():
            response = client.get(url, headers=headers)
            assert response.status_code == 200, (url, response.status_code)
            if response.streaming:
                for _ in response.streaming_content:
                    pass

        return run

    print("pages (Django test Client, server time):")
    timed("/rules/?period=all", get("/rules/?period=all"), args.requests)
    timed(f"/rules/{other.id}/edit/?period=all", get(f"/rules/{other.id}/edit/?period=all"),
          args.requests)  # fmt: skip
    timed("/signals/ (first paint)", get("/signals/"), args.requests)
    timed("/signals/?stats=1 (HX-Target signal-stats)",
          get("/signals/?stats=1", **{"HX-Request": "true", "HX-Target": "signal-stats"}),
          args.requests)  # fmt: skip
    timed("/api/signals/?limit=1000", get("/api/signals/?limit=1000"), args.requests)
    timed(f"/signals/export.csv ({args.signals:,} rows)", get("/signals/export.csv"),
          max(3, args.requests // 5))  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()

"""Run rules over a CSV of bars: each signal with its outcomes, then per-rule stats
(DESIGN §7.3)."""

import sys

from django.core.management.base import BaseCommand

from engine.core.backtest import backtest_events, backtest_lines
from engine.core.bars import format_time
from engine.core.outcomes import DEFAULT_HORIZONS, HorizonError, horizon_label, parse_horizons
from engine.core.replay import ReplayError, load_rules_file
from engine.feeds.csvfile import watchlist_symbol
from engine.management.commands.replay import add_bar_arguments, symbol_arg


class Command(BaseCommand):
    help = (
        "Backtest rules over bars from a CSV (time,open,high,low,close,volume[,symbol]): each "
        "signal with its outcome at every horizon (return, MFE, MAE in %), then statistics "
        "per rule. Bad input: exit 2, one line on stderr."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        add_bar_arguments(parser)
        parser.add_argument(
            "--horizons",
            default=DEFAULT_HORIZONS,
            metavar="LIST",
            help=f"outcome horizons, comma-separated, e.g. 30s,5m,1h (default {DEFAULT_HORIZONS})",
        )
        parser.add_argument(
            "--format",
            choices=("jsonl", "table"),
            default="jsonl",
            help="jsonl: one signal per line with its outcomes, then one stats line per rule "
            "(default); table: the statistics as a text table",
        )

    def handle(self, *args, bars: str, rule: str, symbol=None, bar_seconds=None, **options):
        out = self.stdout
        try:
            try:
                horizons = parse_horizons(options["horizons"])
            except HorizonError as err:
                raise ReplayError(f"--horizons: {err}") from None
            symbol = symbol_arg(symbol)
            rules = load_rules_file(rule)
            summary: dict = {}
            common = {
                "symbol": symbol, "bar_seconds": bar_seconds, "horizons": horizons,
                "check_symbol": watchlist_symbol, "summary": summary,
            }  # fmt: skip
            if options["format"] == "table":
                stream = backtest_events(bars, rules, **common)
                stats = [event for event in stream if event["event"] == "stats"]
                if not summary.get("bars"):
                    raise ReplayError(f"{bars}: no bars{_for(symbol)}; nothing to backtest")
                out.write(table(stats, horizons, summary, symbol=symbol))
            else:
                # the events as JSON lines, encoded by the core (the same text, faster)
                for line in backtest_lines(bars, rules, **common):
                    if not summary.get("bars") and line.startswith('{"event": "stats"'):
                        raise ReplayError(f"{bars}: no bars{_for(symbol)}; nothing to backtest")
                    out.write(line)
            out.flush()
        except ReplayError as err:
            out.flush()
            self.stderr.write(f"backtest: {err}")
            sys.exit(2)
        except BrokenPipeError:
            # Output piped into `head`: stop quietly.
            sys.stderr.close()
            sys.exit(0)


def _for(symbol: str | None) -> str:
    return f" for {symbol}" if symbol else ""


def _pct(value: float | None, *, scale: float = 1.0, digits: int = 3) -> str:
    return "–" if value is None else f"{value * scale:+.{digits}f}"


def table(stats: list[dict], horizons: tuple[int, ...], summary: dict, *, symbol=None) -> str:
    """The stats lines as an aligned text table, one row per rule and horizon, then a
    one-line summary (bars, signals, period)."""
    headers = ("rule", "horizon", "count", "hit rate %", "mean ret %", "median ret %",
               "mean MFE %", "mean MAE %")  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for line in stats:
        name = line["rule_name"] or "(unnamed)"
        label = f"{line['rule_id']} {name}" if line["rule_id"] is not None else name
        label = f"{label} ({line['signals']} signals)"
        for k, horizon in enumerate(horizons):
            figures = line["horizons"][horizon_label(horizon)]
            hit = figures["hit_rate"]
            rows.append((
                label if k == 0 else "",
                horizon_label(horizon),
                str(figures["count"]),
                "–" if hit is None else f"{hit * 100:.1f}",
                _pct(figures["mean_return_pct"]),
                _pct(figures["median_return_pct"]),
                _pct(figures["mean_mfe_pct"]),
                _pct(figures["mean_mae_pct"]),
            ))  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def render(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    lines = [render(headers), render(tuple("-" * w for w in widths))]
    lines += [render(row) for row in rows]
    first, last = summary.get("first"), summary.get("last")
    seconds = summary.get("bar_seconds") or 0
    period = (
        f"{format_time(first)} to {format_time(last + seconds)}"
        if first is not None and last is not None
        else "no bars"
    )
    lines.append("")
    lines.append(
        f"{summary.get('bars', 0):,} bars of {seconds} s{_for(symbol)}, "
        f"{summary.get('signals', 0):,} signals, {period}; hit = return > 0; "
        f"– = no final outcome"
    )
    return "\n".join(lines)

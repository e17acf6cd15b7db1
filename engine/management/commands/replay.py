"""Run rules over a CSV of bars and print one signal event JSON per line (DESIGN §5, §7.2)."""

import argparse
import sys

from django.core.management.base import BaseCommand

from engine.core.inputs import InputError, parse_whole
from engine.core.replay import ReplayError, load_rules_file, replay_lines
from engine.feeds.csvfile import watchlist_symbol


def bar_seconds_arg(text: str) -> int:
    try:
        return parse_whole(text, name="--bar-seconds", minimum=1, maximum=86400)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_bar_arguments(parser: argparse.ArgumentParser) -> None:
    """--bars, --rule, --symbol and --bar-seconds, as replay and backtest read them."""
    parser.add_argument("--bars", required=True, metavar="FILE.csv", help="CSV of bars")
    parser.add_argument(
        "--rule",
        required=True,
        metavar="FILE.json",
        help="a rule definition, or a list of up to 10 (each signal names its rule_id)",
    )
    parser.add_argument(
        "--symbol",
        help="keep only this symbol (file with a symbol column) or name the symbol of a "
        "file without one (default: the file name up to the first _ or -, upper-cased)",
    )
    parser.add_argument(
        "--bar-seconds",
        type=bar_seconds_arg,
        metavar="N",
        help="bar length in seconds (default: the smallest gap between bars); longer than "
        "the file's bars (60 on 5-second bars) combines them into UTC-aligned bars",
    )


def symbol_arg(symbol: str | None) -> str | None:
    """--symbol as a watchlist item (eur.usd:cash is EURUSD:CASH); ReplayError if it isn't."""
    if symbol is None:
        return None
    try:
        return watchlist_symbol(symbol)
    except ValueError as err:
        raise ReplayError(f"--symbol: {err}") from None


class Command(BaseCommand):
    help = (
        "Replay bars from a CSV (time,open,high,low,close,volume[,symbol]) through a rule JSON "
        "(one rule or a list of up to 10) and print each signal event as one JSON line. "
        "Bad input: exit 2, one line on stderr."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        add_bar_arguments(parser)

    def handle(self, *args, bars: str, rule: str, symbol=None, bar_seconds=None, **options):
        out = self.stdout
        try:
            symbol = symbol_arg(symbol)
            rules = load_rules_file(rule)
            lines = replay_lines(
                bars, rules, symbol=symbol, bar_seconds=bar_seconds,
                check_symbol=watchlist_symbol,
            )  # fmt: skip
            for line in lines:
                out.write(line)
            out.flush()
        except ReplayError as err:
            out.flush()
            self.stderr.write(f"replay: {err}")
            sys.exit(2)
        except BrokenPipeError:
            # Output piped into `head`: stop quietly.
            sys.stderr.close()
            sys.exit(0)

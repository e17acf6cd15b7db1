"""`watchlist create NAME ITEM [ITEM...]` / `watchlist activate NAME` / `watchlist list`.

An item is SYMBOL or SYMBOL:TYPE[:EXCHANGE[:CURRENCY]] (DESIGN §7.1), read by the services."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from watchlists.models import Watchlist
from watchlists.services import symbols_split, watchlist_activate, watchlist_create


def _error_line(err: ValidationError) -> str:
    if hasattr(err, "error_dict"):
        return " ".join(" ".join(msgs) for msgs in err.message_dict.values())
    return " ".join(err.messages)


class Command(BaseCommand):
    help = (
        "Create, activate or list watchlists (at most 5 items each: AAPL, ES:FUT:CME, "
        "EURUSD:CASH, SAP:STK:IBIS:EUR, SPX:IND:CBOE)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a watchlist")
        create.add_argument("name")
        create.add_argument(
            "symbols",
            nargs="+",
            metavar="ITEM",
            help="SYMBOL or SYMBOL:TYPE[:EXCHANGE[:CURRENCY]], e.g. AAPL ES:FUT:CME EURUSD:CASH",
        )
        create.add_argument("--activate", action="store_true", help="make it the active list")
        activate = sub.add_parser("activate", help="make NAME the active watchlist")
        activate.add_argument("name")
        sub.add_parser("list", help="show all watchlists")

    def handle(self, *args, action: str, **options):
        try:
            if action == "create":
                # Each argument is read like the page's symbols box: "AAPL MSFT" or
                # "AAPL,ES:FUT:CME" is two items, "BRK B" (quoted) one.
                symbols = [piece for arg in options["symbols"] for piece in symbols_split(arg)]
                if not symbols:
                    raise CommandError(
                        "Give at least one symbol, e.g. AAPL or ES:FUT:CME.", returncode=2
                    )
                wl = watchlist_create(
                    name=options["name"], symbols=symbols, activate=options["activate"]
                )
                state = " (active)" if wl.is_active else ""
                self.stdout.write(f"Created watchlist {wl.name}{state}: {' '.join(wl.symbols)}")
            elif action == "activate":
                wl = Watchlist.objects.filter(name=options["name"]).first()
                if wl is None:
                    names = ", ".join(Watchlist.objects.values_list("name", flat=True)) or "none"
                    raise CommandError(
                        f"No watchlist named {options['name']!r} (have: {names}).", returncode=2
                    )
                watchlist_activate(watchlist=wl)
                self.stdout.write(f"Active watchlist: {wl.name} ({' '.join(wl.symbols)})")
            else:
                for wl in Watchlist.objects.prefetch_related("items"):
                    mark = "*" if wl.is_active else " "
                    self.stdout.write(f"{mark} {wl.name}: {' '.join(wl.symbols)}")
        except ValidationError as err:
            raise CommandError(_error_line(err), returncode=2) from None

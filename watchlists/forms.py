"""Forms of the watchlist page: they only parse input; the services decide what is allowed."""

from dataclasses import dataclass, field

from django import forms
from django.core import validators
from django.core.exceptions import ValidationError

from engine.core.instruments import Instrument
from scalpsite.ui import INPUT
from watchlists.models import MAX_SYMBOLS
from watchlists.services import item_parse, symbols_split

# What a box may hold before it is refused whole: five items of 40 characters with room to
# spare, and a long item still reaches the parser, whose sentence names it.
MAX_BOX_CHARS = 10_000
MAX_PROBLEMS_SHOWN = 5
EXAMPLES = "AAPL, ES:FUT:CME, EURUSD:CASH, SAP:STK:IBIS:EUR, SPX:IND:CBOE"


class ItemsField(forms.CharField):
    """Text of one or more items. No NUL check of its own: the parser's sentence names the
    item (“AA\\x00PL” is not a valid symbol), where Django's would not."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            v
            for v in self.validators
            if not isinstance(v, validators.ProhibitNullCharactersValidator)
        ]


def item_described(instrument: Instrument) -> str:
    """An item as read, for the trader to check: ``ES:FUT:CME (future on CME, front
    month)``; a US stock is its symbol alone."""
    if instrument.is_us_stock:
        return instrument.text
    where = f"on {instrument.exchange}"
    if instrument.sec_type == "CASH":
        what = f"FX pair {instrument.symbol}/{instrument.currency} {where}"
    else:
        what = f"{instrument.type_name} {where}"
        if instrument.currency and instrument.sec_type != "CRYPTO":
            what += f" in {instrument.currency}"
    if instrument.sec_type == "FUT":
        what += ", front month"
    if not instrument.has_volume:
        what += ", no volume"
    return f"{instrument.text} ({what})"


@dataclass
class Understood:
    """How a typed box of symbols reads, said back to the trader before anything is saved."""

    text: str
    symbols: list[str] = field(default_factory=list)  # item texts
    instruments: list[Instrument] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the validator's sentences
    warnings: list[str] = field(default_factory=list)  # read as one symbol: maybe two?

    @property
    def summary(self) -> str:
        if not self.symbols:
            return ""
        count = len(self.symbols)
        items = ", ".join(item_described(instrument) for instrument in self.instruments)
        return f"{count} symbol{'s' if count != 1 else ''}: {items}"

    @property
    def needs_a_look(self) -> bool:
        """An entry read as one symbol that may be two: save only once the trader saw it."""
        return bool(self.warnings)


def understand_symbols(text: str) -> Understood:
    """Split and read ``text`` with the watchlist services, as saving will."""
    understood = Understood(text=(text or "").strip())
    problems: list[str] = []
    for piece in symbols_split(understood.text):
        try:
            instrument = item_parse(piece)
        except ValidationError as err:
            problems.extend(err.messages)
            continue
        symbol = instrument.text
        if symbol in understood.symbols:
            problems.append(f"{symbol} is typed twice: a list holds each symbol once.")
            continue
        understood.symbols.append(symbol)
        understood.instruments.append(instrument)
        root, _, suffix = instrument.symbol.partition(" ")
        # BRK B is a class share; AAPL IBM may well be two tickers missing their comma.
        if instrument.sec_type == "STK" and len(suffix) > 1:
            understood.warnings.append(
                f"“{symbol}” is read as one symbol (a class or series like BRK B); "
                f"if you meant {root} and {suffix}, put a comma between them."
            )
    understood.problems = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        understood.problems.append(f"… and {len(problems) - MAX_PROBLEMS_SHOWN} more problems.")
    if len(understood.symbols) > MAX_SYMBOLS:
        understood.problems.append(
            f"That is {len(understood.symbols)} symbols: a watchlist holds at most {MAX_SYMBOLS}."
        )
    return understood


class WatchlistNameForm(forms.Form):
    name = forms.CharField(
        max_length=60,
        error_messages={
            "required": "Give the watchlist a name.",
            "max_length": "A watchlist name has at most 60 characters.",
        },
        widget=forms.TextInput(attrs={"class": INPUT, "autocomplete": "off"}),
    )


class WatchlistCreateForm(WatchlistNameForm):
    symbols = ItemsField(
        required=False,
        max_length=MAX_BOX_CHARS,
        error_messages={"max_length": f"Type at most {MAX_SYMBOLS} symbols."},
        widget=forms.TextInput(
            attrs={
                "class": INPUT + " font-mono uppercase",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "AAPL, ES:FUT:CME, EURUSD:CASH",
            }
        ),
    )

    activate = forms.BooleanField(required=False)

    def clean_symbols(self) -> list[str]:
        return symbols_split(self.cleaned_data.get("symbols", ""))


class SymbolForm(forms.Form):
    """One item to add or remove; the service reads and validates it (a long one too: its
    sentence names it)."""

    symbol = ItemsField(
        max_length=MAX_BOX_CHARS,
        strip=True,
        error_messages={
            "required": "Type a symbol to add, e.g. AAPL or ES:FUT:CME.",
            "max_length": f"That is too long for a symbol: type one item, e.g. {EXAMPLES}.",
        },
    )

"""Forms of the watchlist page: they only parse input; the services decide what is allowed."""

from dataclasses import dataclass, field

from django import forms
from django.core.exceptions import ValidationError

from scalpsite.ui import INPUT
from watchlists.models import MAX_SYMBOLS
from watchlists.services import symbol_normalize, symbols_split


@dataclass
class Understood:
    """How a typed box of symbols reads, said back to the trader before anything is saved."""

    text: str
    symbols: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the validator's sentences
    warnings: list[str] = field(default_factory=list)  # read as one symbol: maybe two?

    @property
    def summary(self) -> str:
        if not self.symbols:
            return ""
        count = len(self.symbols)
        return f"{count} symbol{'s' if count != 1 else ''}: {', '.join(self.symbols)}"

    @property
    def needs_a_look(self) -> bool:
        """An entry read as one symbol that may be two: save only once the trader saw it."""
        return bool(self.warnings)


def understand_symbols(text: str) -> Understood:
    """Split and normalise ``text`` with the watchlist services, as saving will."""
    understood = Understood(text=(text or "").strip())
    for piece in symbols_split(understood.text):
        try:
            symbol = symbol_normalize(piece)
        except ValidationError as err:
            understood.problems.extend(err.messages)
            continue
        if symbol in understood.symbols:
            understood.problems.append(f"{symbol} is typed twice: a list holds each symbol once.")
            continue
        understood.symbols.append(symbol)
        root, _, suffix = symbol.partition(" ")
        # BRK B is a class share; AAPL IBM may well be two tickers missing their comma.
        if len(suffix) > 1:
            understood.warnings.append(
                f"“{symbol}” is read as one symbol (a class or series like BRK B); "
                f"if you meant {root} and {suffix}, put a comma between them."
            )
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
    symbols = forms.CharField(
        required=False,
        max_length=200,
        error_messages={"max_length": f"Type at most {MAX_SYMBOLS} symbols."},
        widget=forms.TextInput(
            attrs={
                "class": INPUT + " font-mono uppercase",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "AAPL, MSFT, BRK B",
            }
        ),
    )

    activate = forms.BooleanField(required=False)

    def clean_symbols(self) -> list[str]:
        return symbols_split(self.cleaned_data.get("symbols", ""))


class SymbolForm(forms.Form):
    """One ticker to add or remove; the service normalises and validates it."""

    symbol = forms.CharField(
        max_length=40,
        strip=True,
        error_messages={
            "required": "Type a symbol to add, e.g. AAPL.",
            "max_length": "That is too long for a symbol: a symbol has 1–12 characters.",
        },
    )

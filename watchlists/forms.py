"""Forms of the watchlist page: they only parse input; the services decide what is allowed."""

import re

from django import forms

from scalpsite.ui import INPUT
from watchlists.models import MAX_SYMBOLS

# Commas (or semicolons, new lines) separate symbols: a ticker may contain a space (BRK B).
_SEPARATORS = re.compile(r"[,;\n]+")


def split_symbols(text: str) -> list[str]:
    return [part for part in (p.strip() for p in _SEPARATORS.split(text or "")) if part]


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
        return split_symbols(self.cleaned_data.get("symbols", ""))


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

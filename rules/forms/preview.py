"""The preview form: which bars to run the draft rule over (demo history or an uploaded CSV)."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

from django import forms

from engine.core.bars import BarFileError, iter_csv_bars
from engine.core.rules import RuleDef, timeframe_problem
from engine.feeds.csvfile import watchlist_symbol
from rules.forms.common import sentence
from rules.preview import PreviewResult, demo_bars, simulate
from scalpsite.ui import INPUT

BAR_COUNTS = (360, 720, 1440, 4320)
MAX_UPLOAD_BYTES = 5 * 1024 * 1024

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _duration(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours = seconds / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"


class PreviewForm(forms.Form):
    """Which bars to run the draft rule over: the demo market's history or an uploaded CSV."""

    source = forms.ChoiceField(
        choices=[("demo", "Demo market"), ("csv", "CSV file")],
        initial="demo",
        error_messages={
            "required": "Choose the demo market or a CSV file.",
            "invalid_choice": "Choose the demo market or a CSV file.",
        },
        widget=forms.RadioSelect(attrs={"class": "accent-emerald-500"}),
    )
    symbol = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": "Choose one of the watchlist's symbols."},
        widget=forms.Select(attrs={"class": INPUT}),
    )
    bars = forms.TypedChoiceField(
        choices=[(n, f"{n} bars") for n in BAR_COUNTS],
        coerce=int,
        initial=720,
        error_messages={
            "required": "Choose how many bars to preview over.",
            "invalid_choice": "Choose how many bars to preview over.",
        },
        widget=forms.Select(attrs={"class": INPUT}),
    )
    csv_file = forms.FileField(
        required=False,
        error_messages={
            "invalid": "The upload is not a file; choose a CSV file.",
            "empty": "The chosen file is empty; it needs a header and at least one bar.",
        },
        widget=forms.ClearableFileInput(
            attrs={
                "accept": ".csv,text/csv",
                "class": "block w-full text-xs text-slate-300 file:mr-2 file:rounded "
                "file:border-0 file:bg-slate-700 file:px-2 file:py-1 file:text-slate-100 "
                "hover:file:bg-slate-600",
            }
        ),
    )

    def __init__(self, *args, symbols: list[str], bar_seconds: int = 5, **kwargs):
        super().__init__(*args, **kwargs)
        self.symbols = symbols or ["SPY"]
        self.bar_seconds = bar_seconds
        symbol, bars = self.fields["symbol"], self.fields["bars"]
        assert isinstance(symbol, forms.ChoiceField) and isinstance(bars, forms.ChoiceField)
        symbol.choices = [(s, s) for s in self.symbols]
        symbol.initial = self.symbols[0]
        # The demo history comes in the engine's bar size, so label the counts in time too.
        bars.choices = [(n, f"{n} bars ({_duration(n * bar_seconds)})") for n in BAR_COUNTS]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("source") == "csv":
            upload = cleaned.get("csv_file")
            if not upload and "csv_file" not in self.errors:
                self.add_error("csv_file", "Choose a CSV file to preview over, or use the demo.")
            elif upload and upload.size > MAX_UPLOAD_BYTES:
                # Rounded up, so a file just over the limit never reads "5.0 MB".
                megabytes = math.ceil(upload.size * 10 / 1_048_576) / 10
                limit = MAX_UPLOAD_BYTES // 1_048_576
                self.add_error(
                    "csv_file",
                    f"The file is {megabytes:.1f} MB, over the preview's {limit} MB limit; "
                    "cut it to the bars you want to see.",
                )
        return cleaned

    def run(self, rule: RuleDef) -> PreviewResult | None:
        """Run ``rule`` over the chosen bars; None with a form error for a bad file."""
        if self.cleaned_data["source"] == "csv":
            return self._run_csv(rule)
        symbol = self.cleaned_data.get("symbol") or self.symbols[0]
        bars = demo_bars(symbol, self.cleaned_data["bars"], self.bar_seconds)
        return simulate(rule, bars, source="demo")

    def _run_csv(self, rule: RuleDef) -> PreviewResult | None:
        upload = self.cleaned_data["csv_file"]
        label = Path(upload.name or "upload.csv").name
        with tempfile.TemporaryDirectory() as tmp:
            # Named after the upload: a file without a symbol column takes its symbol from
            # the file name (aapl_5s.csv → AAPL), as the csv feed and `replay` do.
            safe = _SAFE_NAME.sub("_", label)[-80:].lstrip(".") or "bars.csv"
            path = Path(tmp) / safe
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            try:
                bars = iter_csv_bars(path, check_symbol=watchlist_symbol)
                result = simulate(rule, bars, source="csv")
            except BarFileError as err:
                where = f"{label}, line {err.line}" if err.line is not None else label
                # "In …" keeps the file name as typed (sentence() would capitalise it).
                self.add_error("csv_file", sentence(f"In {where}: {err.problem}"))
                return None
            except UnicodeDecodeError:
                self.add_error("csv_file", f"{label} is not UTF-8 text; save it as a UTF-8 CSV.")
                return None
        if result.bars == 0:
            self.add_error("csv_file", f"{label} has a header but no bars.")
            return None
        # The file's own bar size is the run's here: a timeframe must fit it too.
        if problem := timeframe_problem(rule, result.bar_seconds):
            self.add_error("csv_file", f"{label} holds {result.bar_seconds} s bars: {problem}.")
            return None
        return result

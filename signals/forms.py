"""The filter form of the signal history page (and its CSV export)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError

from engine.core.inputs import InputError, clip, parse_whole
from scalpsite.ui import FIELD
from watchlists.forms import ItemsField
from watchlists.services import symbol_normalize

MAX_ID = 2**63 - 1


def _positive_id(raw: str, what: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return parse_whole(raw, name="id", minimum=1, maximum=MAX_ID)
    except InputError:
        raise forms.ValidationError(
            f"“{clip(raw)}” is not {what}: use a whole number above 0."
        ) from None


class DateInput(forms.DateInput):
    input_type = "date"


class HistoryFilterForm(forms.Form):
    """Filters (symbol, rule, UTC date range) and the keyset cursor (``before`` / ``after``).

    Dates are UTC calendar days, both ends inclusive: ``date_to=2025-12-16`` keeps signals up to
    2025-12-16 23:59:59Z. Every error is a sentence a trader can act on.
    """

    # A watchlist item (AAPL, ES:FUT:CME), read as the watchlists read it; no length limit of
    # its own: the item parser's sentence names one too long.
    symbol = ItemsField(required=False, max_length=10_000, strip=True)
    rule = forms.CharField(required=False, max_length=40)
    date_from = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=DateInput(format="%Y-%m-%d"),
        error_messages={"invalid": "Enter the ‘from’ date as YYYY-MM-DD, e.g. 2025-12-16."},
    )
    date_to = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=DateInput(format="%Y-%m-%d"),
        error_messages={"invalid": "Enter the ‘to’ date as YYYY-MM-DD, e.g. 2025-12-16."},
    )
    before = forms.CharField(required=False, max_length=40)
    after = forms.CharField(required=False, max_length=40)

    FILTERS = ("symbol", "rule", "date_from", "date_to")

    def __init__(self, *args, rules=(), symbols=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.rule_choices = list(rules)  # (id, name) pairs for the select
        self.symbol_choices = list(symbols)
        self.fields["symbol"].widget.attrs.update(
            {"class": FIELD + " w-36 uppercase placeholder:normal-case", "placeholder": "any",
             "list": "symbol-options", "autocomplete": "off", "spellcheck": "false"}
        )  # fmt: skip
        for name in ("date_from", "date_to"):
            self.fields[name].widget.attrs.update({"class": FIELD + " w-36 [color-scheme:dark]"})
        self.fields["symbol"].error_messages["max_length"] = (
            "That is too long for a symbol: type one item, e.g. AAPL or ES:FUT:CME."
        )

    def full_clean(self):
        super().full_clean()
        for name in self._errors or {}:
            if name in self.fields:
                self.fields[name].widget.attrs["aria-invalid"] = "true"
                self.fields[name].widget.attrs["aria-describedby"] = f"err-{name}"

    def clean_symbol(self) -> str:
        """The item's canonical text (``brk.b`` → ``BRK B``, ``es:fut:cme`` → ``ES:FUT:CME``),
        the name its signals carry; the item parser's sentence when it is not one."""
        raw = self.cleaned_data["symbol"]
        if not raw.strip():
            return ""
        try:
            return symbol_normalize(raw)
        except ValidationError as err:
            raise forms.ValidationError(err.message_dict["symbols"]) from None

    def clean_rule(self) -> int | None:
        raw = self.cleaned_data["rule"].strip()
        if raw.startswith("#"):
            raw = raw[1:]
        if raw and not (raw.isascii() and raw.isdigit()):
            raise forms.ValidationError("Pick a rule from the list (or a rule id such as 2).")
        return _positive_id(raw, "a rule id")

    def clean_before(self) -> int | None:
        return _positive_id(self.cleaned_data["before"], "a signal id")

    def clean_after(self) -> int | None:
        return _positive_id(self.cleaned_data["after"], "a signal id")

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error(
                "date_to",
                f"The ‘to’ date ({end:%Y-%m-%d}) is before the ‘from’ date ({start:%Y-%m-%d}): "
                "swap them or clear one.",
            )
        if data.get("before") and data.get("after"):
            self.add_error("before", "Use either an older-page or a newer-page link, not both.")
        return data

    # Results of a valid form

    @property
    def filters(self) -> dict:
        """The filter values in effect (no cursor), for querying and for links."""
        return {name: self.cleaned_data.get(name) for name in self.FILTERS}

    @property
    def is_filtered(self) -> bool:
        return any(value not in (None, "") for value in self.filters.values())

    def filter_params(self) -> dict[str, str]:
        """The filters as query-string values (empty ones left out)."""
        params = {}
        for name, value in self.filters.items():
            if value in (None, ""):
                continue
            params[name] = value.strftime("%Y-%m-%d") if isinstance(value, date) else str(value)
        return params

    def time_bounds(self) -> tuple[datetime | None, datetime | None]:
        """``[start, end)`` in UTC from the inclusive date range."""
        start, end = self.cleaned_data.get("date_from"), self.cleaned_data.get("date_to")
        lo = datetime.combine(start, time.min, tzinfo=UTC) if start else None
        hi = None
        if end and end < date.max:
            hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
        return lo, hi

    def rule_options(self) -> list[tuple[int, str]]:
        """Rules for the select; a filtered id with no rule left (deleted) is kept as its id."""
        options = list(self.rule_choices)
        current = self.cleaned_data.get("rule") if hasattr(self, "cleaned_data") else None
        if current and current not in {pk for pk, _ in options}:
            options.append((current, f"#{current} (no longer defined)"))
        return options

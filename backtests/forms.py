"""The Backtest page's form: the shape of each field; ``backtests.services`` judges them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError

from backtests.models import BacktestRun
from rules.forms.preview import MAX_UPLOAD_BYTES

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DEFAULT_DAYS = 7


def parse_day(text: str, what: str) -> date:
    """``2026-12-01`` (ASCII digits only) → a date; ValidationError with a sentence."""
    text = (text or "").strip()
    if not DATE.fullmatch(text):
        raise ValidationError(f"The {what} date is not a date such as 2026-12-01.")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"The {what} date {text} does not exist.") from None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def default_period(today: date) -> tuple[date, date]:
    """The last 7 days, today included."""
    return today - timedelta(days=DEFAULT_DAYS - 1), today


class BacktestForm(forms.Form):
    rules = forms.TypedMultipleChoiceField(coerce=int, required=False)
    symbols = forms.CharField(required=False, max_length=200)
    start = forms.CharField(max_length=10)
    end = forms.CharField(max_length=10)
    source = forms.ChoiceField(choices=BacktestRun.Source.choices)
    horizons = forms.CharField(max_length=60)
    bar_seconds = forms.TypedChoiceField(
        choices=[(5, "5 seconds"), (60, "1 minute")], coerce=int, initial=5
    )
    upload = forms.FileField(required=False)

    def __init__(self, *args, rule_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rules"].choices = list(rule_choices)
        self.fields["rules"].error_messages["invalid_choice"] = (
            "One of the chosen rules no longer exists; reload the page."
        )

    def clean_start(self) -> date:
        return parse_day(self.cleaned_data["start"], "start")

    def clean_end(self) -> date:
        return parse_day(self.cleaned_data["end"], "end")

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload is not None and upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB: choose a smaller one."
            )
        return upload

    def period(self) -> tuple[datetime, datetime]:
        """From the start date's midnight to the end of the end date (UTC)."""
        start, end = self.cleaned_data["start"], self.cleaned_data["end"]
        last = datetime(2099, 12, 31, tzinfo=UTC)
        end_at = day_start(end) + timedelta(days=1) if end < last.date() else last
        return day_start(start), end_at

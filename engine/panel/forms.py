"""Forms of the Settings page: they parse input; engine.services decides what is stored."""

import os
import re

from django import forms

from bars.models import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS
from engine.core.outcomes import DEFAULT_HORIZONS
from engine.core.rules import RuleError, timeframe_problem, validate_definition
from engine.models import (
    DEFAULT_RESTART_TIME,
    DEFAULT_RESTART_ZONE,
    MAX_ROLL_DAYS,
    AppSettings,
    horizons_clean,
    restart_time_clean,
    restart_zone_clean,
)
from engine.services import settings_get
from rules.services import rules_active
from scalpsite.ui import INPUT

# A host name, an IPv4 address or an IPv6 address (optionally in brackets).
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[A-Za-z0-9.-]+)$")
# Ports TWS and IB Gateway listen on by default (DESIGN §4).
IB_PORTS = (
    (7497, "TWS, paper trading"),
    (7496, "TWS, live trading"),
    (4002, "IB Gateway, paper trading"),
    (4001, "IB Gateway, live trading"),
)
MAX_CLIENT_ID = 2**31 - 1


class WholeNumberField(forms.IntegerField):
    """An IntegerField that takes the digits 0-9 only: ``int()`` also reads Arabic-Indic and
    full-width digits, so "٧٤٩٧" would quietly become port 7497."""

    def to_python(self, value):
        if isinstance(value, str):
            digits = value.strip().removeprefix("-").removeprefix("+")
            if digits and not (digits.isascii() and digits.isdigit()):
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class CleanedTextField(forms.CharField):
    """Text read through one of the model's cleaners (the same sentence the admin and
    ``settings_update`` give): one error per field, whatever the input (NUL, 5000 characters,
    Unicode digits). A field missing from the POST takes ``default``."""

    def __init__(self, *, cleaner, default: str, **kwargs):
        self.cleaner = cleaner
        self.default = default
        super().__init__(required=False, **kwargs)

    def to_python(self, value):
        if value is None:
            return self.default
        return self.cleaner(str(value))


class ConnectionForm(forms.Form):
    """Where TWS / IB Gateway listens; also what "Test connection" tries."""

    ib_host = forms.CharField(
        label="Host",
        max_length=255,
        error_messages={
            "required": "Type the host TWS / IB Gateway runs on, e.g. 127.0.0.1.",
            "max_length": "A host name has at most 255 characters.",
        },
        widget=forms.TextInput(
            attrs={"class": INPUT + " font-mono", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    ib_port = WholeNumberField(
        label="Port",
        min_value=1,
        max_value=65535,
        error_messages={
            "required": "Type the API port, e.g. 7497 for TWS paper trading.",
            "invalid": "The port is a whole number, e.g. 7497.",
            "min_value": "A port is between 1 and 65535.",
            "max_value": "A port is between 1 and 65535.",
        },
        widget=forms.NumberInput(attrs={"class": INPUT + " font-mono", "list": "ib-ports"}),
    )
    ib_client_id = WholeNumberField(
        label="Client id",
        min_value=0,
        max_value=MAX_CLIENT_ID,
        error_messages={
            "required": "Type a client id, e.g. 17.",
            "invalid": "The client id is a whole number, e.g. 17.",
            "min_value": "A client id can't be negative.",
            "max_value": f"A client id is at most {MAX_CLIENT_ID}.",
        },
        widget=forms.NumberInput(attrs={"class": INPUT + " font-mono"}),
    )

    def clean_ib_host(self) -> str:
        host = self.cleaned_data["ib_host"].strip()
        if not _HOST_RE.match(host):
            raise forms.ValidationError(
                f"“{host}” is not a host name or IP address, e.g. 127.0.0.1 or tws.local."
            )
        return host.removeprefix("[").removesuffix("]")


class SettingsForm(ConnectionForm):
    feed = forms.ChoiceField(
        choices=AppSettings.Feed.choices,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose a feed: IB, demo or CSV."},
    )
    csv_path = forms.CharField(
        label="CSV file",
        required=False,
        max_length=500,
        error_messages={"max_length": "The file path has at most 500 characters."},
        widget=forms.TextInput(
            attrs={
                "class": INPUT + " font-mono",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "/path/to/bars.csv",
            }
        ),
    )
    bar_seconds = forms.TypedChoiceField(
        label="Bar size",
        choices=AppSettings.BarSize.choices,
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose a bar size: 5 seconds or 1 minute."},
    )

    use_rth = forms.BooleanField(label="Regular trading hours only", required=False)
    roll_days = WholeNumberField(
        label="Futures roll window",
        min_value=0,
        max_value=MAX_ROLL_DAYS,
        required=False,
        error_messages={
            "invalid": "The roll window is a whole number of days, e.g. 5.",
            "min_value": "The roll window can't be negative.",
            "max_value": f"The roll window is at most {MAX_ROLL_DAYS} days.",
        },
        widget=forms.NumberInput(attrs={"class": INPUT + " font-mono"}),
    )

    ib_next_client_id = forms.BooleanField(
        label="If the client id is taken, use the next free one", required=False
    )
    ib_restart_time = CleanedTextField(
        label="Daily restart",
        cleaner=restart_time_clean,
        default=DEFAULT_RESTART_TIME,
        widget=forms.TextInput(attrs={"class": INPUT + " font-mono", "placeholder": "23:45"}),
    )
    ib_restart_zone = CleanedTextField(
        label="Time zone",
        cleaner=restart_zone_clean,
        default=DEFAULT_RESTART_ZONE,
        widget=forms.TextInput(attrs={"class": INPUT + " font-mono", "spellcheck": "false"}),
    )

    outcome_horizons = CleanedTextField(
        label="Outcome horizons",
        cleaner=horizons_clean,
        default=DEFAULT_HORIZONS,
        max_length=200,
        error_messages={"max_length": "Give at most six horizons, e.g. 1m,5m,15m."},
        widget=forms.TextInput(attrs={"class": INPUT + " font-mono", "placeholder": "1m,5m,15m"}),
    )
    bar_retention_days = WholeNumberField(
        label="Keep bars",
        min_value=1,
        max_value=MAX_RETENTION_DAYS,
        required=False,
        error_messages={
            "invalid": "Keep bars for a whole number of days, e.g. 30.",
            "min_value": "Keep bars for at least 1 day.",
            "max_value": f"Keep bars for at most {MAX_RETENTION_DAYS} days (10 years).",
        },
        widget=forms.NumberInput(attrs={"class": INPUT + " font-mono"}),
    )

    def clean_bar_retention_days(self) -> int:
        """Empty means the default (30 days)."""
        days = self.cleaned_data["bar_retention_days"]
        return DEFAULT_RETENTION_DAYS if days is None else days

    def clean_roll_days(self) -> int:
        """Empty means the default (5 days)."""
        days = self.cleaned_data["roll_days"]
        return AppSettings._meta.get_field("roll_days").default if days is None else days

    def clean_bar_seconds(self) -> int:
        """A new bar size must fit every active rule's timeframes (``MA20@1m`` needs 5 s or
        1 min bars; ``MA20@5s`` can't run on 1-minute bars)."""
        bar_seconds = self.cleaned_data["bar_seconds"]
        if bar_seconds == settings_get().bar_seconds:
            return bar_seconds  # unchanged: other settings can still be saved
        for rule in rules_active():
            try:
                problem = timeframe_problem(validate_definition(rule.definition), bar_seconds)
            except RuleError:
                continue  # an invalid stored rule is not this form's business
            if problem:
                raise forms.ValidationError(
                    f"The active rule “{rule.name}” doesn't fit that bar size: {problem}. "
                    "Edit or deactivate the rule on the Rules page first."
                )
        return bar_seconds

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("feed") != AppSettings.Feed.CSV:
            return cleaned
        path = cleaned.get("csv_path")
        if not path:
            self.add_error(
                "csv_path", "The CSV feed replays a file: type the path of a CSV file of bars."
            )
        elif not os.path.isfile(path):
            self.add_error("csv_path", f"There is no file at {path}.")
        return cleaned

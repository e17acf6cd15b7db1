"""Admin views of the settings row, the engine state and its events log (both read-only)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from engine.models import AppSettings, EngineEvent, EngineState
from engine.panel.forms import SettingsForm
from engine.services import (
    SETTINGS_FIELDS,
    SETTINGS_LOCK_ACTION,
    engine_assert_stopped,
    settings_update,
)


class AppSettingsAdminForm(SettingsForm, forms.ModelForm):
    """The Settings page's fields and checks (host, port range, the CSV file) on the settings
    row, refused like the page while a run is live."""

    class Meta:
        model = AppSettings
        fields = sorted(SETTINGS_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.pop("class", None)  # the page's styling, not the admin's

    def clean(self):
        cleaned = super().clean()
        try:
            engine_assert_stopped(action=SETTINGS_LOCK_ACTION)
        except ValidationError as err:
            raise ValidationError(err.messages) from None
        return cleaned


@admin.register(AppSettings)
class AppSettingsAdmin(admin.ModelAdmin):
    form = AppSettingsAdminForm
    # Every settings field: one left out would be posted as empty and saved as such.
    fields = [
        "ib_host",
        "ib_port",
        "ib_client_id",
        "ib_next_client_id",
        "ib_restart_time",
        "ib_restart_zone",
        "feed",
        "csv_path",
        "bar_seconds",
        "use_rth",
        "roll_days",
        "outcome_horizons",
        "bar_retention_days",
    ]
    list_display = ["__str__", "feed", "bar_seconds", "ib_host", "ib_port", "ib_client_id"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        settings_update(**{name: form.cleaned_data[name] for name in SETTINGS_FIELDS})


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the worker writes: listed, never added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EngineState)
class EngineStateAdmin(ReadOnlyAdmin):
    list_display = ["effective_state", "desired", "message", "heartbeat", "pid"]


@admin.register(EngineEvent)
class EngineEventAdmin(ReadOnlyAdmin):
    """The engine's story, newest first: written by the worker only."""

    list_display = ["time", "state", "symbol", "message"]
    list_filter = ["state"]
    search_fields = ["message", "symbol"]
    date_hierarchy = "time"

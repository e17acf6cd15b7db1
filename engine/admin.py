"""Admin views of the settings row and the engine state (state is read-only)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from engine.models import AppSettings, EngineState
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
    fields = ["ib_host", "ib_port", "ib_client_id", "feed", "csv_path", "bar_seconds"]
    list_display = ["__str__", "feed", "bar_seconds", "ib_host", "ib_port", "ib_client_id"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        settings_update(**{name: form.cleaned_data[name] for name in SETTINGS_FIELDS})


@admin.register(EngineState)
class EngineStateAdmin(admin.ModelAdmin):
    list_display = ["effective_state", "desired", "message", "heartbeat", "pid"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

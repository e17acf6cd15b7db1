"""Admin views of the settings row and the engine state (state is read-only)."""

from django.contrib import admin

from engine.models import AppSettings, EngineState


@admin.register(AppSettings)
class AppSettingsAdmin(admin.ModelAdmin):
    fields = ["ib_host", "ib_port", "ib_client_id", "feed", "csv_path", "bar_seconds"]
    list_display = ["__str__", "feed", "bar_seconds", "ib_host", "ib_port", "ib_client_id"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EngineState)
class EngineStateAdmin(admin.ModelAdmin):
    list_display = ["effective_state", "desired", "message", "heartbeat", "pid"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

"""Read-only admin list of signals, with filters and search."""

from django.contrib import admin

from signals.models import Signal


@admin.register(Signal)
class SignalAdmin(admin.ModelAdmin):
    list_display = ["id", "time", "symbol", "price", "side", "rule_name", "bar_seconds"]
    list_filter = ["symbol", "rule_name", "side", "bar_seconds"]
    search_fields = ["symbol", "rule_name"]
    date_hierarchy = "time"
    # A full COUNT(*) over a million rows on every page view is wasted work.
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

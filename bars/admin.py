"""Read-only admin for the bar store: millions of rows, so no full count, filters read from
the index and an order the index already has."""

from datetime import UTC, datetime

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from bars.models import StoredBar
from bars.services import bars_keys
from engine.admin import ReadOnlyAdmin


class NoCountPaginator(Paginator):
    """Counts at most LOOKAHEAD_PAGES pages: ``COUNT(*)`` over 30 days of 5-second bars takes
    seconds; filter by symbol and size to reach older bars."""

    LOOKAHEAD_PAGES = 100

    @cached_property
    def count(self) -> int:
        limit = self.per_page * self.LOOKAHEAD_PAGES
        rows = self.object_list
        if isinstance(rows, QuerySet):
            return len(rows.values_list("pk", flat=True)[:limit])
        return len(rows[:limit])


class SymbolFilter(admin.SimpleListFilter):
    """The stored symbols, by index seeks (the stock filter runs a DISTINCT over the table)."""

    title = "symbol"
    parameter_name = "symbol"

    def lookups(self, request, model_admin):
        return [(s, s) for s in dict.fromkeys(symbol for symbol, _ in bars_keys())]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if "\x00" in value or len(value) > StoredBar._meta.get_field("symbol").max_length:
            return queryset.none()  # no such symbol (and PostgreSQL refuses NUL in text)
        return queryset.filter(symbol=value)


class SecondsFilter(admin.SimpleListFilter):
    title = "bar size"
    parameter_name = "seconds"

    def lookups(self, request, model_admin):
        sizes = sorted({seconds for _, seconds in bars_keys()})
        return [(str(s), f"{s} s") for s in sizes]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isascii() and value.isdigit() and len(value) < 10:
            return queryset.filter(seconds=int(value))
        return queryset.none() if value else queryset


@admin.register(StoredBar)
class StoredBarAdmin(ReadOnlyAdmin):
    list_display = ["symbol", "seconds", "start", "open", "high", "low", "close", "volume"]
    list_filter = [SymbolFilter, SecondsFilter]
    show_full_result_count = False
    paginator = NoCountPaginator
    # All descending: a backward walk of the (symbol, seconds, time) index, no sort.
    ordering = ["-symbol", "-seconds", "-time"]
    list_per_page = 100

    @admin.display(description="start (UTC)", ordering="time")
    def start(self, bar: StoredBar) -> str:
        return datetime.fromtimestamp(bar.time, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")

"""The signal history page and its CSV export (the REST mirror is ``signals.api``)."""

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from engine.core.outcomes import horizon_label
from rules.models import Rule
from signals import events, realtime
from signals.forms import HistoryFilterForm
from signals.models import Signal
from signals.services import outcomes_of
from signals.stats import outcome_stats, stats_context
from signals.templatetags.outcomes import outcome_cells
from signals.templatetags.prices import price_text
from watchlists.models import WatchlistItem

# The history page and its CSV export.
#
# Rows are ordered newest first by (time, id): bar close time, then id for signals of the same
# bar. Pages are keyset pages: ``?before=<id>`` shows the signals older than signal <id>, and
# ``?after=<id>`` the ones newer than it; the signal's (time, id) is looked up by primary key.
# Each page is one index range scan of PAGE_SIZE + 1 rows whatever the filter (see the indexes
# in signals/models.py and migration 0002): no COUNT(*), no OFFSET.

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
HISTORY = "signals/history.html"
NEWEST_FIRST = ("-time", "-id")
OLDEST_FIRST = ("time", "id")
ROW_FIELDS = (
    "id", "time", "symbol", "price", "rule_id", "rule_name", "bar_seconds", "side", "contract",
)  # fmt: skip
CSV_HEADER = events.CSV_HEADER
OUTCOME_COLUMNS = ("return", "mfe", "mae")


def csv_header(horizons: tuple[int, ...]) -> tuple[str, ...]:
    """The export's columns: the signal event's (``events.CSV_HEADER``), then per configured
    horizon ``return_1m_pct``, ``mfe_1m_pct``, ``mae_1m_pct`` (empty while not final)."""
    return CSV_HEADER + tuple(
        f"{column}_{horizon_label(h)}_pct" for h in horizons for column in OUTCOME_COLUMNS
    )


def _history_form(request) -> HistoryFilterForm:
    rules = Rule.objects.order_by("-is_system", "name").values_list("id", "name")
    symbols = WatchlistItem.objects.order_by("text").values_list("text", flat=True).distinct()
    return HistoryFilterForm(request.GET, rules=rules, symbols=symbols)


def _filtered(form: HistoryFilterForm) -> QuerySet:
    rows = Signal.objects.all()
    if symbol := form.cleaned_data.get("symbol"):
        rows = rows.filter(symbol=symbol)
    if rule_id := form.cleaned_data.get("rule"):
        rows = rows.filter(rule_id=rule_id)
    start, end = form.time_bounds()
    if start is not None:
        rows = rows.filter(time__gte=start)
    if end is not None:
        rows = rows.filter(time__lt=end)
    return rows


def _older_than(rows: QuerySet, anchor: tuple[datetime, int]) -> QuerySet:
    # (time, id) < anchor, written so SQLite uses the time column as an index range.
    time, pk = anchor
    return rows.filter(time__lte=time).exclude(time=time, id__gte=pk)


def _newer_than(rows: QuerySet, anchor: tuple[datetime, int]) -> QuerySet:
    time, pk = anchor
    return rows.filter(time__gte=time).exclude(time=time, id__lte=pk)


def _key(row: dict) -> tuple[datetime, int]:
    return row["time"], row["id"]


def _anchor(signal_id: int | None) -> tuple[datetime, int] | None:
    if signal_id is None:
        return None
    return Signal.objects.filter(pk=signal_id).values_list("time", "id").first()


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bar_text(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds and seconds % 60 == 0 else f"{seconds} s"


def _display(row: dict) -> dict:
    moment = row["time"].astimezone(UTC)
    return {
        **row,
        "time_iso": _utc_iso(moment),
        "time_utc": moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "price_text": price_text(row["price"], row.get("contract") or {"min_tick": 0.01}),
        "bar_text": _bar_text(row["bar_seconds"]),
    }


def _history_page(form: HistoryFilterForm) -> dict:
    """One keyset page for a valid form: rows, neighbour links and what the page is."""
    rows = _filtered(form)
    before_id, after_id = form.cleaned_data.get("before"), form.cleaned_data.get("after")
    note = ""
    cursor_id = before_id or after_id
    anchor = _anchor(cursor_id)
    if cursor_id is not None and anchor is None:
        note = f"Signal #{cursor_id} no longer exists, so this is the newest page."
        before_id = after_id = None
    page: list[dict] = []
    if after_id is not None and anchor is not None:
        newer = list(
            _newer_than(rows, anchor).order_by(*OLDEST_FIRST).values(*ROW_FIELDS)[: PAGE_SIZE + 1]
        )
        has_newer = len(newer) > PAGE_SIZE
        page = newer[:PAGE_SIZE][::-1]
        if not page:  # nothing newer any more: the newest page is the useful answer
            after_id = None
    if after_id is None:
        start = rows if before_id is None or anchor is None else _older_than(rows, anchor)
        older = list(start.order_by(*NEWEST_FIRST).values(*ROW_FIELDS)[: PAGE_SIZE + 1])
        has_older = len(older) > PAGE_SIZE
        page = older[:PAGE_SIZE]
        has_newer = (
            before_id is not None
            and anchor is not None
            and (
                _newer_than(rows, _key(page[0])).exists() if page else _anchor_matches(rows, anchor)
            )
        )
    else:
        has_older = _older_than(rows, _key(page[-1])).exists()

    params = form.filter_params()
    link = reverse("signals:history")
    newest_url = f"{link}?{urlencode(params)}" if params else link
    newer_url = ""
    if has_newer:
        newer_url = (
            f"{link}?{urlencode({**params, 'after': page[0]['id']})}" if page else newest_url
        )
    older_url = f"{link}?{urlencode({**params, 'before': page[-1]['id']})}" if has_older else ""
    horizons = realtime.outcome_horizons()
    stored = outcomes_of(row["id"] for row in page)
    return {
        "rows": [
            {**_display(row), "outcome_cells": outcome_cells(horizons, stored.get(row["id"]))}
            for row in page
        ],
        "horizon_labels": [horizon_label(h) for h in horizons],
        "stats_url": f"{link}?{urlencode({**params, 'stats': '1'})}",
        "note": note,
        "is_first_page": before_id is None and after_id is None,
        "newest_url": newest_url,
        "newer_url": newer_url,
        "older_url": older_url,
        "export_url": f"{reverse('signals:export')}?{urlencode(params)}",
    }


def _anchor_matches(rows: QuerySet, anchor: tuple[datetime, int]) -> bool:
    """An empty older page still has a newer side when its anchor row (or newer) matches."""
    return rows.filter(time__gte=anchor[0]).exists()


def _stats(form: HistoryFilterForm) -> dict:
    """Outcome statistics of every signal the filters match (all pages): one query over
    them, so the page loads them after its first paint (``#signal-stats``)."""
    table = outcome_stats(_filtered(form), realtime.outcome_horizons())
    caption = (
        "Outcomes of every signal these filters match (all pages)."
        if form.is_filtered
        else "Outcomes of every stored signal (filter by rule, symbol or dates to narrow)."
    )
    return {**stats_context(table, caption), "stats_loaded": True}


@require_GET
def history(request):
    """Signal history: filters (GET form), newest-first keyset pages, CSV export link; its
    outcome statistics come with ``?stats=1`` (htmx fetches them after the first paint)."""
    form = _history_form(request)
    context = {"form": form, "valid": form.is_valid()}
    headers = request.headers
    if context["valid"] and request.GET.get("stats") == "1":
        context.update(_stats(form))
        if headers.get("HX-Target") == "signal-stats":
            return render(request, f"{HISTORY}#stats", context)
    if context["valid"]:
        context.update(_history_page(form))
    context["rule_options"] = form.rule_options()
    # The boosted filter form and page links swap only the history section.
    partial = headers.get("HX-Target") == "signal-history"
    partial = partial and not headers.get("HX-History-Restore-Request")
    return render(request, f"{HISTORY}#history" if partial else HISTORY, context)


def _cell(text: str) -> str:
    """Text as a spreadsheet-safe cell: no leading character that starts a formula (OWASP CSV
    injection). Every text cell goes through here; numbers are written as numbers."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _outcome_fields(stored: dict[str, dict] | None, labels: list[str]) -> list[object]:
    fields: list[object] = []
    for label in labels:
        values = (stored or {}).get(label) or {}
        for column in OUTCOME_COLUMNS:
            value = values.get(f"{column}_pct")
            fields.append("" if value is None else repr(value))
    return fields


def _export_chunks(rows: QuerySet, horizons: tuple[int, ...] = ()) -> Iterator[str]:
    """The CSV text in chunks: header, then EXPORT_CHUNK rows per keyset query, oldest first."""
    out = io.StringIO()
    # RFC 4180 line ends: with "\n" alone the writer would leave a cell holding "\r" unquoted,
    # and a spreadsheet would split the row there.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(csv_header(horizons))
    labels = [horizon_label(h) for h in horizons]
    anchor = None
    fields = (*ROW_FIELDS, "values")
    while True:
        chunk_rows = rows if anchor is None else _newer_than(rows, anchor)
        batch = list(chunk_rows.order_by(*OLDEST_FIRST).values_list(*fields)[:EXPORT_CHUNK])
        stored = outcomes_of(row[0] for row in batch) if labels and batch else {}
        for row in batch:
            pk, moment, symbol, price, rule_id, rule_name, bar_seconds, side, contract, values = row
            event = events.signal(
                id=pk, symbol=symbol, price=price, rule_id=rule_id, rule_name=rule_name,
                close_time=int(moment.timestamp()), bar_seconds=bar_seconds, values=values,
                side=side or None, contract=contract,
            )  # fmt: skip
            pk, time_utc, symbol, price, rule_id, rule_name, bar_seconds, values_text, side = (
                events.csv_fields(event)
            )
            writer.writerow(
                (pk, time_utc, _cell(symbol), repr(price), rule_id, _cell(rule_name),
                 bar_seconds, _cell(values_text), side,
                 *_outcome_fields(stored.get(pk), labels))
            )  # fmt: skip
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(batch) < EXPORT_CHUNK:
            return
        anchor = (batch[-1][1], batch[-1][0])


async def _export_chunks_async(rows: QuerySet, horizons: tuple[int, ...]) -> AsyncIterator[str]:
    # Under Daphne a sync iterator would be read into one list before sending; fetching each
    # chunk in the request's sync thread keeps a million-row export streaming in bounded memory.
    chunks = _export_chunks(rows, horizons)
    fetch = sync_to_async(_next_chunk, thread_sensitive=True)
    while (part := await fetch(chunks)) is not None:
        yield part


def _next_chunk(chunks: Iterator[str]) -> str | None:
    return next(chunks, None)


@require_GET
def export_csv(request):
    """The current filter's signals as CSV (oldest first, UTC ISO times), streamed."""
    form = _history_form(request)
    if not form.is_valid():
        sentences = " ".join(msg for errors in form.errors.values() for msg in errors)
        return HttpResponse(sentences, status=400, content_type="text/plain; charset=utf-8")
    rows = _filtered(form)
    horizons = realtime.outcome_horizons()
    chunks = (
        _export_chunks_async(rows, horizons)
        if isinstance(request, ASGIRequest)
        else _export_chunks(rows, horizons)
    )
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    name = "-".join(["signals", *form.filter_params().values()]).replace(" ", "_")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response

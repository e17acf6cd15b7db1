"""The Backtest page: ask for a run, watch its progress, read its results, compare runs."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from backtests.forms import BacktestForm, default_period
from backtests.models import BacktestRun, BacktestSignal
from backtests.services import backtest_cancel, backtest_create, backtest_delete
from bars.services import bars_between
from engine.feeds.ib.history import history_client_id
from engine.services import settings_get
from rules.models import Rule
from scalpsite.ui import is_htmx
from watchlists.models import MAX_SYMBOLS
from watchlists.services import symbols_split, watchlist_get_active

PAGE = "backtests/page.html"
RUN = "backtests/run.html"
SIGNALS_PER_PAGE = 100
RUNS_LISTED = 50
MAX_COMPARE = 3
CHART_BARS = 5000


def _rule_choices() -> list[tuple[int, str]]:
    return [(rule.pk, rule.name) for rule in Rule.objects.order_by("name")]


def _page(request: HttpRequest, form: BacktestForm, errors: dict[str, str], status: int = 200):
    config = settings_get()
    return render(
        request,
        PAGE,
        {
            "form": form,
            "errors": errors,
            "rules": Rule.objects.order_by("name"),
            "chosen_rules": {str(v) for v in form["rules"].value() or []},
            "runs": BacktestRun.objects.all()[:RUNS_LISTED],
            "max_symbols": MAX_SYMBOLS,
            "history_client_id": history_client_id(config.ib_client_id),
            "sources": BacktestRun.Source.choices,
        },
        status=status,
    )


@require_GET
def backtest_page(request: HttpRequest) -> HttpResponse:
    config = settings_get()
    watchlist = watchlist_get_active()
    start, end = default_period(timezone.now().date())
    active = {rule.pk for rule in Rule.objects.filter(is_active=True)}
    form = BacktestForm(
        initial={
            "rules": [str(pk) for pk in active],
            "symbols": ", ".join(watchlist.symbols) if watchlist else "",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "source": BacktestRun.Source.STORED,
            "horizons": config.outcome_horizons,
            "bar_seconds": config.bar_seconds,
        },
        rule_choices=_rule_choices(),
    )
    return _page(request, form, {})


@require_POST
def backtest_start(request: HttpRequest) -> HttpResponse:
    form = BacktestForm(request.POST, request.FILES, rule_choices=_rule_choices())
    if not form.is_valid():
        errors = {name: " ".join(str(m) for m in msgs) for name, msgs in form.errors.items()}
        return _page(request, form, errors, status=400)
    data = form.cleaned_data
    upload = data.get("upload")
    start, end = form.period()
    try:
        run = backtest_create(
            rule_ids=data["rules"],
            symbols=symbols_split(data["symbols"]),
            start=start,
            end=end,
            source=data["source"],
            horizons=data["horizons"],
            bar_seconds=data["bar_seconds"],
            upload=upload.read() if upload is not None else None,
            upload_name=upload.name if upload is not None else "",
        )
    except ValidationError as err:
        if hasattr(err, "error_dict"):
            errors = {name: " ".join(msgs) for name, msgs in err.message_dict.items()}
        else:
            errors = {"__all__": " ".join(err.messages)}
        return _page(request, form, errors, status=400)
    return redirect("backtests:run", pk=run.pk)


def _stats_rows(run: BacktestRun) -> list[dict[str, Any]]:
    """Rows of the stats table: per rule, then its symbols, one cell group per horizon."""
    rows: list[dict[str, Any]] = []
    for line in (run.result or {}).get("stats", []):
        rows.append(
            {
                "rule": line.get("rule_name"),
                "symbol": "all",
                "signals": line.get("signals"),
                "cells": [line["horizons"].get(h) for h in run.horizon_labels],
                "is_rule": True,
            }
        )
        for symbol, figures in (line.get("symbols") or {}).items():
            rows.append(
                {
                    "rule": line.get("rule_name"),
                    "symbol": symbol,
                    "signals": figures.get("signals"),
                    "cells": [figures["horizons"].get(h) for h in run.horizon_labels],
                    "is_rule": False,
                }
            )
    return rows


def _signal_rows(run: BacktestRun, page_number: str | None):
    paginator = Paginator(run.signals.order_by("seq"), SIGNALS_PER_PAGE)
    page = paginator.get_page(page_number)
    rows = []
    for row in page.object_list:
        event = row.event
        outcomes = event.get("outcomes") or {}
        rows.append(
            {
                "seq": row.seq,
                "time": event.get("timestamp"),
                "symbol": row.symbol,
                "rule": event.get("rule_name"),
                "side": event.get("side") or "",
                "price": event.get("price"),
                "outcomes": [outcomes.get(h) for h in run.horizon_labels],
            }
        )
    return page, rows


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BacktestRun, pk=pk)
    page, rows = _signal_rows(run, request.GET.get("page"))
    return render(
        request,
        RUN,
        {
            "run": run,
            "stats_rows": _stats_rows(run),
            "page": page,
            "signal_rows": rows,
            "chart_symbols": run.symbols,
        },
    )


@require_GET
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BacktestRun, pk=pk)
    response = render(request, RUN + "#progress", {"run": run})
    if run.finished and is_htmx(request):
        response["HX-Refresh"] = "true"  # the whole page, now with its results
    return response


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = backtest_cancel(run=get_object_or_404(BacktestRun, pk=pk))
    if is_htmx(request):
        return render(request, RUN + "#progress", {"run": run})
    return redirect("backtests:run", pk=run.pk)


@require_POST
def run_delete(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BacktestRun, pk=pk)
    try:
        backtest_delete(run=run)
    except ValidationError as err:
        messages.error(request, " ".join(err.messages))
        return redirect("backtests:run", pk=pk)
    messages.success(request, f"Deleted backtest {pk}.")
    return redirect("backtests:page")


def _csv_lines(run: BacktestRun) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["id", "timestamp", "symbol", "rule_id", "rule_name", "side", "price"]
    for label in run.horizon_labels:
        header += [f"return_{label}_pct", f"mfe_{label}_pct", f"mae_{label}_pct"]
    writer.writerow(header)
    rows = BacktestSignal.objects.filter(run=run).order_by("seq").values_list("event", flat=True)
    for event in rows.iterator(chunk_size=2000):
        outcomes = event.get("outcomes") or {}
        line = [
            event.get("id"),
            event.get("timestamp"),
            event.get("symbol"),
            event.get("rule_id"),
            event.get("rule_name"),
            event.get("side") or "",
            event.get("price"),
        ]
        for label in run.horizon_labels:
            got = outcomes.get(label) or {}
            line += [got.get("return_pct"), got.get("mfe_pct"), got.get("mae_pct")]
        writer.writerow(["" if v is None else v for v in line])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()  # the header alone when there is no signal


@require_GET
def run_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    run = get_object_or_404(BacktestRun, pk=pk)
    response = StreamingHttpResponse(_csv_lines(run), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}-signals.csv"'
    return response


def _chart_bars(symbol: str, seconds: int, start: int, end: int) -> list[list[float]]:
    bars: list[list[float]] = []
    for bar in bars_between(symbol, seconds, start, end):
        bars.append([bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume])
        if len(bars) > CHART_BARS:
            break
    return bars


@require_GET
def run_chart(request: HttpRequest, pk: int) -> JsonResponse:
    """Stored bars of one symbol in the run's period (its bar size, or the stored 1-minute
    bars when there are more than CHART_BARS of them; at most CHART_BARS) and the run's
    signals of that symbol, for the chart with markers. An uploaded file's bars are not
    kept: its chart shows the signals only."""
    run = get_object_or_404(BacktestRun, pk=pk)
    symbol = str(request.GET.get("symbol", ""))[:64]
    if symbol not in run.symbols:
        return JsonResponse({"error": "This run has no such symbol."}, status=400)
    bars: list[list[float]] = []
    seconds = run.bar_seconds
    if run.source != BacktestRun.Source.CSV:
        start, end = int(run.start.timestamp()), int(run.end.timestamp())
        bars = _chart_bars(symbol, seconds, start, end)
        if len(bars) > CHART_BARS and seconds < 60:
            minutes = _chart_bars(symbol, 60, start, end)
            if minutes:
                bars, seconds = minutes, 60
        bars = bars[:CHART_BARS]
    signals = [
        {"time": t, "price": e.get("price"), "side": e.get("side"), "seq": seq}
        for seq, t, e in run.signals.filter(symbol=symbol)
        .order_by("seq")
        .values_list("seq", "time", "event")[:CHART_BARS]
    ]
    return JsonResponse(
        {
            "symbol": symbol,
            "seconds": seconds,  # the candles'
            "bar_seconds": run.bar_seconds,  # the run's: a signal's bar starts this before its time
            "bars": bars,
            "signals": signals,
        }
    )


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    ids = []
    for raw in request.GET.getlist("ids")[: MAX_COMPARE + 1]:
        if raw.isascii() and raw.isdigit() and len(raw) <= 9:
            ids.append(int(raw))
    if not 2 <= len(ids) <= MAX_COMPARE:
        messages.error(request, f"Choose 2 to {MAX_COMPARE} runs to compare.")
        return redirect("backtests:page")
    runs = {run.pk: run for run in BacktestRun.objects.filter(pk__in=ids)}
    chosen = [runs[i] for i in ids if i in runs]
    if len(chosen) < 2:
        messages.error(request, "Some of those runs no longer exist.")
        return redirect("backtests:page")
    columns = [{"run": run, "stats_rows": _stats_rows(run)} for run in chosen]
    return render(request, "backtests/compare.html", {"columns": columns})

"""Every change to a backtest run: create (validated like every other entry point), cancel,
delete, and the worker's claim / progress / signals / finish."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from backtests.models import MAX_PERIOD_DAYS, MAX_RUN_RULES, BacktestRun, BacktestSignal
from engine.core.bars import END_BAR_TIME, FIRST_BAR_TIME, TIME_RANGE_TEXT, parse_time
from engine.core.outcomes import HorizonError, format_horizons, parse_horizons
from engine.core.rules import RuleError, timeframe_problem, validate_definition
from rules.forms.preview import MAX_UPLOAD_BYTES
from rules.models import Rule
from watchlists.models import MAX_SYMBOLS
from watchlists.services import symbols_normalize

BAR_SIZES = (5, 60)
WORKER_STOPPED = "The worker stopped during this run; start it again to run another backtest."
SIGNAL_CHUNK = 1000


def uploads_dir() -> Path:
    return Path(settings.VAR_DIR) / "uploads"


def upload_path(run: BacktestRun) -> Path | None:
    """The run's uploaded CSV (a name the app chose, under var/uploads), or None."""
    if not run.upload:
        return None
    return uploads_dir() / Path(run.upload).name


def _rules_snapshot(rule_ids: Sequence[object], bar_seconds: int) -> list[dict[str, Any]]:
    ids: list[int] = []
    for raw in rule_ids:
        text = str(raw).strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise ValidationError({"rules": f"{text[:20]!r} is not a rule id."})
        if int(text) not in ids:
            ids.append(int(text))
    if not ids:
        raise ValidationError({"rules": "Choose at least one rule."})
    if len(ids) > MAX_RUN_RULES:
        raise ValidationError(
            {"rules": f"Choose at most {MAX_RUN_RULES} rules ({len(ids)} chosen)."}
        )
    found = {rule.pk: rule for rule in Rule.objects.filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({"rules": f"There is no rule with id {missing[0]}."})
    snapshot = []
    for rule_id in ids:
        rule = found[rule_id]
        try:
            definition = validate_definition(rule.definition)
        except RuleError as err:
            raise ValidationError({"rules": f"Rule {rule.name!r} is invalid: {err}"}) from None
        problem = timeframe_problem(definition, bar_seconds)
        if problem is not None:
            raise ValidationError({"rules": f"Rule {rule.name!r}: {problem}."})
        snapshot.append({"id": rule.pk, "name": rule.name, "definition": definition.to_json()})
    return snapshot


def _period(start: object, end: object) -> tuple[datetime, datetime]:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise ValidationError({"period": "Give the period's start and end."})
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValidationError({"period": "The period's times must carry a time zone (UTC)."})
    first = datetime.fromtimestamp(FIRST_BAR_TIME, UTC)
    last = datetime.fromtimestamp(END_BAR_TIME, UTC)
    if not (first <= start < last and first < end <= last):
        raise ValidationError({"period": f"The period is out of range: {TIME_RANGE_TEXT}."})
    if end <= start:
        raise ValidationError({"period": "The period ends before it starts."})
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise ValidationError(
            {"period": f"The period is longer than {MAX_PERIOD_DAYS} days; choose a shorter one."}
        )
    return start.astimezone(UTC), end.astimezone(UTC)


def _check_upload(data: bytes) -> None:
    if not data.strip():
        raise ValidationError({"upload": "The uploaded file is empty; choose a CSV of bars."})
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError(
            {"upload": f"The file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."}
        )
    if b"\x00" in data:
        raise ValidationError({"upload": "The file holds NUL bytes: it is not a CSV text file."})
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            {"upload": "The file is not UTF-8 text: choose a CSV file."}
        ) from None


def _save_upload(data: bytes) -> str:
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"backtest-{uuid.uuid4().hex}.csv"
    (folder / name).write_bytes(data)
    return name


def _clean_name(name: object) -> str:
    text = "".join(ch for ch in str(name or "") if ch.isprintable())
    return Path(text.replace("\\", "/")).name[:200]


def backtest_create(
    *,
    rule_ids: Sequence[object],
    symbols: Iterable[object] = (),
    start: object,
    end: object,
    source: str,
    horizons: str,
    bar_seconds: object,
    upload: bytes | None = None,
    upload_name: str = "",
) -> BacktestRun:
    """A queued run, or ValidationError with one sentence per bad field."""
    errors: dict[str, str] = {}
    if source not in BacktestRun.Source.values:
        errors["source"] = "Choose stored bars, an uploaded CSV or IB history."
    if bar_seconds not in BAR_SIZES and str(bar_seconds) not in ("5", "60"):
        errors["bar_seconds"] = "The bar size is 5 seconds or 1 minute."
        seconds = 5
    else:
        seconds = int(str(bar_seconds))
    cleaned: dict[str, Any] = {}
    try:
        cleaned["rules"] = _rules_snapshot(list(rule_ids), seconds)
    except ValidationError as err:
        errors.update({k: v[0] for k, v in err.message_dict.items()})
    try:
        cleaned["horizons"] = format_horizons(parse_horizons(horizons))
    except HorizonError as err:
        errors["horizons"] = f"Horizons: {err}."
    try:
        cleaned["start"], cleaned["end"] = _period(start, end)
    except ValidationError as err:
        errors.update({k: v[0] for k, v in err.message_dict.items()})
    if source == BacktestRun.Source.CSV:
        cleaned["symbols"] = []  # the file's
        if upload is None:
            errors["upload"] = "Choose a CSV file of bars to upload."
        else:
            try:
                _check_upload(upload)
            except ValidationError as err:
                errors["upload"] = err.message_dict["upload"][0]
    else:
        try:
            items = symbols_normalize(list(symbols))
        except ValidationError as err:
            errors["symbols"] = err.message_dict["symbols"][0]
        else:
            if not items:
                errors["symbols"] = "Choose at least one symbol."
            elif len(items) > MAX_SYMBOLS:
                errors["symbols"] = f"Choose at most {MAX_SYMBOLS} symbols."
            cleaned["symbols"] = items
    if errors:
        raise ValidationError(errors)
    name = _save_upload(upload) if source == BacktestRun.Source.CSV and upload is not None else ""
    run = BacktestRun(
        source=source,
        bar_seconds=seconds,
        upload=name,
        upload_name=_clean_name(upload_name) if name else "",
        message="Waiting for the worker.",
        **cleaned,
    )
    try:
        run.full_clean()
    except ValidationError:
        _remove_upload(name)
        raise
    run.save()
    return run


def _remove_upload(name: str) -> None:
    if name:
        with contextlib.suppress(OSError):
            (uploads_dir() / Path(name).name).unlink()


def backtest_cancel(*, run: BacktestRun) -> BacktestRun:
    """A queued run is cancelled at once; a running one when the worker next checks."""
    with transaction.atomic():
        updated = BacktestRun.objects.filter(pk=run.pk, state=BacktestRun.State.QUEUED).update(
            state=BacktestRun.State.CANCELLED,
            message="Cancelled before it started.",
            finished_at=timezone.now(),
        )
        if not updated:
            BacktestRun.objects.filter(pk=run.pk, state=BacktestRun.State.RUNNING).update(
                cancel_requested=True, message="Cancelling…"
            )
    run.refresh_from_db()
    return run


def backtest_delete(*, run: BacktestRun) -> None:
    if run.state == BacktestRun.State.RUNNING:
        raise ValidationError("The run is still running: cancel it first, then delete it.")
    name = run.upload
    run.delete()
    _remove_upload(name)


# ---- the worker's side ---------------------------------------------------------------------


def backtests_fail_orphans() -> int:
    """Runs a dead worker left ``running`` become failed (the worker calls this at start)."""
    return BacktestRun.objects.filter(state=BacktestRun.State.RUNNING).update(
        state=BacktestRun.State.FAILED,
        error=WORKER_STOPPED,
        message="",
        eta_seconds=None,
        finished_at=timezone.now(),
    )


def backtest_claim_next() -> BacktestRun | None:
    """The oldest queued run, now ``running``; None if there is none."""
    with transaction.atomic():
        run = BacktestRun.objects.filter(state=BacktestRun.State.QUEUED).order_by("id").first()
        if run is None:
            return None
        claimed = BacktestRun.objects.filter(pk=run.pk, state=BacktestRun.State.QUEUED).update(
            state=BacktestRun.State.RUNNING,
            started_at=timezone.now(),
            progress=0.0,
            message="Starting…",
        )
    if not claimed:
        return None
    run.refresh_from_db()
    return run


def backtest_progress(
    *,
    run_id: int,
    progress: float,
    eta_seconds: float | None,
    message: str,
    bars: int | None = None,
) -> bool:
    """Note how far a run got; True when cancelling was asked for."""
    fields: dict[str, Any] = {
        "progress": min(1.0, max(0.0, progress)),
        "eta_seconds": eta_seconds,
        "message": message[:500],
    }
    if bars is not None:
        fields["bars"] = bars
    BacktestRun.objects.filter(pk=run_id).update(**fields)
    return bool(
        BacktestRun.objects.filter(pk=run_id, cancel_requested=True).exists()
        or not BacktestRun.objects.filter(pk=run_id).exists()  # deleted from under it
    )


def backtest_notice(*, run_id: int, sentence: str) -> None:
    """Keep a sentence the run's page should show (an IB item refused, a pacing wait)."""
    with transaction.atomic():
        run = BacktestRun.objects.filter(pk=run_id).first()
        if run is not None:
            run.notices = [*run.notices, sentence[:500]][-50:]
            run.save(update_fields=["notices"])


def _close_time(event: dict[str, Any]) -> int:
    try:
        return parse_time(str(event.get("timestamp", "")))
    except ValueError:
        return 0


def backtest_signals_add(*, run_id: int, events: Sequence[dict[str, Any]]) -> int:
    """Store signal events (with their outcomes) of a run; returns how many."""
    rows = [
        (
            run_id,
            int(event["id"]),
            str(event.get("symbol", ""))[:64],
            event.get("rule_id"),
            _close_time(event),
            event,
        )
        for event in events
    ]
    if connection.vendor == "sqlite":
        # A busy rule's 100,000 signals: Django's bulk_create spends more time preparing
        # each value than SQLite spends storing it.
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {BacktestSignal._meta.db_table} "
                "(run_id, seq, symbol, rule_id, time, event) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(*row[:5], dumps(row[5])) for row in rows],
            )
        return len(rows)
    objects = [
        BacktestSignal(run_id=r, seq=q, symbol=s, rule_id=i, time=t, event=e)
        for r, q, s, i, t, e in rows
    ]
    for i in range(0, len(objects), SIGNAL_CHUNK):
        BacktestSignal.objects.bulk_create(objects[i : i + SIGNAL_CHUNK], ignore_conflicts=True)
    return len(rows)


def backtest_finish(
    *,
    run_id: int,
    state: str,
    result: dict[str, Any] | None = None,
    error: str = "",
    bars: int | None = None,
    symbols: Sequence[str] | None = None,
) -> None:
    fields: dict[str, Any] = {
        "state": state,
        "error": error[:500],
        "eta_seconds": None,
        "finished_at": timezone.now(),
        "signal_count": BacktestSignal.objects.filter(run_id=run_id).count(),
    }
    if state == BacktestRun.State.DONE:
        fields["progress"] = 1.0
        fields["message"] = ""
    elif state == BacktestRun.State.CANCELLED:
        fields["message"] = "Cancelled; the signals found so far are kept."
    else:
        fields["message"] = ""
    if result is not None:
        fields["result"] = result
    if bars is not None:
        fields["bars"] = bars
    if symbols is not None:
        fields["symbols"] = list(symbols)
    BacktestRun.objects.filter(pk=run_id).update(**fields)

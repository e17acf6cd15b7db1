"""Every change to alert destinations and their outbox goes through these functions.

Pages, the admin and ``manage.py destinations`` validate through :func:`destination_clean`;
the worker writes the outbox with :func:`outbox_add` (inside the signal's transaction) and
its sender reads and settles it with :func:`outbox_heads`, :func:`outbox_head` and
:func:`delivery_settle` (DESIGN §7.4).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from alerts.models import FAILING_AFTER, TELEGRAM_API, Delivery, Destination
from engine.core.inputs import shown
from engine.core.rules import SIDES
from rules.models import Rule
from signals.models import Signal
from watchlists.services import symbol_normalize, symbols_split

MAX_TEMPLATE_CHARS = 10_000
MAX_URL_CHARS = 2000
MAX_SECRET_CHARS = 200
MAX_FILTER_ITEMS = 50
RETRY_FOR = timedelta(hours=24)
BACKOFF_CAP_SECONDS = 300

PLACEHOLDERS = ("symbol", "price", "side", "rule_name", "rule_id", "timestamp", "id")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_TOKEN_RE = re.compile(r"[0-9]{1,12}:[A-Za-z0-9_-]{20,80}", re.ASCII)
_CHAT_RE = re.compile(r"-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31}", re.ASCII)
_ID_RE = re.compile(r"[0-9]{1,9}", re.ASCII)
_SEPARATORS = re.compile(r"[,;\s]+")


# --- validation: one place for the page, the admin and the CLI ------------------------------


def _shown(text: str) -> str:
    return shown(text, keep=24)


def _text(value: object, field: str, what: str, *, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field: f"{what} is text."})
    if "\x00" in value:
        raise ValidationError({field: f"{what} can't contain a NUL character."})
    if len(value) > limit:
        raise ValidationError(
            {field: f"{what} is too long ({len(value)} characters, at most {limit})."}
        )
    return value.strip()


def url_clean(value: object, field: str = "url") -> str:
    """An http(s) URL, or ValidationError with a sentence. Local addresses are allowed (a
    trade executor on this machine); ``file:`` and every other scheme are refused."""
    url = _text(value, field, "A URL", limit=MAX_URL_CHARS)
    if not url:
        raise ValidationError({field: "Give the URL to send to, e.g. https://example.com/hook."})
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValidationError({field: "A URL can't contain spaces or control characters."})
    scheme, _, _ = url.partition(":")
    if scheme.lower() not in ("http", "https") or not url.lower().startswith(
        ("http://", "https://")
    ):
        shown = _shown(scheme) if ":" in url else _shown(url)
        raise ValidationError(
            {field: f"Only http:// and https:// URLs can receive alerts, not “{shown}”."}
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as err:
        raise ValidationError({field: f"“{_shown(url)}” is not a valid URL: {err}."}) from err
    if not parts.hostname:
        raise ValidationError({field: f"“{_shown(url)}” names no host."})
    return url


def _line_col(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def template_check(template: str) -> None:
    """Refuse a body template that has an unknown placeholder or doesn't render to valid
    JSON, naming the position (ValidationError on ``template``)."""
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1).strip()
        if name not in PLACEHOLDERS:
            names = ", ".join("{{" + p + "}}" for p in PLACEHOLDERS)
            raise ValidationError(
                {
                    "template": f"Unknown placeholder “{{{{{_shown(name)}}}}}” at "
                    f"{_line_col(template, match.start())}; use {names}."
                }
            )
    leftover = _PLACEHOLDER.sub("", template)
    if "{{" in leftover:
        at = template.find("{{", template.rfind("}}") + 2 if "}}" in template else 0)
        at = at if at >= 0 else template.find("{{")
        raise ValidationError(
            {"template": f"A “{{{{” is not closed with “}}}}” at {_line_col(template, at)}."}
        )
    for side in ("buy", None):
        body = render_template(template, sample_event(side=side))
        try:
            json.loads(body)
        except RecursionError as err:
            raise ValidationError({"template": "The template is nested too deeply."}) from err
        except json.JSONDecodeError as err:
            raise ValidationError(
                {
                    "template": "The template is not valid JSON once filled in: "
                    f"{err.msg} at line {err.lineno}, column {err.colno}"
                    f"{_outside_quotes_hint(template)}."
                }
            ) from err


def _outside_quotes_hint(template: str) -> str:
    """Why a template that is JSON with numbers in its placeholders' places fails: a text
    placeholder stands outside quotes."""
    try:
        json.loads(_PLACEHOLDER.sub("0", template))
    except (json.JSONDecodeError, RecursionError):
        return ""
    return (
        " (a text placeholder such as {{symbol}}, {{side}}, {{rule_name}} or {{timestamp}} "
        'goes inside quotes: "{{symbol}}"; only {{price}}, {{rule_id}} and {{id}} may stand '
        "alone)"
    )


def _ids(value: object) -> list[int]:
    items = value if isinstance(value, list | tuple) else _SEPARATORS.split(str(value or ""))
    items = [item for item in items if str(item).strip()]
    ids: list[int] = []
    for item in items:
        text = str(item).strip()
        if not _ID_RE.fullmatch(text):
            raise ValidationError({"rule_ids": f"“{_shown(text)}” is not a rule id (a number)."})
        ids.append(int(text))
    if len(ids) > MAX_FILTER_ITEMS:
        raise ValidationError({"rule_ids": f"At most {MAX_FILTER_ITEMS} rules in a filter."})
    known = set(Rule.objects.filter(id__in=ids).values_list("id", flat=True))
    missing = [i for i in ids if i not in known]
    if missing:
        raise ValidationError({"rule_ids": f"Rule {missing[0]} doesn't exist."})
    return sorted(set(ids))


def _symbols(value: object) -> list[str]:
    """Watchlist items (``AAPL``, ``ES:FUT:CME``) as their canonical texts, the names signals
    carry; the watchlists' sentence for a bad one."""
    items = value if isinstance(value, list | tuple) else symbols_split(str(value or ""))
    if len(items) > MAX_FILTER_ITEMS:
        raise ValidationError({"symbols": f"At most {MAX_FILTER_ITEMS} symbols in a filter."})
    return sorted({symbol_normalize(item) for item in items})


def destination_clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of a destination, validated and normalised; ValidationError naming the
    field with a sentence. ``data`` has the model's field names; filters may be text
    (``"1, 2"``, ``"AAPL MSFT, ES:FUT:CME"``) or lists."""
    kind = data.get("kind")
    if kind not in Destination.Kind.values:
        raise ValidationError(
            {
                "kind": f"“{_shown(str(kind))}” is not a destination kind: use webhook, "
                "telegram or discord."
            }
        )
    out: dict[str, Any] = {"kind": kind}
    out["secret"] = _text(data.get("secret"), "secret", "The secret", limit=MAX_SECRET_CHARS)
    out["template"] = ""
    out["chat_id"] = ""
    if kind == Destination.Kind.TELEGRAM:
        base = data.get("url") or TELEGRAM_API
        out["url"] = url_clean(base).rstrip("/")
        if not _TOKEN_RE.fullmatch(out["secret"]):
            raise ValidationError(
                {"secret": "A Telegram bot token looks like 123456789:AAE… (from @BotFather)."}
            )
        chat = _text(data.get("chat_id"), "chat_id", "The chat id", limit=64)
        if not _CHAT_RE.fullmatch(chat):
            raise ValidationError(
                {
                    "chat_id": "A Telegram chat id is a number such as -1001234567890, "
                    "or @channelname."
                }
            )
        out["chat_id"] = chat
    else:
        out["url"] = url_clean(data.get("url"))
        if kind == Destination.Kind.WEBHOOK:
            template = _text(
                data.get("template"), "template", "The template", limit=MAX_TEMPLATE_CHARS
            )
            if template:
                template_check(template)
            out["template"] = template
        else:
            out["secret"] = ""
    out["rule_ids"] = _ids(data.get("rule_ids"))
    out["symbols"] = _symbols(data.get("symbols"))
    side = _text(data.get("side"), "side", "The side", limit=8).lower()
    if side in ("any", "both"):
        side = ""
    if side and side not in SIDES:
        raise ValidationError(
            {"side": f"“{_shown(side)}” is not a side: use buy, sell or leave it empty."}
        )
    out["side"] = side
    name = _text(data.get("name"), "name", "The name", limit=80)
    if not name:
        host = urlsplit(out["url"]).hostname or ""
        name = f"{Destination.Kind(kind).label} {host}".strip()[:80]
    if not name.isprintable():
        raise ValidationError({"name": "The name can't contain control characters."})
    out["name"] = name
    out["enabled"] = bool(data.get("enabled", True))
    return out


def destination_create(**data: Any) -> Destination:
    destination = Destination.objects.create(**destination_clean(data))
    _filters_changed()
    return destination


def destination_update(
    destination: Destination, *, clear_secret: bool = False, **data: Any
) -> Destination:
    """Change a destination. An empty ``secret`` keeps the stored one (pages never show it
    back, so an edit that leaves the box empty means "unchanged"); ``clear_secret`` removes a
    webhook's secret (its deliveries are then unsigned)."""
    merged = {
        field: getattr(destination, field)
        for field in (
            "name",
            "kind",
            "url",
            "template",
            "secret",
            "chat_id",
            "rule_ids",
            "symbols",
            "side",
            "enabled",
        )
    }
    merged.update(data)
    if not data.get("secret") and data.get("kind", destination.kind) == destination.kind:
        merged["secret"] = destination.secret
    if clear_secret:
        if destination.kind != Destination.Kind.WEBHOOK:
            raise ValidationError({"secret": "Only a webhook's secret can be removed."})
        merged["secret"] = ""
    for field, value in destination_clean(merged).items():
        setattr(destination, field, value)
    destination.save()
    _filters_changed()
    return destination


def destination_set_enabled(destination: Destination, enabled: bool) -> Destination:
    destination.enabled = enabled
    if enabled:
        destination.failures_in_row = 0
    destination.save(update_fields=["enabled", "failures_in_row"])
    _filters_changed()
    return destination


def destination_remove(destination_id: int) -> None:
    """Remove a destination with its log and whatever it had not delivered yet."""
    deleted, _ = Destination.objects.filter(id=destination_id).delete()
    _filters_changed()
    if not deleted:
        raise ValidationError({"id": f"There is no destination {destination_id}."})


def destinations_list() -> list[Destination]:
    return list(Destination.objects.order_by("id"))


def destinations_failing() -> list[Destination]:
    """Enabled destinations whose last tries failed (the dashboard's warning)."""
    return list(
        Destination.objects.filter(enabled=True, failures_in_row__gte=FAILING_AFTER).order_by("id")
    )


def secret_masked(secret: str) -> str:
    """A secret as pages and the CLI show it: never in full."""
    if not secret:
        return ""
    return "••••" + (secret[-4:] if len(secret) >= 16 else "")


def url_masked(destination: Destination) -> str:
    """The URL as shown: a Discord webhook's token (the last path part) and the values in a
    query string (``?token=…``) are masked."""
    url = destination.url
    if destination.kind == Destination.Kind.DISCORD:
        head, _, token = url.rstrip("/").rpartition("/")
        if head and len(token) >= 16:
            url = f"{head}/{secret_masked(token)}"
    base, mark, query = url.partition("?")
    if mark:
        pairs = [pair.partition("=") for pair in query.split("&")]
        url = (
            base
            + "?"
            + "&".join(
                f"{key}={secret_masked(value)}" if eq and value else key + eq
                for key, eq, value in pairs
            )
        )
    return url


# --- bodies ---------------------------------------------------------------------------------


def sample_event(*, side: str | None = "buy") -> dict[str, Any]:
    """The signal event a "Send test" delivers (and templates are checked with)."""
    return {
        "event": "signal",
        "symbol": "TEST",
        "price": 123.45,
        "rule_id": 0,
        "timestamp": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "id": 0,
        "rule_name": "Send test",
        "bar_seconds": 5,
        "values": {},
        "side": side,
        "test": True,
    }


def _placeholder_value(event: Mapping[str, Any], name: str) -> str:
    value = event.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


def render_template(template: str, event: Mapping[str, Any]) -> str:
    """The template with each ``{{name}}`` replaced by the event's value, JSON-escaped (so a
    placeholder inside quotes stays one JSON string; numbers may stand outside quotes)."""
    return _PLACEHOLDER.sub(lambda m: _placeholder_value(event, m.group(1).strip()), template)


# --- the outbox -----------------------------------------------------------------------------


def _matches(destination: Destination, signal: Signal) -> bool:
    return (
        (not destination.rule_ids or signal.rule_id in destination.rule_ids)
        and (not destination.symbols or signal.symbol in destination.symbols)
        and (not destination.side or signal.side == destination.side)
    )


# The worker's copy of the enabled destinations' filters: (id, rule ids, symbols, side). The
# sender re-reads it every second (``destination_filters_refresh``, off the bar path) and the
# changes below drop it; ``outbox_add`` reads it itself when it is older than that.
_Filter = tuple[int, frozenset[int], frozenset[str], str]
FILTERS_FRESH_SECONDS = 2.0
_filters: list[_Filter] = []
_filters_read_at = float("-inf")


def destination_filters_refresh() -> None:
    global _filters, _filters_read_at
    rows = Destination.objects.filter(enabled=True).values_list("id", "rule_ids", "symbols", "side")
    _filters = [(i, frozenset(r or ()), frozenset(s or ()), side) for i, r, s, side in rows]
    _filters_read_at = time.monotonic()


def _filters_changed() -> None:
    global _filters_read_at
    _filters_read_at = float("-inf")


def outbox_add(signal: Signal) -> int:
    """One pending delivery per enabled destination whose filters take ``signal``; call it in
    the transaction that stored the signal. Returns how many.

    On the bar → signal path, so it costs one statement (none when nothing matches): the
    filters come from the copy above, and the insert takes only destinations that are still
    enabled (one disabled or removed a moment ago gets nothing, and the signal's transaction
    never fails on a destination that is gone). A destination added or changed in another
    process is seen within ``FILTERS_FRESH_SECONDS``. Measured in ``bench/alerts_bench.py``.
    """
    if time.monotonic() - _filters_read_at > FILTERS_FRESH_SECONDS:
        destination_filters_refresh()
    ids = [
        destination_id
        for destination_id, rule_ids, symbols, side in _filters
        if (not rule_ids or signal.rule_id in rule_ids)
        and (not symbols or signal.symbol in symbols)
        and (not side or signal.side == side)
    ]
    if not ids:
        return 0
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Delivery._meta.db_table} "
            "(destination_id, signal_id, status, tries, created_at, next_try_at, error) "
            f"SELECT id, %s, %s, 0, %s, %s, '' FROM {Destination._meta.db_table} "
            f"WHERE enabled AND id IN ({marks}) ORDER BY id",
            [signal.id, Delivery.Status.PENDING, now, now, *ids],
        )
        return cursor.rowcount


@dataclass(frozen=True)
class Head:
    destination_id: int
    delivery_id: int
    next_try_at: datetime


def outbox_heads() -> list[Head]:
    """The oldest pending delivery of each enabled destination: the only one that may be sent
    (signal order per destination)."""
    firsts = (
        Delivery.objects.filter(status=Delivery.Status.PENDING, destination__enabled=True)
        .values("destination")
        .annotate(first=Min("id"))
        .values_list("first", flat=True)
    )
    rows = Delivery.objects.filter(id__in=list(firsts)).values_list(
        "destination_id", "id", "next_try_at"
    )
    return [Head(*row) for row in rows]


def outbox_head(destination_id: int) -> Delivery | None:
    """The destination's oldest pending delivery, with its destination and signal."""
    return (
        Delivery.objects.select_related("destination", "signal")
        .filter(destination_id=destination_id, status=Delivery.Status.PENDING)
        .order_by("id")
        .first()
    )


def backoff_seconds(tries: int) -> float:
    """Wait after the ``tries``-th failed try: 1, 2, 4 … seconds, capped at 5 minutes."""
    return float(min(2 ** min(max(tries - 1, 0), 20), BACKOFF_CAP_SECONDS))


@dataclass(frozen=True)
class Outcome:
    """What one try came to (``alerts/transport.py`` makes it)."""

    ok: bool
    retry: bool
    http_status: int | None
    latency_ms: float
    error: str = ""
    retry_after: float | None = None


def delivery_settle(delivery_id: int, outcome: Outcome, *, now: datetime | None = None) -> Delivery:
    """Record one try: delivered, scheduled again (with backoff, for 24 h from the signal's
    outbox row) or failed; the destination's health follows."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = Delivery.objects.select_related("destination").get(id=delivery_id)
        destination = delivery.destination
        delivery.tries += 1
        delivery.last_try_at = now
        delivery.http_status = outcome.http_status
        delivery.latency_ms = outcome.latency_ms
        delivery.error = outcome.error[:300]
        if outcome.ok:
            delivery.status = Delivery.Status.DELIVERED
            delivery.done_at = now
            destination.failures_in_row = 0
            destination.last_error = ""
            destination.last_ok_at = now
        else:
            destination.failures_in_row += 1
            destination.last_error = outcome.error[:300]
            deadline = delivery.created_at + RETRY_FOR
            if outcome.retry and now < deadline:
                wait = backoff_seconds(delivery.tries)
                if outcome.retry_after is not None:
                    wait = min(max(wait, outcome.retry_after), BACKOFF_CAP_SECONDS)
                delivery.next_try_at = min(now + timedelta(seconds=wait), deadline)
            else:
                if outcome.retry:
                    delivery.error = (
                        f"Gave up after 24 h and {delivery.tries} tries: {outcome.error}"
                    )[:300]
                delivery.status = Delivery.Status.FAILED
                delivery.done_at = now
        delivery.save()
        destination.save(update_fields=["failures_in_row", "last_error", "last_ok_at"])
    return delivery


def delivery_test_record(destination: Destination, outcome: Outcome) -> Delivery:
    """Log a "Send test" try (tests are not retried)."""
    now = timezone.now()
    delivery = Delivery.objects.create(
        destination=destination, signal=None, created_at=now, next_try_at=now
    )
    return delivery_settle(delivery.id, dataclasses.replace(outcome, retry=False), now=now)


def deliveries_log(
    *, destination_ids: Iterable[int] | None = None, status: str | None = None, limit: int = 100
) -> list[Delivery]:
    """The newest deliveries first, for the Alerts page and ``destinations log``."""
    rows = Delivery.objects.select_related("destination", "signal").order_by("-id")
    if destination_ids is not None:
        rows = rows.filter(destination_id__in=list(destination_ids))
    if status:
        rows = rows.filter(status=status)
    return list(rows[:limit])

"""One HTTP try to one destination: the request it sends and what came of it.

Webhooks POST the signal event (or the rendered template); Telegram gets ``sendMessage``
and Discord its webhook ``content``, each with a one-line text. Every request carries
``X-Scalp-Delivery`` (the signal id: receivers de-duplicate by it) and, for a webhook with a
secret, ``X-Scalp-Signature: sha256=<hex HMAC-SHA256 of the body>``. Redirects are not
followed; a try ends after ``timeout`` seconds whatever the receiver does.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from alerts.models import Destination
from alerts.services import Outcome, render_template
from signals.templatetags.prices import price_text

TIMEOUT_SECONDS = 5.0
USER_AGENT = "ScalpSignal-alerts/1"
MAX_BODY_READ = 4096  # of an answer: enough for its first line
RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # Text to scrub from error sentences (a token inside the URL).
    hidden: tuple[str, ...] = ()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Scalp-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def message_text(event: Mapping[str, Any]) -> str:
    """The chat line for Telegram and Discord."""
    side = (event.get("side") or "").upper()
    head = f"{side} {event['symbol']}" if side else f"{event['symbol']} signal"
    test = " (test)" if event.get("test") else ""
    return (
        f"{head} at {price_text(event['price'], event.get('contract'))} — {event['rule_name']}, "
        "bar closed "
        f"{str(event['timestamp']).replace('T', ' ').replace('Z', ' UTC')} · #{event['id']}{test}"
    )


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def build(destination: Destination, event: Mapping[str, Any], *, key: str) -> Request:
    """The request that delivers ``event`` to ``destination``; ``key`` is the
    ``X-Scalp-Delivery`` value (the signal id, or ``test-<n>``)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Scalp-Delivery": key,
    }
    hidden: tuple[str, ...] = ()
    if destination.kind == Destination.Kind.TELEGRAM:
        url = f"{destination.url.rstrip('/')}/bot{destination.secret}/sendMessage"
        body = _dumps({"chat_id": destination.chat_id, "text": message_text(event)})
        hidden = (destination.secret,)
    elif destination.kind == Destination.Kind.DISCORD:
        url = destination.url
        body = _dumps({"content": message_text(event)})
        hidden = (destination.url.rstrip("/").rpartition("/")[2],)
    else:
        url = destination.url
        if destination.template:
            body = render_template(destination.template, event).encode()
        else:
            body = _dumps(dict(event))
        if destination.secret:
            headers["X-Scalp-Signature"] = signature(destination.secret, body)
    return Request(url=url, body=body, headers=headers, hidden=tuple(h for h in hidden if h))


def _first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    line = text.splitlines()[0] if text else ""
    line = "".join(ch if ch.isprintable() else " " for ch in line).strip()
    return line[:160] + ("…" if len(line) > 160 else "")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) < 7:
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _scrub(text: str, request: Request) -> str:
    for secret in request.hidden:
        text = text.replace(secret, "••••")
    return text


def _answer(status: int, head: bytes, headers: httpx.Headers) -> tuple[bool, bool, str]:
    """(ok, retry, error sentence) for an HTTP answer."""
    if 200 <= status < 300:
        return True, False, ""
    line = _first_line(head)
    said = f": {line}" if line else "."
    if 300 <= status < 400:
        where = headers.get("location", "")
        to = f" to {where[:200]}" if where else ""
        return (
            False,
            False,
            f"The receiver answered {status} (a redirect{to}); redirects are not followed, "
            "so give the final URL.",
        )
    if status in RETRY_STATUSES or status >= 500:
        return False, True, f"The receiver answered {status}{said}"
    return False, False, f"The receiver answered {status}{said}"


async def _post(client: httpx.AsyncClient, request: Request) -> tuple[int, bytes, httpx.Headers]:
    async with client.stream(
        "POST", request.url, content=request.body, headers=request.headers
    ) as response:
        head = b""
        async for chunk in response.aiter_raw():
            head += chunk
            if len(head) >= MAX_BODY_READ:
                break
        return response.status_code, head[:MAX_BODY_READ], response.headers


async def send(
    client: httpx.AsyncClient,
    request: Request,
    *,
    timeout: float = TIMEOUT_SECONDS,  # noqa: ASYNC109 -- one budget for the whole try
) -> Outcome:
    """One try; never raises for anything the network or the receiver does."""
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    try:
        async with asyncio.timeout(timeout):
            status, head, headers = await _post(client, request)
    except TimeoutError:
        return Outcome(False, True, None, took(), f"No answer within {timeout:g} s.")
    except httpx.ConnectError as err:
        reason = _scrub(str(err) or type(err).__name__, request)
        return Outcome(False, True, None, took(), f"Could not connect: {reason[:200]}")
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as err:
        reason = _scrub(str(err) or type(err).__name__, request)
        return Outcome(
            False, True, None, took(), f"The connection broke before an answer: {reason[:200]}"
        )
    except httpx.HTTPError as err:
        reason = _scrub(str(err) or type(err).__name__, request)
        return Outcome(False, True, None, took(), f"The request failed: {reason[:200]}")
    ok, retry, error = _answer(status, head, headers)
    return Outcome(
        ok,
        retry,
        status,
        took(),
        _scrub(error, request),
        _retry_after(headers.get("retry-after")) if retry else None,
    )


def client() -> httpx.AsyncClient:
    """The sender's connection pool: no redirects, timeouts enforced by :func:`send`."""
    return httpx.AsyncClient(
        follow_redirects=False,
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
    )

"""Every token of the app in one place: the feed token (programs on `/ws/signals/` and the
REST API) and the engine token (the worker's bridge, `/ws/engine/`).

Both are stored in the settings row (``engine.models.AppSettings``, made by its
``new_token``), read from a socket's scope or a request here, compared in constant time,
shown and rotated on the Settings page and by ``manage.py feedtoken [--rotate]``.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from engine.models import new_token
from engine.services import settings_get

if TYPE_CHECKING:
    from django.http import HttpRequest


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the stored one."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def token_from_scope(scope: dict) -> str | None:
    """``Authorization: Bearer <token>``, else ``?token=`` (for clients that can't set headers)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [None])[0]


def token_from_request(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.GET.get("token")


def feed_token() -> str:
    return settings_get().feed_token


def engine_token() -> str:
    return settings_get().engine_token


def feed_token_valid(token: str | None) -> bool:
    return token_matches(token, feed_token())


def engine_token_valid(token: str | None) -> bool:
    return token_matches(token, engine_token())


def feed_token_rotate() -> str:
    app_settings = settings_get()
    app_settings.feed_token = new_token()
    app_settings.save(update_fields=["feed_token", "updated_at"])
    return app_settings.feed_token

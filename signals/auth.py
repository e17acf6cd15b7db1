"""Token authentication for program clients (WebSocket and REST)."""

from __future__ import annotations

from urllib.parse import parse_qs

from engine.services import settings_get, token_matches


def token_from_scope(scope: dict) -> str | None:
    """``Authorization: Bearer <token>``, else ``?token=`` (for clients that can't set headers)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [None])[0]


def token_from_request(request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.GET.get("token")


def feed_token_valid(token: str | None) -> bool:
    return token_matches(token, settings_get().feed_token)


def engine_token_valid(token: str | None) -> bool:
    return token_matches(token, settings_get().engine_token)

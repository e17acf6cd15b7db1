"""Helpers for delivery tests: stored signals and socket clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from channels.testing import WebsocketCommunicator

from engine.services import settings_get
from signals.services import signal_record

T0 = datetime(2025, 12, 16, 14, 30, tzinfo=UTC)


def make_signal(n: int, *, symbol: str = "AAPL", rule_id: int = 1, price: float = 100.0):
    return signal_record(
        time=T0 + timedelta(seconds=5 * n),
        symbol=symbol,
        price=price + n / 100,
        rule_id=rule_id,
        rule_name="MA Momentum",
        bar_seconds=5,
        values={"PRICE": price + n / 100, "MA5": price},
    )


def feed_token() -> str:
    return settings_get().feed_token


def engine_token() -> str:
    return settings_get().engine_token


def communicator(path: str, *, token: str | None = None, headers=None) -> WebsocketCommunicator:
    # Not at the top: importing scalpsite.asgi builds the app and patches Daphne's request class.
    from scalpsite.asgi import application

    all_headers = list(headers or [])
    if token is not None:
        all_headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(application, path, headers=all_headers)

"""The Settings page's connection test: connect read-only, read versions and accounts."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from engine.feeds.ib.connection import IBConnection
from engine.feeds.ib.errors import ConnectFailure, format_seconds


async def test_connection(
    host: str,
    port: int,
    client_id: int,
    timeout: float = 5,  # noqa: ASYNC109
) -> tuple[bool, str]:
    """Connect read-only, read the server version and accounts, disconnect; returns
    (ok, a sentence for the Settings page)."""
    connection = IBConnection(host=host, port=port, client_id=client_id, connect_timeout=timeout)
    try:
        client = await asyncio.wait_for(connection.connect(), timeout + 1)
    except ConnectFailure as failure:
        return False, failure.message
    except TimeoutError:
        connection.disconnect()
        return False, (
            f"TWS / IB Gateway at {host}:{port} did not answer within {format_seconds(timeout)}."
        )
    try:
        version = client.server_version()
        accounts = client.managed_accounts()
        when: datetime | None = None
        with contextlib.suppress(Exception):
            when = await asyncio.wait_for(client.current_time(), timeout)
    finally:
        connection.disconnect()
    kind = ""
    if accounts:
        paper = all(a.startswith("D") for a in accounts)
        kind = " (paper trading)" if paper else " (LIVE trading)"
    clock = f", server time {when:%H:%M:%S} UTC" if when else ""
    return True, (
        f"Connected to TWS / IB Gateway at {host}:{port}: API version {version}, "
        f"account {', '.join(accounts) or 'unknown'}{kind}{clock}."
    )


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test

"""`/ws/ui/` takes a page's socket only from the app's own origin: scheme, host and port."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from tests.signals.helpers import communicator


def session_cookie() -> str:
    user, _ = get_user_model().objects.get_or_create(username="origin")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def handshake(url: str, origin: str | None, cookie: str) -> int:
    """The HTTP status of a real WebSocket handshake (101 when the socket opened)."""

    async def attempt() -> int:
        headers = {"Cookie": cookie}
        if origin is not None:
            headers["Origin"] = origin
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=30):
                return 101
        except websockets.InvalidStatus as err:
            return err.response.status_code

    return asyncio.run(attempt())


def test_real_daphne_accepts_only_its_own_origin(live_daphne):
    cookie = session_cookie()
    port = live_daphne.rsplit(":", 1)[1]
    url = f"ws://127.0.0.1:{port}/ws/ui/"
    assert handshake(url, live_daphne, cookie) == 101
    assert handshake(url, None, cookie) == 403
    for origin in (
        "http://localhost:3000",  # another local app: same host name, other port
        "http://127.0.0.1:3000",
        f"https://127.0.0.1:{port}",  # same host and port, other scheme
        "http://127.0.0.1",
        "http://evil.example",
        "null",
    ):
        assert handshake(url, origin, cookie) == 403, origin
    # The other loopback name is its own origin when the page was loaded through it.
    assert handshake(f"ws://localhost:{port}/ws/ui/", f"http://localhost:{port}", cookie) == 101
    assert handshake(f"ws://localhost:{port}/ws/ui/", live_daphne, cookie) == 403


async def connects(*, origin: str | None, host: str | None, scheme: str | None = None) -> bool:
    cookie = await sync_to_async(session_cookie)()
    headers = [(b"cookie", cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if host is not None:
        headers.append((b"host", host.encode()))
    comm = communicator("/ws/ui/", headers=headers)
    if scheme is not None:
        comm.scope["scheme"] = scheme
    connected, _ = await comm.connect()
    await comm.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "host", "scheme", "accepted"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", None, True),
        ("http://LOCALHOST:8000", "localhost:8000", None, True),
        ("http://localhost:3000", "localhost:8000", None, False),
        ("http://localhost", "localhost:80", None, True),  # default ports are the same port
        ("http://localhost:80", "localhost", None, True),
        ("https://localhost", "localhost:443", "wss", True),
        ("http://localhost:443", "localhost:443", "wss", False),
        ("http://[::1]:8000", "[::1]:8000", None, True),
        ("http://[::1]:8001", "[::1]:8000", None, False),
        ("http://evil.example:8000", "evil.example:8000", None, False),  # host not allowed
        ("http://127.0.0.1:8000", None, None, False),  # no Host header to compare with
        ("http://127.0.0.1:99999", "127.0.0.1:99999", None, False),
        ("http://127.0.0.1:8000/path", "127.0.0.1:8000", None, False),
        ("http://user@127.0.0.1:8000", "127.0.0.1:8000", None, False),
        ("", "127.0.0.1:8000", None, False),
        (None, "127.0.0.1:8000", None, False),
    ],
)
async def test_origin_must_be_the_request_own_origin(origin, host, scheme, accepted):
    assert await connects(origin=origin, host=host, scheme=scheme) is accepted


@pytest.mark.django_db(transaction=True)
async def test_trusted_origins_are_accepted_exactly(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://scalp.example.com"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "scalp.example.com"]
    # A TLS proxy in front: the page's origin is https, Daphne sees a plain ws request.
    assert await connects(origin="https://scalp.example.com", host="scalp.example.com")
    assert not await connects(origin="https://scalp.example.com:8443", host="scalp.example.com")
    assert not await connects(origin="http://scalp.example.com:3000", host="scalp.example.com")

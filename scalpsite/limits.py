"""Request body limits, enforced before a body is read: in Daphne's HTTP parser and in ASGI.

Twisted's ``http.Request`` stores a whole request body (in a temporary file past 100 KB, in
memory for a chunked one) before Daphne starts the application, and Daphne then queues all
of it to the application in memory. So a 150 MB POST used to be read, stored and queued in
full before Django could answer 403. :func:`install` makes Daphne's request refuse a body by
its ``Content-Length`` as soon as the headers are in, and cap a chunked body while it
streams; :class:`BodyLimitMiddleware` applies the same limits to the ASGI application, for
any other server.
"""

from __future__ import annotations

import logging
import sys
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.http import parse_cookie

from rules.forms.preview import MAX_UPLOAD_BYTES

logger = logging.getLogger(__name__)

KB = 1024
MB = 1024 * KB


class Limit(NamedTuple):
    size: int  # bytes of request body accepted
    sentence: str  # the 413 answer


# The rule builder (the preview CSV, also sent along when the rule is saved) and the Backtest
# page upload a file; their other fields and the multipart framing fit in the extra 512 KB.
UPLOAD = Limit(
    MAX_UPLOAD_BYTES + 512 * KB,
    f"The upload is over {MAX_UPLOAD_BYTES // MB} MB: choose a CSV file of at most "
    f"{MAX_UPLOAD_BYTES // MB} MB.",
)
UPLOAD_PREFIXES = ("/rules/", "/backtest/")
DEFAULT = Limit(1 * MB, "The request is over 1 MB, more than any form of this app sends.")
# Without a session only the login form can be posted.
LOGIN = Limit(64 * KB, "The request is over 64 KB, more than the login form sends: log in first.")
LOGIN_PATHS = ("/accounts/login/", "/admin/login/")

RESPONSE_HEADERS = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Connection: close\r\n"
)


def limit_for(path: str, *, has_session: bool) -> Limit:
    if not has_session or path in LOGIN_PATHS:
        return LOGIN
    if path.startswith(UPLOAD_PREFIXES):
        return UPLOAD
    return DEFAULT


def request_path(target: bytes) -> str:
    """The decoded path of an HTTP request target (origin or absolute form)."""
    text = target.decode("latin-1").split("?", 1)[0]
    if not text.startswith("/"):
        text = urlsplit(text).path or "/"
    return unquote(text)


def response_413(limit: Limit) -> bytes:
    body = limit.sentence.encode()
    return (
        b"HTTP/1.1 413 Content Too Large\r\n"
        + RESPONSE_HEADERS
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def parse_length(values: list[bytes] | None) -> int | None:
    """The Content-Length, or None when absent; -1 when it is not one whole number (the
    server or Django answers that)."""
    if not values:
        return None
    text = values[0].strip()
    if len(values) > 1 or not (text.isascii() and text.isdigit()) or len(text) > 18:
        return -1
    return int(text)


# Daphne (Twisted)

# After a refusal the connection reads and drops what the client still sends, so the client
# sees the 413 instead of a reset, but for no more than this long or this much.
LINGER_SECONDS = 5.0
LINGER_BYTES = 4 * MB


def install() -> None:
    """Use the limited request class in Daphne's HTTP factory. Does nothing outside Daphne
    (importing Twisted's web module would pick a reactor before Daphne installs its own)."""
    module = sys.modules.get("daphne.http_protocol")
    if module is None or getattr(module.WebRequest, "limits_body", False):  # type: ignore[attr-defined]  # Daphne's, at run time
        return
    module.WebRequest = _limited_request(module.WebRequest)  # type: ignore[attr-defined]  # as above


def _limited_request(base: type) -> type:
    class LimitedRequest(base):
        """Daphne's request, refusing a body over the path's :class:`Limit` before storing it."""

        limits_body = True
        refused = False
        body_limit = DEFAULT
        body_path = "/"
        body_seen = 0

        def gotLength(self, length):
            # The headers (and cookies) are in; nothing of the body has been stored yet.
            cookies = self.received_cookies
            self.body_path = request_path(getattr(self.channel, "_path", b"/"))
            self.body_limit = limit_for(
                self.body_path, has_session=settings.SESSION_COOKIE_NAME.encode() in cookies
            )
            if length is not None and length > self.body_limit.size:
                # No "100 Continue" after the answer: the client need not send the body.
                self.requestHeaders.removeHeader(b"Expect")
                self.refuse(f"Content-Length {length}")
                length = 0
            super().gotLength(length)

        def handleContentChunk(self, data):
            if self.refused:
                return
            self.body_seen += len(data)
            if self.body_seen > self.body_limit.size:
                self.refuse("a longer body")
                return
            super().handleContentChunk(data)

        def requestReceived(self, command, path, version):
            if not self.refused:
                super().requestReceived(command, path, version)

        def refuse(self, what: str) -> None:
            self.refused = True
            channel, transport = self.channel, self.channel.transport
            logger.info(
                "413 for %s to %s (limit %d bytes)", what, self.body_path, self.body_limit.size
            )
            transport.write(response_413(self.body_limit))
            if hasattr(transport, "loseWriteConnection"):
                transport.loseWriteConnection()
            dropped = 0

            def discard(data: bytes) -> None:
                nonlocal dropped
                dropped += len(data)
                if dropped > LINGER_BYTES:
                    transport.abortConnection()

            channel.dataReceived = discard
            call = channel.callLater(LINGER_SECONDS, transport.abortConnection)
            lost = channel.connectionLost

            def connection_lost(reason) -> None:
                if call.active():
                    call.cancel()
                lost(reason)

            channel.connectionLost = connection_lost

    return LimitedRequest


# ASGI


class BodyLimitMiddleware:
    """The same limits for any ASGI server: a 413 by ``Content-Length`` before the app runs,
    and a 413 when a streamed body grows past the limit (the app sees a disconnect)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), []).append(value)
        cookies = parse_cookie(b";".join(headers.get(b"cookie", [])).decode("latin-1"))
        limit = limit_for(scope["path"], has_session=settings.SESSION_COOKIE_NAME in cookies)
        length = parse_length(headers.get(b"content-length"))
        if length is not None and length > limit.size:
            return await self.refuse(send, limit)
        seen, over, started = 0, False, False

        async def limited_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request" and not over:
                seen += len(message.get("body", b""))
                if seen > limit.size:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.application(scope, limited_receive, tracked_send)
        if over and not started:
            await self.refuse(send, limit)

    @staticmethod
    async def refuse(send, limit: Limit) -> None:
        body = limit.sentence.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

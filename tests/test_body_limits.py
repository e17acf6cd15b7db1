"""Request bodies over the limit are refused before they are read: by a real Daphne from the
headers (or while a chunked body streams), and by the ASGI guard under any other server."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest
from channels.testing import ApplicationCommunicator, HttpCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from scalpsite import limits
from tests.conftest import Daphne, free_port

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
DECLARED = 157_286_400  # 150 MB


@pytest.fixture
def daphne(tmp_path):
    log = tmp_path / "daphne.log"
    server = Daphne(free_port(), log.open("w"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.log.close()
    assert "Traceback" not in log.read_text()


def session_cookie() -> str:
    user = get_user_model().objects.create_user("uploader", password="pw-123456789")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(60)  # generous: the machine is shared; a refusal comes at once
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def head(path: str, cookie: str | None, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *extra]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_declared_150_mb_body_is_refused_from_the_headers(daphne):
    cookie = session_cookie()
    cases = [
        # Logged in, the upload form: refused by Content-Length, no "100 Continue" first.
        ("/rules/builder/preview/", cookie, ["Expect: 100-continue"], "over 5 MB"),
        ("/rules/builder/preview/", cookie, [], "over 5 MB"),
        # Anonymous: only a login form's worth is read, whatever the path.
        ("/rules/builder/preview/", None, [], "log in first"),
        ("/accounts/login/", None, [], "log in first"),
        ("/watchlists/", cookie, [], "over 1 MB"),
    ]
    for path, session, extra, sentence in cases:
        with socket.create_connection(("127.0.0.1", daphne.port), timeout=60) as sock:
            sock.sendall(
                head(path, session, f"Content-Length: {DECLARED}",
                     "Content-Type: application/octet-stream", *extra)
            )  # fmt: skip
            if not extra:
                sock.sendall(b"x" * 4096)  # a few KB of the 150 MB, then wait for the answer
            response = read_response(sock)
        status, _, body = response.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 413 "), (path, response[:200])
        assert b"Connection: close" in status
        assert sentence in body.decode(), (path, body)


def test_a_chunked_body_past_the_cap_is_cut_and_never_held(daphne):
    cookie = session_cookie()
    before = peak_rss_kb(daphne.proc.pid)
    sent, response = 0, []
    sock = socket.create_connection(("127.0.0.1", daphne.port), timeout=60)
    reader = threading.Thread(target=lambda: response.append(read_response(sock)))
    try:
        sock.sendall(
            head("/rules/builder/preview/", cookie, "Transfer-Encoding: chunked",
                 "Content-Type: application/octet-stream")
        )  # fmt: skip
        reader.start()
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"y" * 64 * 1024)
        try:
            while sent < 100 * MB:  # the client never stops by itself before 100 MB
                sock.sendall(chunk)
                sent += 64 * 1024
            sock.sendall(b"0\r\n\r\n")  # the whole body, if the server took it
        except OSError:  # reset or broken pipe: the server cut the upload
            pass
        reader.join(180)
    finally:
        sock.close()
    grown_mb = (peak_rss_kb(daphne.proc.pid) - before) / 1024
    assert sent < 40 * MB, f"the server took {sent / MB:.0f} MB"
    assert response and response[0].startswith(b"HTTP/1.1 413 "), response[:1]
    assert b"over 5 MB" in response[0]
    assert grown_mb < 30, f"Daphne grew by {grown_mb:.0f} MB"


def test_bodies_under_the_limit_still_reach_the_app(daphne):
    cookie = session_cookie()
    body = b"a" * (2 * MB)  # over the general 1 MB, under the upload limit
    with socket.create_connection(("127.0.0.1", daphne.port), timeout=60) as sock:
        sock.sendall(
            head("/rules/builder/preview/", cookie, f"Content-Length: {len(body)}",
                 "Content-Type: application/octet-stream", "Connection: close")
            + body
        )  # fmt: skip
        response = read_response(sock)
    # Django answers it (the CSRF check refuses this hand-made POST): the body was read.
    assert response.startswith(b"HTTP/1.1 403 "), response[:200]


# The ASGI guard (any server)


async def test_asgi_guard_refuses_by_content_length_before_the_app():
    # Not at the top: importing scalpsite.asgi builds the app and patches Daphne's request class.
    from scalpsite.asgi import application

    comm = HttpCommunicator(
        application, "POST", "/accounts/login/", body=b"x" * 100,
        headers=[(b"host", b"127.0.0.1"), (b"content-length", str(DECLARED).encode())],
    )  # fmt: skip
    response = await comm.get_response(timeout=30)
    assert response["status"] == 413
    assert response["body"].decode() == limits.LOGIN.sentence


async def test_asgi_guard_cuts_a_streamed_body_past_the_limit():
    # Not at the top: importing scalpsite.asgi builds the app and patches Daphne's request class.
    from scalpsite.asgi import application

    scope = {
        "type": "http", "method": "POST", "path": "/accounts/login/", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")], "scheme": "http", "http_version": "1.1",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    comm = ApplicationCommunicator(application, scope)
    part = b"z" * 16 * 1024
    for _ in range(limits.LOGIN.size // len(part) + 2):
        await comm.send_input({"type": "http.request", "body": part, "more_body": True})
    start = await comm.receive_output(timeout=30)
    body = await comm.receive_output(timeout=30)
    assert start["status"] == 413
    assert body["body"].decode() == limits.LOGIN.sentence

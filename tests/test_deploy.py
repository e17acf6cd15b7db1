"""The deploy mode of docs/deploy.md: `check --deploy` clean with the documented environment,
the local default untouched, and on a real Daphne: tokens over TLS only, HTTP redirected to
HTTPS, Secure cookies, the dashboard socket from the proxy's https:// origin."""

from __future__ import annotations

import base64
import os
import re
import secrets
import socket
import subprocess
import sys
import urllib.request

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client as DjangoClient

from engine.services import settings_get
from tests.conftest import ROOT, free_port, subprocess_env, wait_for_port
from tests.signals.helpers import engine_token

HOST = "scalp.example.com"


def documented_env() -> dict[str, str]:
    """The ``sh`` block under "Environment" in docs/deploy.md, its ``<…>`` filled at random."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"## Environment.*?```sh\n(.*?)```", text, re.S)
    assert block, "docs/deploy.md lost its environment block"
    env = {}
    for line in block.group(1).splitlines():
        name, _, value = line.partition("=")
        env[name] = re.sub(r"<[^>]+>", lambda _: secrets.token_urlsafe(50), value)
    assert env["SCALP_BEHIND_TLS_PROXY"] == "1"
    return env


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCALP_")}
    clean["SCALP_VAR_DIR"] = os.environ["SCALP_VAR_DIR"]
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_is_clean_with_the_documented_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **documented_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr + result.stdout
    # Only the two HSTS opt-ins are silenced; turned on, nothing is.
    assert "(2 silenced)" in result.stdout, result.stdout
    both = {"SCALP_HSTS_INCLUDE_SUBDOMAINS": "1", "SCALP_HSTS_PRELOAD": "1"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", **documented_env(), **both)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_check_deploy_still_runs_in_the_local_default():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(4 silenced)" in result.stdout  # the loopback HTTPS findings, docs/security.md


def test_the_deploy_mode_changes_nothing_locally():
    assert not settings.BEHIND_TLS_PROXY
    assert settings.SECURE_PROXY_SSL_HEADER is None
    assert not (settings.SECURE_SSL_REDIRECT or settings.SESSION_COOKIE_SECURE)
    assert not settings.CSRF_COOKIE_SECURE and settings.SECURE_HSTS_SECONDS == 0
    assert settings.CSRF_TRUSTED_ORIGINS == []


# --- a real Daphne in the deploy mode ------------------------------------------------------


def handshake(port: int, path: str, headers: dict[str, str]) -> int:
    """The HTTP status of a raw WebSocket handshake (101: the socket opened)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in {"Host": HOST, **headers}.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = sock.makefile("rb").readline().decode()
    return int(status.split()[1])


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http(port: int, path: str, headers: dict[str, str]):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": HOST, **headers}
    )
    try:
        return urllib.request.build_opener(NoRedirect).open(request, timeout=30)
    except urllib.error.HTTPError as err:
        return err


@pytest.fixture
def deploy_daphne(transactional_db, tmp_path):
    """A real Daphne with the documented environment, on this run's database."""
    env = documented_env()
    for name in ("SCALP_DATABASE_URL", "SCALP_REDIS_URL"):
        env.pop(name)  # this run's database (subprocess_env) and the in-process layer
    # Sessions made here must be valid there: the key is shared, as between machines.
    env["SCALP_SECRET_KEY"] = settings.SECRET_KEY
    port = free_port()
    log = (tmp_path / "daphne.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "scalpsite.asgi:application"],
        cwd=ROOT, env=subprocess_env(**env), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


TLS = {"X-Forwarded-Proto": "https"}


@pytest.mark.django_db(transaction=True)
def test_behind_the_proxy_tokens_travel_over_tls_only(deploy_daphne):
    port, token = deploy_daphne, settings_get().feed_token
    bearer = {"Authorization": f"Bearer {token}"}
    assert handshake(port, "/ws/signals/", {**bearer, **TLS}) == 101
    assert handshake(port, f"/ws/signals/?token={token}", TLS) == 101
    # The same token in clear: refused before the consumer sees it.
    assert handshake(port, "/ws/signals/", bearer) == 403
    assert handshake(port, f"/ws/signals/?token={token}", {}) == 403
    assert handshake(port, "/ws/signals/", {**bearer, "X-Forwarded-Proto": "http"}) == 403
    # A wrong token over TLS is still a wrong token.
    assert handshake(port, "/ws/signals/", {"Authorization": "Bearer nope", **TLS}) == 403
    # The worker's bridge comes over loopback from its own machine.
    bridge = {"Authorization": f"Bearer {engine_token()}", "Host": "127.0.0.1"}
    assert handshake(port, "/ws/engine/", bridge) == 101
    # REST over plain HTTP: a redirect to https://, no data.
    plain = http(port, f"/api/signals/?token={token}", {})
    assert plain.status == 301
    assert plain.headers["Location"] == f"https://{HOST}/api/signals/?token={token}"
    assert b"signals" not in plain.read()
    secure = http(port, "/api/signals/", {**bearer, **TLS})
    assert (
        secure.status == 200 and "max-age=31536000" in secure.headers["Strict-Transport-Security"]
    )


@pytest.mark.django_db(transaction=True)
def test_behind_the_proxy_the_dashboard_works_from_its_https_origin(deploy_daphne):
    port = deploy_daphne
    login = http(port, "/accounts/login/", TLS)
    assert login.status == 200
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("csrftoken=") and "Secure" in cookie, cookie
    user = get_user_model().objects.create_user("deploy", password="deploy-pass-123")
    client = DjangoClient()
    client.force_login(user)
    session = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    page = {"Cookie": session, **TLS}
    assert http(port, "/", page).status == 200
    # The page socket from the address the proxy serves (SCALP_CSRF_TRUSTED_ORIGINS).
    assert handshake(port, "/ws/ui/", {**page, "Origin": f"https://{HOST}"}) == 101
    assert handshake(port, "/ws/ui/", {**page, "Origin": "https://evil.example"}) == 403

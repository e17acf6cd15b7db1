"""The Settings page: IB connection (with a live test), feed, bar size, the consumer token."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from concurrent.futures import ThreadPoolExecutor

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from engine.panel.forms import IB_PORTS, ConnectionForm, SettingsForm
from engine.services import (
    SETTINGS_LOCK_ACTION,
    engine_assert_stopped,
    engine_state_get,
    settings_get,
    settings_update,
)
from engine.tokens import feed_token_rotate
from scalpsite.ui import is_htmx

logger = logging.getLogger(__name__)

PAGE = "settings/settings.html"
# Short: a person is waiting on the button. A refused port answers at once anyway.
TEST_TIMEOUT = 3.0
ENV_OVERRIDES = (
    ("ib_host", "SCALP_IB_HOST"),
    ("ib_port", "SCALP_IB_PORT"),
    ("ib_client_id", "SCALP_IB_CLIENT_ID"),
)
ROTATED = (
    "New token issued. Programs must use it from now on: the old token is refused at "
    "connect (connections already open stay open until they drop)."
)


def _lock_message() -> str:
    try:
        engine_assert_stopped(action=SETTINGS_LOCK_ACTION)
    except ValidationError as err:
        return " ".join(err.messages)
    return ""


def _initial(app_settings) -> dict:
    return {name: getattr(app_settings, name) for name in SettingsForm.base_fields}


def client_commands(request, token: str) -> dict[str, str]:
    """Ready-to-paste commands for a program on this machine, pointing at this server."""
    host = request.get_host()
    secure = request.is_secure()
    ws_url = f"{'wss' if secure else 'ws'}://{host}/ws/signals/"
    api_url = f"{'https' if secure else 'http'}://{host}{reverse('signals:api_signals')}?since=0"
    quoted = shlex.quote(token)
    return {
        "ws_url": ws_url,
        "api_url": api_url,
        "consumer": (
            f"python examples/signal_consumer.py --url {shlex.quote(ws_url)} --token {quoted}"
        ),
        "curl": f"curl -H 'Authorization: Bearer {token}' {shlex.quote(api_url)}",
    }


def _context(request, *, form=None, test_form=None, test_result=None, token_notice="") -> dict:
    app_settings = settings_get()
    if form is None:
        form = SettingsForm(initial=_initial(app_settings))
    env = {name: f"{var}={os.environ[var]}" for name, var in ENV_OVERRIDES if os.environ.get(var)}
    return {
        "form": form,
        "test_form": test_form,
        "test_result": test_result,
        "lock_message": _lock_message(),
        "engine": engine_state_get(),
        "settings": app_settings,
        "env_overrides": env,
        "ib_ports": IB_PORTS,
        "token": app_settings.feed_token,
        "commands": client_commands(request, app_settings.feed_token),
        "token_notice": token_notice,
    }


@require_http_methods(["GET", "POST"])
def settings_page(request):
    """GET shows the settings; POST saves connection, feed and bar size (next engine start)."""
    if request.method == "GET":
        return render(request, PAGE, _context(request))
    form = SettingsForm(request.POST)
    if form.is_valid():
        try:
            settings_update(**form.cleaned_data)
        except ValidationError as err:
            if hasattr(err, "error_dict"):
                for name, msgs in err.message_dict.items():
                    form.add_error(name if name in form.fields else None, " ".join(msgs))
            else:
                form.add_error(None, " ".join(err.messages))
        else:
            messages.success(request, "Settings saved: they apply the next time the engine starts.")
            return redirect("engine:settings")
    return render(request, PAGE, _context(request, form=form), status=400)


def run_connection_test(host: str, port: int, client_id: int) -> tuple[bool, str]:
    """Run the IB feed's async connection test on a private event loop and wait for it.

    A fresh thread keeps the IB client off whatever loop serves this request (Daphne's)."""
    from engine.feeds.ib import test_connection  # the IB library loads only when asked

    def run() -> tuple[bool, str]:
        return asyncio.run(test_connection(host, port, client_id, timeout=TEST_TIMEOUT))

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ib-test") as pool:
            return pool.submit(run).result(timeout=TEST_TIMEOUT + 5)
    except Exception as err:  # a user-facing test: any failure becomes a sentence
        logger.exception("IB connection test to %s:%s failed", host, port)
        return False, f"The connection test to {host}:{port} failed: {err or type(err).__name__}."


@require_POST
def settings_test_connection(request):
    """Try the host / port / client id as typed (saved or not) and report in words."""
    test_form = ConnectionForm(request.POST)
    result = None
    if test_form.is_valid():
        data = test_form.cleaned_data
        ok, sentence = run_connection_test(data["ib_host"], data["ib_port"], data["ib_client_id"])
        result = {"ok": ok, "message": sentence}
    if is_htmx(request):
        return render(
            request,
            f"{PAGE}#ib-test",
            {"test_form": test_form, "test_result": result, "oob_slots": True},
        )
    # Without JavaScript: the whole page, with what was typed kept in the form.
    form = SettingsForm(request.POST)
    form.is_valid()
    context = _context(request, form=form, test_form=test_form, test_result=result)
    return render(request, PAGE, context, status=200 if result else 400)


@require_http_methods(["GET", "POST"])
def settings_rotate_token(request):
    """GET: a confirmation page (works without JavaScript). POST: issue a new feed token."""
    if request.method == "GET":
        return render(request, "settings/rotate.html", {})
    feed_token_rotate()
    if is_htmx(request):
        return render(request, f"{PAGE}#feed-token", _context(request, token_notice=ROTATED))
    messages.success(request, ROTATED)
    return redirect(f"{reverse('engine:settings')}#feed-token")

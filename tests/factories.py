"""Small ``make_*`` helpers for tests (real objects, created through the services)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from engine.services import engine_state_get
from rules.services import rule_create
from watchlists.services import watchlist_create

DEFAULT_DEFINITION = {
    "logic": "AND",
    "conditions": [
        {"left": "PRICE", "op": ">", "right": "MA5"},
        {"left": "MA5", "op": ">", "right": "MA10"},
    ],
    "cooldown_sec": 60,
    "trigger": "level",
}


def make_rule(name: str = "My rule", definition: dict | None = None):
    return rule_create(name=name, definition=definition or dict(DEFAULT_DEFINITION))


def make_watchlist(name: str = "Tech", symbols=("AAPL", "MSFT"), activate: bool = False):
    return watchlist_create(name=name, symbols=symbols, activate=activate)


def make_running_engine(*, rule=None, rules=(), watchlist=None):
    """Mark the engine as live and holding ``rule`` (or ``rules``) / ``watchlist``, as the
    worker does."""
    state = engine_state_get()
    state.state = "running"
    state.heartbeat = timezone.now()
    state.run_rules = [r.pk for r in ([rule] if rule is not None else []) + list(rules)]
    state.run_watchlist = watchlist
    state.run_started = timezone.now()
    state.save()
    return state


def logged_in_client() -> Client:
    """A logged-in trader (pytest-django's ``client`` is anonymous)."""
    user = get_user_model().objects.create_user("trader", "", "s3cret-pass-123")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client

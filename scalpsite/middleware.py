"""Project middleware."""

from urllib.parse import parse_qs, urlencode, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host
from django.shortcuts import resolve_url

from scalpsite.ui import is_htmx


class HtmxLoginRedirectMiddleware:
    """An htmx request from a page whose session expired: send the whole page to the login
    form (``HX-Redirect``) instead of letting htmx swap the login page into a fragment."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not is_htmx(request) or response.status_code != 302:
            return response
        login = resolve_url(settings.LOGIN_URL)
        if urlsplit(response.url).path != login:
            return response
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = page.path + (f"?{page.query}" if page.query else "") if page.path else "/"
        redirect = HttpResponse(status=204)
        redirect["HX-Redirect"] = f"{login}?{urlencode({'next': back})}"
        return redirect


# Browser sockets: scheme, host and port of the page must be the app's own.

DEFAULT_PORTS = {"http": 80, "https": 443}
PAGE_SCHEME = {"ws": "http", "wss": "https"}

Origin = tuple[str, str, int]


def parse_origin(text: str) -> Origin | None:
    """``(scheme, host, port)`` of an Origin header, or None for anything but an origin."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if (
        parts.scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
        or text.endswith(("?", "#"))
    ):
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def request_origin(scope: dict) -> Origin | None:
    """The origin a page served by this request's Host would have; None if the Host header
    is missing, malformed or not in ``ALLOWED_HOSTS``."""
    scheme = PAGE_SCHEME.get(scope.get("scheme", "ws"))
    hosts = [value for name, value in scope.get("headers", []) if name == b"host"]
    if scheme is None or len(hosts) != 1:
        return None
    domain, port = split_domain_port(hosts[0].decode("latin1"))
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    if port and not (port.isascii() and port.isdigit() and 0 < int(port[:6]) < 65536):
        return None
    return scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]


class SameOriginValidator:
    """Admit a WebSocket only when its Origin is the request's own (scheme, host and port of
    the Host header it was sent to, the host in ``ALLOWED_HOSTS``) or one of
    ``CSRF_TRUSTED_ORIGINS`` (for a TLS proxy in front). Channels'
    ``AllowedHostsOriginValidator`` compares host names only, so any other local web app
    (``http://localhost:3000``) could open a page socket with the trader's session."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if self.allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    @staticmethod
    def allowed(scope: dict) -> bool:
        origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
        own = request_origin(scope)
        if len(origins) != 1 or own is None:
            return False
        origin = parse_origin(origins[0].decode("latin1"))
        if origin is None:
            return False
        trusted = {parse_origin(item) for item in settings.CSRF_TRUSTED_ORIGINS}
        return origin == own or origin in trusted


# Tokens over TLS only (SCALP_BEHIND_TLS_PROXY, docs/deploy.md).

BRIDGE_PATH = "/ws/engine/"  # the worker's bridge: loopback only, never through the proxy


def presents_token(scope: dict) -> bool:
    """The handshake carries a credential: an Authorization header or ``?token=``."""
    if any(name == b"authorization" for name, _ in scope.get("headers", [])):
        return True
    return "token" in parse_qs(scope.get("query_string", b"").decode("latin-1"))


def over_tls(scope: dict) -> bool:
    """The client reached us over TLS: the proxy says so with ``SECURE_PROXY_SSL_HEADER``
    (X-Forwarded-Proto: https), or the server itself speaks TLS (scheme ``wss``)."""
    if scope.get("scheme") == "wss":
        return True
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not header:
        return False
    name, value = header
    name = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
    sent = [v for n, v in scope.get("headers", []) if n == name]
    return len(sent) == 1 and sent[0].decode("latin-1").strip() == value


class TokensOverTlsOnly:
    """Behind a TLS proxy (``settings.BEHIND_TLS_PROXY``), refuse (HTTP 403) a WebSocket that
    presents a token without having come over TLS: a program pointed at ``ws://`` or straight
    at Daphne's port must not get a feed for a token it just sent in clear. HTTP needs no
    such check: ``SECURE_SSL_REDIRECT`` answers a plain request with a redirect, no data. The
    worker's bridge is exempt: it connects to its own machine's Daphne over loopback."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] == "websocket"
            and getattr(settings, "BEHIND_TLS_PROXY", False)
            and scope.get("path") != BRIDGE_PATH
            and presents_token(scope)
            and not over_tls(scope)
        ):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

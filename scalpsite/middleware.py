"""Project middleware."""

from urllib.parse import urlencode, urlsplit

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

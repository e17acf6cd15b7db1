"""WebSocket routes, with the checks that belong to each kind of socket (signals/routing.py)."""

from channels.routing import URLRouter

from scalpsite.middleware import TokensOverTlsOnly
from signals.routing import websocket_urlpatterns

# Behind a TLS proxy, a token sent over plain ws:// is refused before any route sees it.
websocket_application = TokensOverTlsOnly(URLRouter(websocket_urlpatterns))

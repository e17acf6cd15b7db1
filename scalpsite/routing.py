"""WebSocket routes, with the checks that belong to each kind of socket (signals/routing.py)."""

from channels.routing import URLRouter

from signals.routing import websocket_urlpatterns

websocket_application = URLRouter(websocket_urlpatterns)

"""WebSocket routes of every app, with the checks that belong to each kind of socket."""

from channels.routing import URLRouter

from engine.routing import websocket_urlpatterns as engine_routes
from signals.routing import websocket_urlpatterns as signals_routes

websocket_application = URLRouter([*engine_routes, *signals_routes])

"""WebSocket routes of every app, with the checks that belong to each kind of socket."""

from channels.routing import URLRouter

websocket_urlpatterns: list = []

websocket_application = URLRouter(websocket_urlpatterns)

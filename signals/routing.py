"""WebSocket routes: every socket of the app is the signals app's (a signal's way out)."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from scalpsite.middleware import SameOriginValidator
from signals.consumers import EngineBridgeConsumer, SignalFeedConsumer, UiConsumer

websocket_urlpatterns = [
    # The engine worker's bridge: the engine token (a different one from the feed token).
    path("ws/engine/", EngineBridgeConsumer.as_asgi()),
    # Programs authenticate with a token; browsers are kept out by the missing token.
    path("ws/signals/", SignalFeedConsumer.as_asgi()),
    # Pages: the login session, and only from our own origin.
    path("ws/ui/", SameOriginValidator(AuthMiddlewareStack(UiConsumer.as_asgi()))),
]

"""WebSocket routes of the signals app."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from scalpsite.middleware import SameOriginValidator
from signals.consumers import SignalFeedConsumer, UiConsumer

websocket_urlpatterns = [
    # Programs authenticate with a token; browsers are kept out by the missing token.
    path("ws/signals/", SignalFeedConsumer.as_asgi()),
    # Pages: the login session, and only from our own origin.
    path("ws/ui/", SameOriginValidator(AuthMiddlewareStack(UiConsumer.as_asgi()))),
]

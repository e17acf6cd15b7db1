"""WebSocket routes of the engine app."""

from django.urls import path

from engine.consumers import EngineBridgeConsumer

websocket_urlpatterns = [
    path("ws/engine/", EngineBridgeConsumer.as_asgi()),
]

"""ASGI entry point for Daphne: HTTP (Django + static files) and WebSocket routes."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scalpsite.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from scalpsite.routing import websocket_application  # noqa: E402

# Static files are served by Django itself (from the app and project static folders): this is
# a local single-user app, so there is no collectstatic step and no separate web server.
application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": websocket_application,
    }
)

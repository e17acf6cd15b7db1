"""ASGI entry point for Daphne: HTTP (Django + static files) and WebSocket routes."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scalpsite.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from scalpsite import limits  # noqa: E402
from scalpsite.routing import websocket_application  # noqa: E402

# Bodies over the limit are refused before they are read: in Daphne's parser (when Daphne
# serves this module) and, for any other server, at the ASGI level.
limits.install()

# Static files are served by Django itself (from the app and project static folders): this is
# a local single-user app, so there is no collectstatic step and no separate web server.
application = ProtocolTypeRouter(
    {
        "http": limits.BodyLimitMiddleware(ASGIStaticFilesHandler(django_asgi_app)),
        "websocket": websocket_application,
    }
)

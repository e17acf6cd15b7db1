"""ScalpSignal's Django project package: settings, ASGI application and URLs."""

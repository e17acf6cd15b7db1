"""Django settings: safe local defaults, every knob overridable by a ``SCALP_*`` variable."""

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SCALP_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """SCALP_SECRET_KEY, else a random key kept in var/ (0600) so sessions survive restarts."""
    if key := os.environ.get("SCALP_SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("SCALP_DEBUG")
ALLOWED_HOSTS = env_list("SCALP_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "template_partials",
    "tailwind",
    "theme",
    "rules",
    "watchlists",
    "signals",
    "engine",
    "alerts",
    "bars",
    "backtests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "scalpsite.middleware.HtmxLoginRedirectMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "scalpsite.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "engine:dashboard"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "scalpsite.asgi.application"
WSGI_APPLICATION = None


def _database() -> dict:
    url = os.environ.get("SCALP_DATABASE_URL")
    if url:
        parts = urlparse(url)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise ValueError(
                f"SCALP_DATABASE_URL must be a postgres:// URL (got scheme {parts.scheme!r}); "
                "leave it unset to use SQLite at SCALP_DB_PATH."
            )
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    db_path = Path(os.environ.get("SCALP_DB_PATH", VAR_DIR / "scalpsignal.sqlite3"))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": db_path,
        "OPTIONS": {
            # The engine writes while pages read: WAL lets readers run during a write,
            # IMMEDIATE takes the write lock up front so two writers queue instead of
            # failing with "database is locked", and the timeout is how long they queue.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # Tests use a real SQLite file too, so other processes (Daphne, the worker) share it.
        "TEST": {"NAME": os.environ.get("SCALP_TEST_DB_PATH", str(VAR_DIR / "test.sqlite3"))},
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("SCALP_REDIS_URL", "")
# Group membership must outlive the longest connection: an execution program or a trader's
# page stays connected for days (Channels' default of one day would silently drop them).
GROUP_EXPIRY = 10 * 365 * 86400
# channels_redis waits for a consumer's next message with a blocking pop of up to 5 s
# (``brpop_timeout``); redis-py 8 also aborts any read after 5 s by default, so an idle
# consumer died with TimeoutError and close code 1011 (channels_redis #422). Reads may take
# longer than the pop; a Redis that stops answering still fails them after 30 s.
REDIS_SOCKET_TIMEOUT = 30
REDIS_CONNECT_TIMEOUT = 5
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": REDIS_SOCKET_TIMEOUT,
                        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                    }
                ],
                "capacity": 1000,
                "expiry": 30,
                "group_expiry": GROUP_EXPIRY,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "scalpsite.layers.LocalChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 30, "group_expiry": GROUP_EXPIRY},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

TAILWIND_APP_NAME = "theme"

# Request bodies are refused by size before they are read (scalpsite/limits.py: 1 MB, the rule
# builder's CSV upload 5 MB, 64 KB without a session); Django's own check on form fields
# (files excluded) agrees with the general limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# Cookies: the app is served on loopback over plain HTTP, so Secure cookies would never be
# sent back. HttpOnly and SameSite=Lax still apply. See docs/security.md.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# `check --deploy` asks for HTTPS-only settings; the app serves plain HTTP on loopback, where
# they would break login. Reviewed in docs/security.md.
SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008", "security.W012", "security.W016"]

# Origins besides the request's own that may POST forms and open page sockets (e.g. the
# https:// address a TLS proxy serves the app at). Comma-separated, scheme included.
CSRF_TRUSTED_ORIGINS = env_list("SCALP_CSRF_TRUSTED_ORIGINS", "")

# Serving several machines or the internet: Daphne stays on 127.0.0.1 behind a reverse proxy
# that terminates TLS and sets X-Forwarded-Proto (docs/deploy.md). Then the HTTPS-only
# settings are on, `check --deploy` has nothing to silence but HSTS's two opt-ins, and a
# program socket presenting its token over plain ws:// is refused
# (scalpsite.middleware.TokensOverTlsOnly). Off by default: nothing above changes locally.
BEHIND_TLS_PROXY = env_bool("SCALP_BEHIND_TLS_PROXY")
if BEHIND_TLS_PROXY:
    # Trust the header only because Daphne listens on loopback and the proxy overwrites it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SCALP_HSTS_SECONDS") or 365 * 86400)
    # Subdomains and the browsers' preload list are the domain owner's choice, not the app's.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SCALP_HSTS_INCLUDE_SUBDOMAINS")
    SECURE_HSTS_PRELOAD = env_bool("SCALP_HSTS_PRELOAD")
    SILENCED_SYSTEM_CHECKS = [
        *(["security.W005"] if not SECURE_HSTS_INCLUDE_SUBDOMAINS else []),
        *(["security.W021"] if not SECURE_HSTS_PRELOAD else []),
    ]

# The engine marks itself offline when its heartbeat is older than this (DESIGN §4).
SCALP_HEARTBEAT_STALE_SECONDS = 10
SCALP_WEB_URL = os.environ.get("SCALP_WEB_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "engine": {"level": os.environ.get("SCALP_LOG_LEVEL", "INFO")},
        "scalpsite": {"level": os.environ.get("SCALP_LOG_LEVEL", "INFO")},
        "alerts": {"level": os.environ.get("SCALP_LOG_LEVEL", "INFO")},
    },
}

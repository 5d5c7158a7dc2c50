"""Settings of the Stayy service, read from the environment in this one place.

Every variable is documented in docs/configuration.md. Bad values raise
:class:`config.env.ConfigError`, which the entry points turn into a single
line naming the variable. Settings of the job runtime live in the ``STAYY``
namespace and are read through :data:`stayy.conf.stayy_settings`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url

from config.env import (
    ConfigError,
    env_admins,
    env_bool,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_origins,
    env_proxy_ssl_header,
    env_secret_key,
    env_sentry_dsn,
    env_str,
    env_token,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret_key("DJANGO_SECRET_KEY", required=not DEBUG)
if not SECRET_KEY:
    SECRET_KEY = "insecure-local-development-key-only-used-with-DJANGO_DEBUG-on"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# --- HTTPS and proxies ----------------------------------------------------------
# Secure cookies by default without debug; the rest depends on the proxy in
# front of gunicorn, so it is opt-in (docs/deployment.md, "HTTPS and proxies").
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Probes and scrapers call these on the host's address over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if SECURE_HSTS_PRELOAD and not (SECURE_HSTS_INCLUDE_SUBDOMAINS and SECURE_HSTS_SECONDS >= 31536000):
    raise ConfigError(
        "DJANGO_SECURE_HSTS_PRELOAD",
        "preload lists need DJANGO_SECURE_HSTS_SECONDS >= 31536000 and "
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS on",
    )
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")
USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", False)
CSRF_TRUSTED_ORIGINS = env_origins("DJANGO_CSRF_TRUSTED_ORIGINS")
# Proxies whose X-Forwarded-For entries are believed (the client address of the sign-in limits).
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXIES", 0, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "stayy",
    "users",
    # The demo third-party user service (manage.py demo_upstream); no models, no URLs.
    "upstream_demo",
]

MIDDLEWARE = [
    "stayy.runtime.middleware.RequestActivityMiddleware",
    "stayy.observability.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: turns a refused sign-in into the lockout answer (users.lockout).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# A run whose process wrote no heartbeat for this long may be closed as lost (JOB_RUN_STALE_AFTER).
_RUN_STALE_AFTER = env_float("JOB_RUN_STALE_AFTER", 15.0, minimum=3.0)

# --- Database ---------------------------------------------------------------
# Persistent connections, checked before reuse: each gunicorn thread and each
# job thread keeps one connection, so PostgreSQL needs
# workers x (threads + max(JOB_TICK_THREADS, running jobs) + 2) connections per host.
_DEFAULT_DATABASE_URL = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
_database_url = env_str("DATABASE_URL") or _DEFAULT_DATABASE_URL
try:
    _database = dj_database_url.parse(
        _database_url,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600, minimum=0),
        conn_health_checks=True,
    )
except (ValueError, KeyError) as exc:
    raise ConfigError("DATABASE_URL", f"cannot parse {_database_url!r} ({exc})") from None
if _database.get("ENGINE") not in (
    "django.db.backends.postgresql",
    "django.db.backends.sqlite3",
):
    raise ConfigError("DATABASE_URL", "only postgres:// and sqlite:/// URLs are supported")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    if not _database.get("NAME") or _database["NAME"] == ":memory:":
        raise ConfigError("DATABASE_URL", "SQLite needs a file path (processes share it)")
    # IMMEDIATE transactions and WAL: read-then-write transactions from
    # several processes wait for the lock instead of failing "database is locked".
    _database["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _database["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
else:
    _database.setdefault("OPTIONS", {})
    _database["OPTIONS"].setdefault("connect_timeout", 5)
    # A silent network partition (packets dropped, no reset) ends a connection within
    # about 5 s instead of the kernel's 15 minutes: unacknowledged data and keepalive
    # probes give up after tcp_user_timeout. A request on such a connection answers 503
    # within tcp_user_timeout + connect_timeout (Django checks the connection, then
    # reconnects once). Any of these in DATABASE_URL's query wins.
    for _option, _value in {
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 5_000,
    }.items():
        _database["OPTIONS"].setdefault(_option, _value)
    # A session that stays inside a transaction without a statement for the stale
    # window (its process stopped, frozen or cut off) is ended by the server: its
    # locks go, and the run the cluster started meanwhile is not held up by them.
    _idle = f"-c idle_in_transaction_session_timeout={int(_RUN_STALE_AFTER * 1000)}"
    _database["OPTIONS"]["options"] = " ".join(filter(None, [_database["OPTIONS"].get("options", ""), _idle]))
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "stayy",
            "OPTIONS": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        }
    }
else:
    # Shared by every local process (dev server child, gunicorn workers).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(BASE_DIR / ".cache"),
        }
    }

# --- Auth -------------------------------------------------------------------
AUTH_USER_MODEL = "users.User"
# axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Sign-in limits (django-axes; docs/deployment.md, "Access") ---------------
# One limiter for the admin login and POST /api/auth/token/, its attempts in the
# database (shared by every worker and host). Failures count per (username, client
# address) against AUTH_FAILURE_LIMIT, and per client address against
# AUTH_ADDRESS_FAILURE_LIMIT (users.repository.sign_in_attempts); a lockout lasts
# AUTH_LOCKOUT_SECONDS after the newest counted failure.
AXES_HANDLER = "users.repository.sign_in_attempts.SignInAttemptsHandler"
AXES_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 5, minimum=1)
SIGN_IN_ADDRESS_FAILURE_LIMIT = env_int("AUTH_ADDRESS_FAILURE_LIMIT", 50, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_float("AUTH_LOCKOUT_SECONDS", 900.0, minimum=1.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Sign-ins refused during a lockout are not counted, so it ends on time.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A successful sign-in does not wipe the failures: one's own account must not reset the address's count.
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "users.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "users.lockout.lockout_response"
# Successful sign-ins are not logged by axes (the request log has them).
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# --- API tokens (django-rest-knox) ----------------------------------------------
# Stored as SHA-512 digests; a token expires API_TOKEN_TTL_DAYS after it was issued
# (fixed, never extended by use); users.signals revokes a user's tokens when the password changes.
API_TOKEN_TTL_DAYS = env_int("API_TOKEN_TTL_DAYS", 30, minimum=1)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS),
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
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
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # No manifest: pages render whether or not collectstatic has run.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (tests, a first start) whitenoise serves the app
# directories directly, so the admin and Swagger UI still get their assets.
WHITENOISE_USE_FINDERS = True
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

# --- REST framework -----------------------------------------------------------
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", True)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The client address rule of the whole service (users.lockout.client_address uses it too).
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stayy API",
    "DESCRIPTION": "Users, and the scheduled jobs the service carries.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get components of their own, with what input needs (non-blank strings).
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.document_error_responses",
    ],
    # Named per model, so another app's "status" choices never collide with these.
    "ENUM_NAME_OVERRIDES": {
        "JobRunStatusEnum": "stayy.models.JobRun.Status",
        "JobRunTriggerEnum": "stayy.models.JobRun.Trigger",
        "UserSourceEnum": "users.models.User.Source",
    },
    "SERVE_PERMISSIONS": (
        ["rest_framework.permissions.AllowAny"]
        if API_DOCS_PUBLIC
        else ["rest_framework.permissions.IsAdminUser"]
    ),
}

# --- Third-party user service -------------------------------------------------
THIRD_PARTY_USERS_URL = env_url("THIRD_PARTY_USERS_URL", schemes=("http", "https"))
THIRD_PARTY_USERS_CONNECT_TIMEOUT = env_float("THIRD_PARTY_USERS_CONNECT_TIMEOUT", 5.0, minimum=0.01)
THIRD_PARTY_USERS_READ_TIMEOUT = env_float("THIRD_PARTY_USERS_READ_TIMEOUT", 30.0, minimum=0.01)
# Every request ends by this deadline (connection, the wait and the whole body),
# however slowly the answer trickles in; a page's body is read up to the cap.
THIRD_PARTY_USERS_REQUEST_DEADLINE = env_float("THIRD_PARTY_USERS_REQUEST_DEADLINE", 60.0, minimum=0.01)
THIRD_PARTY_USERS_MAX_PAGE_BYTES = env_int("THIRD_PARTY_USERS_MAX_PAGE_BYTES", 16 * 1024 * 1024, minimum=1024)
# Sent as "Authorization: Bearer <token>"; credentials in the URL go as basic auth instead.
THIRD_PARTY_USERS_TOKEN = env_token("THIRD_PARTY_USERS_TOKEN", conflicting_url=THIRD_PARTY_USERS_URL)
# Retries of one page on connection errors, timeouts, 429 and 5xx; the waits
# grow from BACKOFF (doubling, plus up to BACKOFF of jitter) to BACKOFF_MAX,
# which also caps a server's Retry-After.
THIRD_PARTY_USERS_MAX_RETRIES = env_int("THIRD_PARTY_USERS_MAX_RETRIES", 5, minimum=0)
THIRD_PARTY_USERS_BACKOFF = env_float("THIRD_PARTY_USERS_BACKOFF", 0.5, minimum=0.0)
THIRD_PARTY_USERS_BACKOFF_MAX = env_float("THIRD_PARTY_USERS_BACKOFF_MAX", 30.0, minimum=0.0)
# The sync job's yield to the requests of its process: after each page that
# more pages follow, it waits this many times the page's cost (the CPU its
# fetch and checks took here, plus the time applying it took; 5: busy at most
# a sixth of the time). 0: no pause.
THIRD_PARTY_USERS_SYNC_PAUSE = env_float("THIRD_PARTY_USERS_SYNC_PAUSE", 5.0, minimum=0.0)

# --- Alerts (docs/deployment.md, "Alerting") -------------------------------------
# A signed JSON POST per alert; the secret keys its HMAC, so it is required with the URL.
JOB_ALERT_WEBHOOK_URL = env_url("JOB_ALERT_WEBHOOK_URL", schemes=("http", "https"))
JOB_ALERT_WEBHOOK_SECRET = env_str("JOB_ALERT_WEBHOOK_SECRET")
if JOB_ALERT_WEBHOOK_URL and not JOB_ALERT_WEBHOOK_SECRET:
    raise ConfigError(
        "JOB_ALERT_WEBHOOK_SECRET",
        "required when JOB_ALERT_WEBHOOK_URL is set (it signs each alert: X-Stayy-Signature)",
    )
# Alerts also go by email (mail_admins) to ADMINS, through the EMAIL_* server below.
ADMINS = env_admins("DJANGO_ADMINS")
SERVER_EMAIL = env_str("DJANGO_SERVER_EMAIL", "stayy@localhost")
EMAIL_SUBJECT_PREFIX = "[stayy] "
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ConfigError("EMAIL_USE_SSL", "EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL exclude each other")
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1)
# Sentry: errors, and a Crons check-in at each run's start and end (stayy.repository.cron_monitors).
SENTRY_DSN = env_sentry_dsn("SENTRY_DSN")
if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(dsn=SENTRY_DSN, send_default_pii=False)

# --- Jobs ---------------------------------------------------------------------
STAYY = {
    "JOB_ENABLE": env_bool("JOB_ENABLE", False),
    "JOB_NAME": env_str("JOB_NAME", "stayy-api") or "stayy-api",
    "JOB_OVERRIDES": env_json_object("JOB_OVERRIDES"),
    "LEASE_TTL": env_float("JOB_LEASE_TTL", 4.0, minimum=1.0),
    "SHUTDOWN_GRACE": env_float("JOB_SHUTDOWN_GRACE", 20.0, minimum=0.0),
    "RUN_RETENTION_DAYS": env_int("JOB_RUN_RETENTION_DAYS", 14, minimum=1),
    "RUN_STALE_AFTER": _RUN_STALE_AFTER,
    "CATCHUP_WINDOW": env_float("JOB_CATCHUP_WINDOW", 3600.0, minimum=0.0),
    "TICK_THREADS": env_int("JOB_TICK_THREADS", 4, minimum=1),
    # Lines a run logs are stored with it, up to this many bytes (the start is kept).
    "RUN_LOG_MAX_BYTES": env_int("JOB_RUN_LOG_MAX_BYTES", 65536, minimum=1024),
    "REDIS_URL": REDIS_URL,
    "ALERT_WEBHOOK_URL": JOB_ALERT_WEBHOOK_URL,
    "ALERT_WEBHOOK_SECRET": JOB_ALERT_WEBHOOK_SECRET,
    # Alerts one job may send in an hour (per channel); past it, one summary.
    "ALERT_MAX_PER_HOUR": env_int("JOB_ALERT_MAX_PER_HOUR", 12, minimum=1),
    # The service's public address, for the links to runs in alerts; unset, the links are paths.
    "ALERT_BASE_URL": env_url("JOB_ALERT_BASE_URL", schemes=("http", "https")).rstrip("/"),
}

# --- Logging ------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ConfigError("LOG_LEVEL", f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL; got {LOG_LEVEL!r}")
LOG_FORMAT = env_str("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ConfigError("LOG_FORMAT", f"expected plain or json; got {env_str('LOG_FORMAT')!r}")
# One handler for everything (HTTP, jobs, Django, libraries): the filter adds
# the job name and run id of the run a line was written in.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"run_context": {"()": "stayy.observability.logcontext.RunContextFilter"}},
    "formatters": {
        "plain": {"()": "stayy.observability.logformat.PlainFormatter"},
        "json": {"()": "stayy.observability.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["run_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers removed: its loggers propagate to the one above.
        "django": {"level": "INFO", "propagate": True},
        # runserver's request lines; stayy.http logs every request already.
        "django.server": {"level": "WARNING", "propagate": True},
        "apscheduler": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- Metrics ------------------------------------------------------------------
# Bearer token for /metrics; unset, /metrics answers 404.
METRICS_TOKEN = env_str("METRICS_TOKEN")

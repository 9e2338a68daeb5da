"""
Settings for the exports service.

Every value comes from an environment variable with an embedded default, so that
`make run` works on a fresh machine with no configuration at all (SQLite, the
in-memory channel layer, filesystem storage and the local executor). The README's
configuration table lists every variable. Like healthchecks, DEBUG defaults to on
for that embedded setup; with DEBUG off the settings refuse to start without a
real SECRET_KEY and ALLOWED_HOSTS, and the system checks in
`exports_project/checks.py` refuse combinations that cannot work in production.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)

# Everything the service writes at run time (database, media, executor state)
# lives under DATA_DIR, so one folder is all there is to back up or wipe.
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-only-used-with-debug-on")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
else:
    try:
        SECRET_KEY = env.str("SECRET_KEY")
        ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
    except ImproperlyConfigured as error:
        raise ImproperlyConfigured(f"With DEBUG off, {error}") from error

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # daphne first so that `runserver` serves ASGI (websockets included).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "exports_project",
    "projects",
    "exports",
]

MIDDLEWARE = [
    "exports_project.errors.ApiErrorsAsJson",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "exports_project.urls"
ASGI_APPLICATION = "exports_project.asgi.application"
WSGI_APPLICATION = "exports_project.wsgi.application"

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
                "exports.context_processors.export_tray",
            ],
        },
    },
]

# Database: SQLite in DATA_DIR by default (WAL so readers never block the
# writer, a busy timeout so concurrent writers wait instead of failing, and
# IMMEDIATE transactions so a transaction that will write takes the lock up
# front instead of failing half-way). Postgres when DATABASE_URL says so.
SQLITE_PATH = DATA_DIR / "db.sqlite3"
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=20),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests use a file too (not Django's in-memory default): WAL, locking and
    # several connections then behave as they do in the running service.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(DATA_DIR / "test-db.sqlite3")
# Connections outlive a request: the threads that take workers' events and tick sockets keep theirs. With
# SQLite too: opening one costs a millisecond, and closing the last one checkpoints the WAL.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channel layer and cache: Redis when REDIS_URL is set, in-process otherwise.
REDIS_URL = env.str("REDIS_URL", default="")
CHANNELS_PREFIX = env.str("CHANNELS_PREFIX", default="exports")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNELS_PREFIX},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNELS_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Storage: the filesystem under DATA_DIR by default; S3 / Cloudflare R2 when a
# bucket is configured. Browsers never get raw storage URLs: media views check
# the owner, then serve (filesystem) or redirect to a fresh presigned URL (S3).
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"  # never routed: media goes through owner-checked views
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
STATIC_ROOT = DATA_DIR / "static"
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_BACKEND = (
    "django.contrib.staticfiles.storage.StaticFilesStorage"
    if DEBUG
    else "whitenoise.storage.CompressedManifestStaticFilesStorage"
)
if AWS_STORAGE_BUCKET_NAME:
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="auto"),
            "signature_version": "s3v4",
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="path"),
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
            "querystring_expire": env.int("MEDIA_URL_EXPIRE_SECONDS", default=300),
        },
    }
else:
    # No explicit location: FileSystemStorage then follows MEDIA_ROOT, the one setting of the folder.
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {"default": DEFAULT_STORAGE, "staticfiles": {"BACKEND": STATICFILES_BACKEND}}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Every upload gets a file on disk, so it can be probed by path before it is
# stored; nothing is kept when the probe rejects it.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]
FILE_UPLOAD_TEMP_DIR = None
CLIP_UPLOAD_MAX_BYTES = env.int("CLIP_UPLOAD_MAX_BYTES", default=2 * 1024**3)
# What an uploaded clip may ask of the probe and the renderer (modal_jobs.media.UploadLimits).
CLIP_MAX_SIDE = env.int("CLIP_MAX_SIDE", default=4096)
CLIP_MAX_FRAME_PIXELS = env.int("CLIP_MAX_FRAME_PIXELS", default=4096 * 2304)
CLIP_MAX_PIXEL_RATE = env.int("CLIP_MAX_PIXEL_RATE", default=4096 * 2304 * 60)
CLIP_PROBE_MEMORY_BYTES = env.int("CLIP_PROBE_MEMORY_BYTES", default=512 * 1024**2)
CLIP_PROBE_SECONDS = env.float("CLIP_PROBE_SECONDS", default=120.0)

# Completion notices by e-mail (exports/notices.py). The embedded default writes each message as a file
# under DATA_DIR/mail/; production sets EMAIL_URL (smtp+tls://user:password@host:587, as django-environ reads it).
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = DATA_DIR / "mail"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Exports <exports@localhost>")
# Mail is sent after the commit that ends a job, on whichever thread ended it: a hung server must not hang it.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
# The site's address as users reach it, for links in e-mails.
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")

# Exports: which executor runs them, and its limits.
EXPORTS_BACKEND = env.str("EXPORTS_BACKEND", default="local")
LOCAL_EXECUTOR_DIR = DATA_DIR / "executor"
LOCAL_EXECUTOR_MAX_WORKERS = env.int("LOCAL_EXECUTOR_MAX_WORKERS", default=2)
LOCAL_EXECUTOR_CORES_PER_WORKER = env.int("LOCAL_EXECUTOR_CORES_PER_WORKER", default=0)
# Exports longer than two chunks of this many seconds render in chunks, in parallel as calls of their own, each
# kept in the store once complete, so a re-run renders only the chunks still missing (modal_jobs/chunks.py); 0:
# off. On by default where each worker has cores of its own (Modal's containers, pinned local workers), where
# make bench's figure 10 measures the gain; unpinned local workers share every core, which one ffmpeg already
# keeps busy, so chunks would only add work. 60 s: in the 40-minute model 40 containers finish in about 2
# minutes, the export's own audio pass being the longer path, so shorter chunks would only add containers.
CHUNKED_WHERE_WORKERS_HAVE_CORES_SECONDS = 60.0
EXPORTS_CHUNK_SECONDS = env.float(
    "EXPORTS_CHUNK_SECONDS",
    default=CHUNKED_WHERE_WORKERS_HAVE_CORES_SECONDS
    if EXPORTS_BACKEND == "modal" or LOCAL_EXECUTOR_CORES_PER_WORKER
    else 0.0,
)
LOCAL_EXECUTOR_TIME_LIMIT_SECONDS = env.float("LOCAL_EXECUTOR_TIME_LIMIT_SECONDS", default=4 * 3600)
MODAL_APP_NAME = env.str("MODAL_APP_NAME", default="exports")

# Reconciliation (see exports/reconcile.py). The two intervals bound how often
# anyone, however many tabs, sockets, processes and commands look, reads a
# job's progress record and asks the executor about it.
EXPORTS_PROGRESS_INTERVAL_SECONDS = env.float("EXPORTS_PROGRESS_INTERVAL_SECONDS", default=1.0)
EXPORTS_EXECUTOR_INTERVAL_SECONDS = env.float("EXPORTS_EXECUTOR_INTERVAL_SECONDS", default=3.0)
# Signed events from the worker (modal_jobs/events.py): the base URL it posts them to, which must reach this
# app from wherever workers run (on Modal: the public URL). The embedded default is the local server
# `make run` starts (PORT); empty turns events off, and jobs are then learned about by looking only.
EXPORTS_EVENTS_URL = env.str("EXPORTS_EVENTS_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")
# While a job's events arrive, its record is read and its executor asked at most this often (a safety net).
EXPORTS_EVENTS_BACKOFF_SECONDS = env.float("EXPORTS_EVENTS_BACKOFF_SECONDS", default=60.0)
# A job the executor cannot vouch for, with no result and no heartbeat for this
# long, is lost. Never applied while the executor says the call is running.
EXPORTS_STALE_WINDOW_MINUTES = env.float("EXPORTS_STALE_WINDOW_MINUTES", default=60)
EXPORTS_MAX_ACTIVE_PER_USER = env.int("EXPORTS_MAX_ACTIVE_PER_USER", default=5)
# Each executor call has its own deadline; a request spends at most the budget
# on executor checks in total; this many consecutive failures open the circuit
# breaker for the cooldown, during which checks fail fast.
EXPORTS_EXECUTOR_DEADLINE_SECONDS = env.float("EXPORTS_EXECUTOR_DEADLINE_SECONDS", default=5.0)
EXPORTS_REQUEST_BUDGET_SECONDS = env.float("EXPORTS_REQUEST_BUDGET_SECONDS", default=1.0)
EXPORTS_BREAKER_FAILURES = env.int("EXPORTS_BREAKER_FAILURES", default=3)
EXPORTS_BREAKER_COOLDOWN_SECONDS = env.float("EXPORTS_BREAKER_COOLDOWN_SECONDS", default=15.0)
# Executor calls in flight at once per process (threads start only as needed).
# reconcile_exports keeps this many in flight by default: with Modal's round
# trip of ~50 ms per poll, 500+ jobs/s needs 64 (docs/benchmarks.md).
EXPORTS_EXECUTOR_CONCURRENCY = env.int("EXPORTS_EXECUTOR_CONCURRENCY", default=64)
# Admin: a processing job silent for this long is listed as suspect.
EXPORTS_SUSPECT_MINUTES = env.float("EXPORTS_SUSPECT_MINUTES", default=10)
# prune_exports: progress and result records (and failed or cancelled jobs' outputs) are kept this long.
EXPORTS_RETENTION_DAYS = env.float("EXPORTS_RETENTION_DAYS", default=30)
# Live progress sockets: how often each reconciles its user's active jobs, and pings the page.
EXPORTS_SOCKET_TICK_SECONDS = env.float("EXPORTS_SOCKET_TICK_SECONDS", default=1.0)
EXPORTS_SOCKET_PING_SECONDS = env.float("EXPORTS_SOCKET_PING_SECONDS", default=20.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"

# JSON errors under /api/, HTML elsewhere (see exports_project/errors.py).
CSRF_FAILURE_VIEW = "exports_project.errors.csrf_failure"

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # The header only consents to preloading; a site enters the list only when submitted by hand.
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

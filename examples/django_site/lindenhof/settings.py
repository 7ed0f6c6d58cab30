"""Settings of the Lindenhof Clinic example site (development defaults, see the comments)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# DEVELOPMENT DEFAULTS ONLY. Set DJANGO_SECRET_KEY and CONSENT_SECRET_KEY in every real
# deployment: anyone who knows a key can forge sessions, consent cookies and receipts.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "django-insecure-lindenhof-development-only"
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",")

INSTALLED_APPS = ["lindenhof"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "lindenhof.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# No database: sessions live in a signed cookie. The cookie names must be the ones the
# cookie policy declares as necessary (examples/policy/necessary.toml): sessionid, csrftoken.
DATABASES: dict[str, dict[str, str]] = {}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_NAME = "sessionid"
CSRF_COOKIE_NAME = "csrftoken"

USE_TZ = True
LANGUAGE_CODE = "en"

# ConsentMiddleware wraps the whole Django application in lindenhof/asgi.py.
CONSENT_POLICY = BASE_DIR.parent / "policy"
CONSENT_SECRET_KEY = (
    os.environ.get("CONSENT_SECRET_KEY") or "lindenhof-development-key-do-not-use-in-production"
)
CONSENT_STORE = os.environ.get("CONSENT_STORE", "sqlite:///consent-example.db")

# Cookies the policy does not declare are reported once per name on the "consent" logger.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"consent": {"handlers": ["console"], "level": "WARNING"}},
}

"""The ASGI entry point: Django wrapped in ConsentMiddleware.

Run it with an ASGI server (``manage.py runserver`` is WSGI and bypasses the middleware)::

    uvicorn --app-dir examples/django_site lindenhof.asgi:application
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from consent import ConsentMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lindenhof.settings")

# get_asgi_application() sets Django up; read the settings only after it.
django_application = get_asgi_application()

application = ConsentMiddleware(
    django_application,
    policy=settings.CONSENT_POLICY,
    secret_key=settings.CONSENT_SECRET_KEY,
    store=settings.CONSENT_STORE,
)

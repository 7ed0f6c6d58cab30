"""The ASGI entry point: Django wrapped in ConsentMiddleware.

Run it with an ASGI server (``manage.py runserver`` is WSGI and bypasses the middleware)::

    uvicorn --app-dir examples/django_site lindenhof.asgi:application
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def lowercase_header_names(app: ASGIApp) -> ASGIApp:
    """Django names its response headers in title case (``Content-Length``); Starlette's
    GZipMiddleware looks them up in lower case, and would add a second ``Content-Length``
    (which servers refuse to send). Lower-case them on the way out."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def lowered(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers") or ()
                message = {**message, "headers": [(n.lower(), v) for n, v in headers]}
            await send(message)

        await app(scope, receive, lowered)

    return wrapped


# The same site, compressed outside consent (so that consent still sees the HTML it adds the
# banner to): uvicorn --app-dir examples/django_site lindenhof.asgi:compressed_application
compressed_application = GZipMiddleware(lowercase_header_names(application), minimum_size=500)

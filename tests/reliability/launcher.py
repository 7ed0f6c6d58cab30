"""The site the reliability tests serve with uvicorn: a small Starlette app behind the middleware.

Run as ``uvicorn --app-dir tests/reliability --factory launcher:build``; every worker process
builds it from the environment:

``CONSENT_SECRET_KEY``
    the signing key (comma-separated for rotation, first signs);
``CONSENT_RELIABILITY_STORE``
    the receipt-store URL (``sqlite:////abs/path.db`` or ``postgresql://...``).

Every response carries ``x-worker: <pid>`` so a test can tell which worker process answered.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consent import ConsentMiddleware

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policy"

#: What the page tries to set: one cookie per category, and one nobody declared.
PAGE_COOKIES = {
    "session": "necessary",
    "stats_vid": "analytics",
    "px_uid": "marketing",
    "font_size": "preferences",
    "tracker": "(undeclared)",
}

CATEGORIES = ("necessary", "analytics", "marketing", "preferences", "embedded")


async def page(request: Request) -> Response:
    response = HTMLResponse(
        "<!doctype html><html><head><title>Reliability</title></head>"
        "<body><p>A page that sets a cookie of every kind.</p></body></html>"
    )
    for name in PAGE_COOKIES:
        response.set_cookie(name, f"{name}-value", httponly=name == "session")
    return response


async def seen(request: Request) -> Response:
    """What reached the app: the request cookies after filtering, and the consent state."""
    consent = request.state.consent
    return JSONResponse(
        {
            "cookies": dict(request.cookies),
            "decided": consent.decided,
            "allows": {key: consent.allows(key) for key in CATEGORIES},
        }
    )


site = Starlette(routes=[Route("/", page), Route("/seen", seen)])


class WorkerHeader:
    """Adds ``x-worker: <pid>`` to every HTTP response (outside the consent middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (b"x-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_pid)


def build() -> ASGIApp:
    """The served app (called once in every worker by ``uvicorn --factory``)."""
    keys = [k.strip() for k in os.environ["CONSENT_SECRET_KEY"].split(",") if k.strip()]
    middleware = ConsentMiddleware(
        site,
        policy=POLICY,
        secret_key=keys,
        store=os.environ["CONSENT_RELIABILITY_STORE"],
    )
    return WorkerHeader(middleware)

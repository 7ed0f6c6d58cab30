"""The demo as one ASGI app: the clinic behind ConsentMiddleware, its CSP, the video platform."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..web import ConsentMiddleware
from .content import POLICY_DIR, VIDEO_PREFIX
from .pages import not_found, site_routes

__all__ = ["CSP", "DemoApp", "SecurityHeaders", "create_app", "from_env"]

# ------------------------------------------------------------------------ the video platform

_PLAYER = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pacing in daily life · video</title>
<style>
html,body{{margin:0;height:100%;background:#0f1419;color:#f2f4f5;font:16px/1.4 system-ui,sans-serif}}
.player{{position:relative;display:grid;place-items:center;height:100%;min-height:180px;
background:radial-gradient(circle at 30% 30%,#2a4a5e,#0f1419 70%)}}
.play{{width:72px;height:72px;border-radius:50%;border:0;background:#f2f4f5;cursor:pointer;
display:grid;place-items:center}}
.play::before{{content:"";margin-left:6px;border-style:solid;border-width:14px 0 14px 24px;
border-color:transparent transparent transparent #0f1419}}
.title{{position:absolute;left:16px;top:12px;right:16px;font-weight:600}}
.bar{{position:absolute;left:16px;right:16px;bottom:14px;display:flex;gap:12px;align-items:center;
font-size:14px}}
.track{{flex:1;height:4px;background:#55636d;border-radius:2px}}
{page}
</style></head>
<body><div class="player" id="player"><div class="title">Pacing in daily life</div>
<button class="play" type="button" aria-label="Play"></button>
<div class="bar"><span>0:00</span><span class="track"></span><span>4:12</span></div></div>
</body></html>"""


async def video_embed(request: Request) -> Response:
    return HTMLResponse(_PLAYER.format(page=""))


async def video_watch(request: Request) -> Response:
    return HTMLResponse(_PLAYER.format(page=".player{max-width:960px;margin:0 auto}"))


def _video_platform() -> Starlette:
    """A stand-in for the external video host. It is not the clinic's site, so it is not behind
    the clinic's middleware: no banner is injected into the player."""
    return Starlette(
        routes=[
            Route(f"{VIDEO_PREFIX}/embed/{{slug}}", video_embed),
            Route(f"{VIDEO_PREFIX}/watch/{{slug}}", video_watch),
        ]
    )


# ------------------------------------------------------------------------------ the whole app

#: The clinic's Content Security Policy: no inline script without the response's nonce. The
#: middleware reads the nonce from this header and gives it to the tags it injects.
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
    "img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'"
)


class SecurityHeaders:
    """Adds a strict ``Content-Security-Policy`` with a fresh nonce to every HTML page of the
    clinic (``scope["state"]["csp_nonce"]`` holds it for templates that need it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def send_with_csp(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if any(k.lower() == b"content-type" and b"text/html" in v for k, v in headers):
                    headers.append(
                        (b"content-security-policy", CSP.format(nonce=nonce).encode("ascii"))
                    )
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_csp)


class DemoApp:
    """The clinic's site behind :class:`ConsentMiddleware`, and next to it the video platform.

    ``consent`` is the middleware (its ``policy``, ``metrics`` and ``endpoints`` are there).
    """

    def __init__(self, consent: ConsentMiddleware, video: Starlette) -> None:
        self.consent = consent
        self.video = video
        self._video_prefix = VIDEO_PREFIX + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self._video_prefix):
            await self.video(scope, receive, send)
        else:
            await self.consent(scope, receive, send)


def create_app(
    *,
    secret_key: str | list[str] | None = None,
    store: str = "sqlite:///consent-demo.db",
    policy: str | Path = POLICY_DIR,
    **options: Any,
) -> DemoApp:
    """The demo site. ``secret_key`` defaults to ``CONSENT_SECRET_KEY``; ``options`` go to
    :class:`ConsentMiddleware`."""
    site = Starlette(routes=site_routes(), exception_handlers={404: _not_found_handler})
    consent = ConsentMiddleware(
        SecurityHeaders(site), policy=policy, secret_key=secret_key, store=store, **options
    )
    site.state.consent = consent
    return DemoApp(consent, _video_platform())


async def _not_found_handler(request: Request, exc: Exception) -> Response:
    return await not_found(request)


def from_env() -> DemoApp:
    """The demo configured from the environment, for ``uvicorn --factory consent.demo:from_env``:
    ``CONSENT_SECRET_KEY`` (required), ``CONSENT_DEMO_STORE`` (default
    ``sqlite:///consent-demo.db``) and ``CONSENT_DEMO_POLICY`` (default: the bundled policy)."""
    return create_app(
        store=os.environ.get("CONSENT_DEMO_STORE", "sqlite:///consent-demo.db"),
        policy=os.environ.get("CONSENT_DEMO_POLICY") or POLICY_DIR,
    )

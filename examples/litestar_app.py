"""The Lindenhof Clinic information site on Litestar, behind ``ConsentMiddleware``.

Run it (from the repository root)::

    CONSENT_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
        uvicorn --app-dir examples litestar_app:app --reload

``app`` is the Litestar application wrapped as a whole, so the consent endpoints under
``/_consent`` are served and every response passes the filter. Litestar's own
``middleware=[DefineMiddleware(...)]`` runs *after* routing, once per route handler: it would
filter the cookies of your handlers but never see ``/_consent`` (see docs/frameworks/litestar.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from pathlib import Path
from typing import Annotated, Any

from litestar import Litestar, MediaType, Request, WebSocket, get, post, websocket
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.params import Body, QueryParameter
from litestar.response import Response, Stream
from litestar.template.base import csrf_token

from consent import ConsentMiddleware, ConsentState

POLICY = Path(__file__).resolve().parent / "policy"

# DEVELOPMENT DEFAULT ONLY. Anyone who knows this key can forge consent cookies and receipts:
# set CONSENT_SECRET_KEY (and SESSION_SECRET_KEY) in every real deployment.
DEV_SECRET_KEY = "lindenhof-development-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("CONSENT_SECRET_KEY") or DEV_SECRET_KEY
SESSION_SECRET_KEY = os.environ.get("SESSION_SECRET_KEY") or DEV_SECRET_KEY
STORE = os.environ.get("CONSENT_STORE", "sqlite:///consent-example.db")

if SECRET_KEY == DEV_SECRET_KEY:
    logging.getLogger("consent").warning(
        "litestar_app: using the development secret key; set CONSENT_SECRET_KEY"
    )


class WaitingTimes:
    """Live waiting times of the emergency department (a stand-in for the hospital system)."""

    def __init__(self) -> None:
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    def current(self, tick: int = 0) -> dict[str, int]:
        return {
            "emergency": 35 + (tick % 4) * 5,
            "radiology": 20 + (tick % 3) * 10,
            "paediatrics": 15 + (tick % 2) * 5,
        }


waiting_times = WaitingTimes()


@asynccontextmanager
async def waiting_times_feed(app: Litestar) -> AsyncIterator[None]:
    await waiting_times.start()
    app.state.waiting_times = waiting_times
    try:
        yield
    finally:
        await waiting_times.stop()


def visitor_report(cookies: dict[str, str], state: ConsentState) -> dict[str, Any]:
    """What the app knows about the visitor: the cookies it received and the consent state."""
    return {
        "cookies": cookies,
        "decided": state.decided,
        "granted": sorted(state.granted),
        "denied": sorted(state.denied),
        "gpc": state.gpc,
        "allows": {key: state.allows(key) for key in ("analytics", "marketing", "preferences")},
    }


@get("/", media_type=MediaType.HTML)
async def home(request: Request[Any, Any, Any]) -> Response[str]:
    """The home page: the session, a CSRF token (Litestar's CSRF config sets it), analytics
    and marketing cookies."""
    consent: ConsentState = request.state.consent
    session = request.session
    request.set_session({"visits": int(session.get("visits", 0)) + 1})
    token = csrf_token({"request": request})  # what a template would call as csrf_token()
    feed: WaitingTimes = request.app.state.waiting_times
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Lindenhof Clinic</title>
<script type="text/plain" data-consent="analytics">
document.cookie = "stats_ses_1=" + Date.now() + "; Path=/; Max-Age=1800";
</script>
</head>
<body>
<h1>Lindenhof Clinic</h1>
<p>Current waiting time in the emergency department: {feed.current()["emergency"]} minutes.</p>
<p>Visit statistics are {"on" if consent.allows("analytics") else "off"} for you.</p>
<form method="post" action="/newsletter">
<input type="hidden" name="_csrf_token" value="{escape(token)}">
<label>E-mail <input type="email" name="email"></label>
<button>Subscribe to the newsletter</button>
</form>
<p><a href="/_consent/declaration">Cookie settings</a></p>
</body>
</html>"""
    return Response(
        page,
        media_type=MediaType.HTML,
        # The app sets these unconditionally; the middleware drops them until the visitor agrees.
        cookies=[
            Cookie(key="stats_vid", value=secrets.token_hex(8), max_age=395 * 24 * 3600),
            Cookie(key="px_uid", value=secrets.token_hex(8), max_age=90 * 24 * 3600),
        ],
    )


@post("/newsletter", media_type=MediaType.HTML, status_code=200)
async def newsletter(
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> str:
    """The newsletter form (Litestar's CSRF middleware checks the token before this runs)."""
    return (
        "<!doctype html><html lang=en><head><title>Thank you</title></head><body>"
        f"<h1>Thank you</h1><p>We will send the newsletter to {escape(data.get('email', ''))}.</p>"
        "</body></html>"
    )


@get("/api/visitor")
async def visitor(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What this app sees of the visitor (only the cookies they allowed)."""
    return visitor_report(dict(request.cookies), request.state.consent)


@get("/waiting-times")
async def waiting_times_stream(
    request: Request[Any, Any, Any],
    updates: Annotated[int, QueryParameter(ge=1, le=60)] = 5,
    interval: Annotated[float, QueryParameter(ge=0, le=10)] = 1.0,
) -> Stream:
    """Server-sent events with the waiting times."""
    feed: WaitingTimes = request.app.state.waiting_times

    async def events() -> AsyncIterator[str]:
        for tick in range(updates):
            if tick:
                await asyncio.sleep(interval)
            yield f"event: waiting-times\ndata: {json.dumps(feed.current(tick))}\n\n"

    return Stream(
        events(),
        media_type="text/event-stream",
        cookies=[Cookie(key="stats_ses_live", value=secrets.token_hex(4), max_age=1800)],
    )


@websocket("/ws/waiting-times")
async def waiting_times_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """The same feed over a WebSocket; the accept sets a sticky load-balancer cookie."""
    consent: ConsentState = socket.state.consent
    await socket.accept(
        headers=[
            (b"set-cookie", b"__Host-lb=node-1; Path=/; Secure; HttpOnly"),
            (b"set-cookie", b"stats_ses_ws=" + secrets.token_hex(4).encode() + b"; Path=/"),
        ]
    )
    feed: WaitingTimes = socket.app.state.waiting_times
    report = visitor_report(dict(socket.cookies), consent)
    await socket.send_json({"visitor": report, "waiting_times": feed.current()})
    await socket.close()


litestar_app = Litestar(
    route_handlers=[home, newsletter, visitor, waiting_times_stream, waiting_times_socket],
    lifespan=[waiting_times_feed],
    # Session and CSRF cookies are named as the policy declares them: session, csrftoken.
    middleware=[
        CookieBackendConfig(
            secret=hashlib.sha256(SESSION_SECRET_KEY.encode()).digest(), key="session"
        ).middleware
    ],
    csrf_config=CSRFConfig(secret=SESSION_SECRET_KEY, cookie_name="csrftoken"),
)

# The ASGI application to serve: consent wraps Litestar as a whole.
app = ConsentMiddleware(litestar_app, policy=POLICY, secret_key=SECRET_KEY, store=STORE)

"""The Lindenhof Clinic information site on FastAPI, behind ``ConsentMiddleware``.

Run it (from the repository root)::

    CONSENT_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
        uvicorn --app-dir examples fastapi_app:app --reload

Views get the visitor's consent through a dependency (``Consent`` below) instead of reaching
into ``request.state`` themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Query, Request, WebSocket
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection

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
        "fastapi_app: using the development secret key; set CONSENT_SECRET_KEY"
    )

ONE_YEAR = 365 * 24 * 3600


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
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    await waiting_times.start()
    try:
        yield {"waiting_times": waiting_times}
    finally:
        await waiting_times.stop()


def get_consent(connection: HTTPConnection) -> ConsentState:
    """The visitor's consent state, set by ConsentMiddleware (HTTP and WebSocket alike)."""
    state: ConsentState = connection.state.consent
    return state


def get_waiting_times(connection: HTTPConnection) -> WaitingTimes:
    feed: WaitingTimes = connection.state.waiting_times
    return feed


Consent = Annotated[ConsentState, Depends(get_consent)]
Feed = Annotated[WaitingTimes, Depends(get_waiting_times)]


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


app = FastAPI(title="Lindenhof Clinic", lifespan=lifespan)

# add_middleware() puts each new middleware *outside* the ones added before it, so add them
# innermost first: session, then consent (filters what the session sets), then compression
# (wraps consent, so consent sees the uncompressed HTML).
app.add_middleware(SessionMiddleware, secret_key=SESSION_SECRET_KEY, same_site="lax")
app.add_middleware(ConsentMiddleware, policy=POLICY, secret_key=SECRET_KEY, store=STORE)
app.add_middleware(GZipMiddleware, minimum_size=500)


@app.get("/", response_class=HTMLResponse)
async def home(request: Request, consent: Consent, feed: Feed) -> HTMLResponse:
    """The home page: sets the session, a CSRF token, and (if allowed) analytics and marketing."""
    request.session["visits"] = int(request.session.get("visits", 0)) + 1
    token = request.cookies.get("csrftoken") or secrets.token_urlsafe(24)
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
<input type="hidden" name="csrftoken" value="{escape(token)}">
<label>E-mail <input type="email" name="email"></label>
<button>Subscribe to the newsletter</button>
</form>
<p><a href="/_consent/declaration">Cookie settings</a></p>
</body>
</html>"""
    response = HTMLResponse(page)
    response.set_cookie("csrftoken", token, max_age=ONE_YEAR, samesite="strict")
    # The app sets these unconditionally; the middleware drops them until the visitor agrees.
    response.set_cookie("stats_vid", secrets.token_hex(8), max_age=395 * 24 * 3600)
    response.set_cookie("px_uid", secrets.token_hex(8), max_age=90 * 24 * 3600)
    return response


@app.post("/newsletter", response_class=HTMLResponse)
async def newsletter(request: Request) -> Response:
    """The newsletter form, protected by the double-submit CSRF token of the home page."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    cookie = request.cookies.get("csrftoken", "")
    if not cookie or not secrets.compare_digest(form.get("csrftoken", ""), cookie):
        return PlainTextResponse("The form expired; please reload the page.", status_code=403)
    return HTMLResponse(
        "<!doctype html><html lang=en><head><title>Thank you</title></head><body>"
        f"<h1>Thank you</h1><p>We will send the newsletter to {escape(form.get('email', ''))}.</p>"
        "</body></html>"
    )


@app.get("/api/visitor")
async def visitor(request: Request, consent: Consent) -> dict[str, Any]:
    """What this app sees of the visitor (only the cookies they allowed)."""
    return visitor_report(dict(request.cookies), consent)


@app.get("/waiting-times")
async def waiting_times_stream(
    feed: Feed,
    updates: Annotated[int, Query(ge=1, le=60)] = 5,
    interval: Annotated[float, Query(ge=0, le=10)] = 1.0,
) -> StreamingResponse:
    """Server-sent events with the waiting times."""

    async def events() -> AsyncIterator[str]:
        for tick in range(updates):
            if tick:
                await asyncio.sleep(interval)
            yield f"event: waiting-times\ndata: {json.dumps(feed.current(tick))}\n\n"

    response = StreamingResponse(events(), media_type="text/event-stream")
    response.set_cookie("stats_ses_live", secrets.token_hex(4), max_age=1800)
    return response


@app.websocket("/ws/waiting-times")
async def waiting_times_socket(websocket: WebSocket, consent: Consent, feed: Feed) -> None:
    """The same feed over a WebSocket; the accept sets a sticky load-balancer cookie."""
    await websocket.accept(
        headers=[
            (b"set-cookie", b"__Host-lb=node-1; Path=/; Secure; HttpOnly"),
            (b"set-cookie", b"stats_ses_ws=" + secrets.token_hex(4).encode() + b"; Path=/"),
        ]
    )
    report = visitor_report(dict(websocket.cookies), consent)
    await websocket.send_json({"visitor": report, "waiting_times": feed.current()})
    await websocket.close()

"""The Lindenhof Clinic information site on Quart, behind ``ConsentMiddleware``.

Run it (from the repository root)::

    CONSENT_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
        uvicorn --app-dir examples quart_app:app --reload

Quart's documented way to add ASGI middleware is to wrap ``app.asgi_app``; ``app`` stays the
Quart object, so ``quart run`` and the test client keep working. Quart does not expose the ASGI
scope state to views: read the visitor's consent from ``consent.current_consent``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from html import escape
from pathlib import Path
from typing import Any

from quart import Quart, Response, request, session, websocket
from werkzeug.datastructures import Headers

from consent import ConsentMiddleware, ConsentState, current_consent

POLICY = Path(__file__).resolve().parent / "policy"

# DEVELOPMENT DEFAULT ONLY. Anyone who knows this key can forge consent cookies and receipts:
# set CONSENT_SECRET_KEY (and SESSION_SECRET_KEY) in every real deployment.
DEV_SECRET_KEY = "lindenhof-development-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("CONSENT_SECRET_KEY") or DEV_SECRET_KEY
SESSION_SECRET_KEY = os.environ.get("SESSION_SECRET_KEY") or DEV_SECRET_KEY
STORE = os.environ.get("CONSENT_STORE", "sqlite:///consent-example.db")

if SECRET_KEY == DEV_SECRET_KEY:
    logging.getLogger("consent").warning(
        "quart_app: using the development secret key; set CONSENT_SECRET_KEY"
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

app = Quart(__name__)
# Quart's session cookie is called "session", as the policy declares it (necessary).
app.secret_key = SESSION_SECRET_KEY
app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)


@app.before_serving
async def open_feed() -> None:
    await waiting_times.start()


@app.after_serving
async def close_feed() -> None:
    await waiting_times.stop()


def consent_state() -> ConsentState:
    """The visitor's consent state, set by ConsentMiddleware for this request or WebSocket."""
    state = current_consent.get()
    if state is None:
        raise RuntimeError("ConsentMiddleware does not wrap app.asgi_app")
    return state


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


@app.get("/")
async def home() -> Response:
    """The home page: sets the session, a CSRF token, and (if allowed) analytics and marketing."""
    consent = consent_state()
    session["visits"] = int(session.get("visits", 0)) + 1
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
<p>Current waiting time in the emergency department: {waiting_times.current()["emergency"]} minutes.</p>
<p>Visit statistics are {"on" if consent.allows("analytics") else "off"} for you.</p>
<form method="post" action="/newsletter">
<input type="hidden" name="csrftoken" value="{escape(token)}">
<label>E-mail <input type="email" name="email"></label>
<button>Subscribe to the newsletter</button>
</form>
<p><a href="/_consent/declaration">Cookie settings</a></p>
</body>
</html>"""
    response = Response(page, content_type="text/html; charset=utf-8")
    response.set_cookie("csrftoken", token, max_age=ONE_YEAR, samesite="Strict")
    # The app sets these unconditionally; the middleware drops them until the visitor agrees.
    response.set_cookie("stats_vid", secrets.token_hex(8), max_age=395 * 24 * 3600)
    response.set_cookie("px_uid", secrets.token_hex(8), max_age=90 * 24 * 3600)
    return response


@app.post("/newsletter")
async def newsletter() -> Response | tuple[str, int]:
    """The newsletter form, protected by the double-submit CSRF token of the home page."""
    form = await request.form
    cookie = request.cookies.get("csrftoken", "")
    if not cookie or not secrets.compare_digest(form.get("csrftoken", ""), cookie):
        return "The form expired; please reload the page.", 403
    return Response(
        "<!doctype html><html lang=en><head><title>Thank you</title></head><body>"
        f"<h1>Thank you</h1><p>We will send the newsletter to {escape(form.get('email', ''))}.</p>"
        "</body></html>",
        content_type="text/html; charset=utf-8",
    )


@app.get("/api/visitor")
async def visitor() -> dict[str, Any]:
    """What this app sees of the visitor (only the cookies they allowed)."""
    return visitor_report(dict(request.cookies), consent_state())


@app.get("/waiting-times")
async def waiting_times_stream() -> Response:
    """Server-sent events with the waiting times (``?updates=N&interval=SECONDS``)."""
    updates = max(1, min(request.args.get("updates", 5, type=int), 60))
    interval = max(0.0, min(request.args.get("interval", 1.0, type=float), 10.0))

    async def events() -> AsyncIterator[bytes]:
        for tick in range(updates):
            if tick:
                await asyncio.sleep(interval)
            yield f"event: waiting-times\ndata: {json.dumps(waiting_times.current(tick))}\n\n".encode()

    response = Response(events(), content_type="text/event-stream")
    response.timeout = None  # a feed may run longer than Quart's default response timeout
    response.set_cookie("stats_ses_live", secrets.token_hex(4), max_age=1800)
    return response


@app.websocket("/ws/waiting-times")
async def waiting_times_socket() -> None:
    """The same feed over a WebSocket; the accept sets a sticky load-balancer cookie."""
    consent = consent_state()
    headers = Headers()
    headers.add("Set-Cookie", "__Host-lb=node-1; Path=/; Secure; HttpOnly")
    headers.add("Set-Cookie", f"stats_ses_ws={secrets.token_hex(4)}; Path=/")
    await websocket.accept(headers=headers)
    report = visitor_report(dict(websocket.cookies), consent)
    await websocket.send_json({"visitor": report, "waiting_times": waiting_times.current()})
    await websocket.close(1000)


# Quart's documented place for ASGI middleware: wrap asgi_app, keep app a Quart object.
app.asgi_app = ConsentMiddleware(app.asgi_app, policy=POLICY, secret_key=SECRET_KEY, store=STORE)

"""A site that mounts the operator's view (``consent.admin``) behind its own login.

Run it (from the repository root)::

    CONSENT_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \\
    OPERATOR_PASSWORD="choose-a-long-password" \\
        uvicorn --app-dir examples admin_site:app

Log in at http://127.0.0.1:8000/login, then open http://127.0.0.1:8000/consent-admin/. Without
the login the view answers 403. ``CONSENT_STORE`` picks the receipt store (default
``sqlite:///consent.db``).

With ``METRICS_TOKEN`` set (16 characters or more), the counters are also served in the
Prometheus text format at /consent-metrics to a scraper sending ``Authorization: Bearer
<token>`` (the ``[metrics]`` extra); ``METRICS_DIR`` names the directory where several workers
(``uvicorn --workers 2``) sum theirs: empty it before the site starts.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from consent import ConsentMiddleware
from consent.admin import create_app, token_auth

POLICY = Path(__file__).resolve().parent / "policy"
STORE = os.environ.get("CONSENT_STORE", "sqlite:///consent.db")
PASSWORD = os.environ.get("OPERATOR_PASSWORD", "")
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")


async def home(request: Request) -> Response:
    response = HTMLResponse("<h1>Lindenhof Clinic</h1><p><a href='/login'>Operator login</a></p>")
    response.set_cookie("stats_vid", "v1")  # analytics: dropped until the visitor accepts it
    response.set_cookie("tracker_x", "1")  # declared nowhere: counted as undeclared, dropped
    return response


async def login(request: Request) -> Response:
    if request.method == "POST":
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        given = form.get("password", "").encode()
        if PASSWORD and hmac.compare_digest(given, PASSWORD.encode()):
            request.session["operator"] = True
            return RedirectResponse("/consent-admin/", status_code=303)
    return HTMLResponse(
        "<form method=post><label>Password <input type=password name=password></label>"
        "<button>Log in</button></form>"
    )


def operator_only(request: Request) -> bool:
    """The site's own login decides: the session set by /login."""
    return request.session.get("operator") is True


site = Starlette(routes=[Route("/", home), Route("/login", login, methods=["GET", "POST"])])
consent = ConsentMiddleware(site, policy=POLICY, store=STORE)
site.routes.append(
    Mount(
        "/consent-admin",
        app=create_app(
            store=STORE,
            policy=POLICY,
            auth=operator_only,
            metrics=consent.metrics,  # this worker's counters
        ),
    )
)
if METRICS_TOKEN:
    from consent.monitoring import create_app as metrics_app

    site.routes.append(
        Mount(
            "/consent-metrics",
            app=metrics_app(
                metrics=consent.metrics,
                auth=token_auth(METRICS_TOKEN),  # the scraper's bearer token
                directory=os.environ.get("METRICS_DIR"),  # shared by this site's workers
                interval=float(os.environ.get("METRICS_INTERVAL", "5")),
            ),
        )
    )
# The session (declared necessary in the policy) outside the consent middleware, so that
# the operator's login is read before the view is reached.
app = SessionMiddleware(consent, secret_key=os.environ.get("SESSION_SECRET", os.urandom(32).hex()))

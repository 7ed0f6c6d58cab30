"""The sites the scanner tests scan, served by uvicorn (``--factory tests.scanner.site:from_env``).

``SCAN_SITE=shop``: a small shop behind ConsentMiddleware, with the policy beside this file. Its
three pages set a necessary ``basket`` and an analytics ``visit_id`` cookie from the server, run a
gated analytics script that sets ``stats_ses`` and the localStorage key ``stats_last``, and load a
stylesheet from another host (``localhost``, for a site scanned as ``127.0.0.1``) before anybody
consented. ``SCAN_SITE_LEAK=1`` adds two leaks the middleware cannot see, as a tag manager would:
an ungated script that sets the undeclared Hotjar cookie ``_hjid``, and a script that sets the
marketing cookie ``_fbp`` on any decision without asking which.

``SCAN_SITE=plain``: two pages without the middleware (no banner, no endpoint) that set cookies
from the server and from a script, and a localStorage key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consent import ConsentMiddleware

POLICY = Path(__file__).resolve().parent / "policy"
YEAR = 365 * 86400

GATED = """<script type="text/plain" data-consent="analytics">
document.cookie = "stats_ses=" + Math.random().toString(36).slice(2) + "; Path=/; Max-Age=1800";
localStorage.setItem("stats_last", String(Date.now()));
</script>"""
LEAKS = """<script>
document.cookie = "_hjid=" + Math.random().toString(36).slice(2) + "; Path=/; Max-Age=31536000";
document.addEventListener("consent:change", () => {
  document.cookie = "_fbp=fb.1." + Date.now() + "; Path=/; Max-Age=7776000";
});
</script>"""


def _layout(title: str, head: str, links: list[str]) -> str:
    nav = " ".join(f'<a href="{href}">{href}</a>' for href in links)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"{head}</head><body><nav>{nav}</nav><main><h1>{title}</h1></main></body></html>"
    )


def shop(leak: bool) -> ConsentMiddleware:
    async def page(request: Request) -> Response:
        fonts = f"http://localhost:{request.url.port}/fonts.css"
        head = f'<link rel="stylesheet" href="{fonts}">{GATED}{LEAKS if leak else ""}'
        title = request.url.path.strip("/") or "home"
        response = HTMLResponse(_layout(title, head, ["/", "/about", "/shop", "/privacy"]))
        response.set_cookie("basket", secrets.token_hex(4), httponly=True, samesite="lax")
        visitor = request.cookies.get("visit_id") or secrets.token_hex(8)
        response.set_cookie("visit_id", visitor, max_age=YEAR, samesite="lax")
        return response

    async def fonts(request: Request) -> Response:
        return Response("body { font-family: serif }", media_type="text/css")

    routes = [Route(path, page) for path in ("/", "/about", "/shop", "/privacy")]
    app = Starlette(routes=[*routes, Route("/fonts.css", fonts)])
    return ConsentMiddleware(app, policy=POLICY, store="memory://")


def plain() -> Starlette:
    script = """<script>
document.cookie = "_hjSessionUser_4711=" + Date.now() + "; Path=/; Max-Age=31536000";
document.cookie = "_ga=GA1.1." + Date.now() + "; Path=/; Max-Age=63072000";
localStorage.setItem("ab_variant", "b");
</script>"""

    async def page(request: Request) -> Response:
        response = HTMLResponse(_layout("plain", script, ["/", "/help"]))
        response.set_cookie("PHPSESSID", secrets.token_hex(8), httponly=True)
        response.set_cookie("shop_cart", "empty", max_age=7 * 86400)
        return response

    return Starlette(routes=[Route("/", page), Route("/help", page)])


def from_env() -> Starlette | ConsentMiddleware:
    if os.environ.get("SCAN_SITE") == "plain":
        return plain()
    return shop(leak=os.environ.get("SCAN_SITE_LEAK") == "1")

"""The demo site: the Lindenhof Clinic's information pages, wired with ConsentMiddleware.

It sets cookies the way real sites do — a session and CSRF token for its forms, first-party
analytics both from the server and from a script, an advertising pixel, an embedded video and a
font-size preference — so every part of the middleware can be seen working. ``consent demo`` serves
it on 127.0.0.1:8000 with the SQLite store; the browser tests drive it.
"""

from __future__ import annotations

import secrets
from html import escape
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..middleware import ConsentMiddleware
from ..state import ConsentState

__all__ = ["POLICY_DIR", "create_app"]

HERE = Path(__file__).resolve().parent
POLICY_DIR = HERE / "policy"
YEAR = 365 * 86400

ARTICLES = {
    "pacing-after-long-covid": (
        "Pacing after long COVID: what our rehabilitation study found",
        [
            "Since 2024 the Lindenhof Clinic's rehabilitation team has followed 212 patients with "
            "post-COVID fatigue through a twelve-week programme built on pacing: planning activity "
            "in small blocks, resting before exhaustion sets in, and raising the load only when "
            "symptoms stay stable for a week.",
            "After twelve weeks, two thirds of the participants reported fewer crashes after "
            "exertion, and the average distance walked in six minutes rose by 48 metres. Patients "
            "who kept a daily activity diary improved most. The programme did not help everybody: "
            "one participant in five saw no change, and we are now studying why.",
            "The study is observational and has no control group, so it cannot prove that pacing "
            "caused the improvement. A randomised trial with the Charité begins next spring; the "
            "information evening below explains how to take part.",
        ],
    ),
    "knee-replacement-recovery": (
        "Walking again after a knee replacement",
        [
            "Most patients walk with crutches on the day after surgery. Our physiotherapists start "
            "with bending exercises in bed and short walks on the ward.",
            "In our 2025 follow-up of 340 patients, those who practised the home exercises daily "
            "reached 110 degrees of flexion two weeks earlier than those who did not.",
        ],
    ),
}


def _layout(request: Request, title: str, body: str) -> HTMLResponse:
    state: ConsentState = request.state.consent
    font = request.cookies.get("font_size", "normal") if state.allows("preferences") else "normal"
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Lindenhof Clinic</title>
<link rel="stylesheet" href="/static/site.css">
<script type="text/plain" data-consent="analytics" src="/static/stats.js"></script>
<script type="text/plain" data-consent="marketing" src="/static/pixel.js"></script>
</head>
<body class="font-{escape(font)}">
<header class="site-header"><a class="brand" href="/">Lindenhof Clinic</a>
<nav><a href="/">Research</a> <a href="/newsletter">Newsletter</a> <a href="/contact">Ask us</a>
<a href="/cookie-policy">Cookie policy</a></nav></header>
<main id="main">
{body}
</main>
<footer class="site-footer"><p>Lindenhof Clinic gGmbH · Lindenallee 12 · 10115 Berlin ·
<a href="/cookie-policy">Cookie policy</a> · <a href="/_consent/receipt">Your consent receipt</a> ·
<a href="/preferences?font=large">Larger text</a> · <a href="/preferences?font=normal">Normal text</a></p>
<img data-consent="marketing" data-src="/pixel.gif" alt="" width="1" height="1">
</footer>
</body>
</html>"""
    response = HTMLResponse(html)
    # First-party analytics, server side: dropped by the middleware until the visitor consents.
    visitor = request.cookies.get("stats_vid") or secrets.token_hex(8)
    response.set_cookie("stats_vid", visitor, max_age=395 * 86400, samesite="lax")
    return response


async def home(request: Request) -> Response:
    items = "".join(
        f'<li><a href="/articles/{slug}">{escape(title)}</a></li>'
        for slug, (title, _) in ARTICLES.items()
    )
    return _layout(
        request,
        "Research news",
        f"<h1>Research news from the Lindenhof Clinic</h1>"
        f"<p>What our doctors and therapists are learning, written for patients.</p><ul>{items}</ul>",
    )


async def article(request: Request) -> Response:
    slug = request.path_params["slug"]
    if slug not in ARTICLES:
        return HTMLResponse("<h1>Not found</h1>", status_code=404)
    title, paragraphs = ARTICLES[slug]
    text = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    video = (
        '<figure class="video"><iframe data-consent="embedded" data-src="/embed/pacing-video" '
        'title="Video: pacing in daily life" width="560" height="315"></iframe>'
        "<figcaption>Video: our physiotherapist explains pacing. It is hosted by a video platform "
        'and loads only if you allow embedded videos. <a href="/embed/pacing-video">Watch it on the '
        "video page</a>.</figcaption></figure>"
    )
    return _layout(request, title, f"<article><h1>{escape(title)}</h1>{text}{video}</article>")


def _form_page(request: Request, title: str, intro: str, fields: str, action: str) -> Response:
    token = request.cookies.get("csrftoken") or secrets.token_urlsafe(16)
    body = (
        f"<h1>{escape(title)}</h1><p>{escape(intro)}</p>"
        f'<form method="post" action="{action}" class="site-form">'
        f'<input type="hidden" name="csrf" value="{token}">{fields}'
        '<button type="submit">Send</button></form>'
    )
    response = _layout(request, title, body)
    response.set_cookie("csrftoken", token, max_age=YEAR, httponly=True, samesite="lax")
    return response


async def newsletter(request: Request) -> Response:
    if request.method == "POST":
        return await _check_form(
            request, "Thank you: please confirm the link we sent to your e-mail address."
        )
    return _form_page(
        request,
        "Newsletter",
        "One e-mail a month with new research and the dates of our information evenings.",
        '<label>E-mail <input type="email" name="email" required autocomplete="email"></label>',
        "/newsletter",
    )


async def contact(request: Request) -> Response:
    if request.method == "POST":
        return await _check_form(
            request, "Thank you: our patient service will answer within two working days."
        )
    return _form_page(
        request,
        "Ask us",
        "Questions about a treatment or a study? Our patient service answers within two working days.",
        '<label>Name <input name="name" required autocomplete="name"></label>'
        '<label>E-mail <input type="email" name="email" required autocomplete="email"></label>'
        '<label>Your question <textarea name="question" rows="5" required></textarea></label>',
        "/contact",
    )


async def _check_form(request: Request, thanks: str) -> Response:
    form = await request.form()
    if not form.get("csrf") or form.get("csrf") != request.cookies.get("csrftoken"):
        return HTMLResponse(
            "<h1>The form expired</h1><p>Please go back and send it again.</p>", status_code=400
        )
    response = _layout(request, "Thank you", f"<h1>Thank you</h1><p>{escape(thanks)}</p>")
    response.set_cookie("session", secrets.token_urlsafe(16), httponly=True, samesite="lax")
    return response


async def cookie_policy(request: Request) -> Response:
    from ..declaration import render_html

    state: ConsentState = request.state.consent
    policy = request.app.state.policy
    choice = (
        "You have not made a choice yet."
        if not state.decided
        else "You allowed: " + (", ".join(sorted(state.granted)) or "only necessary cookies") + "."
    )
    body = (
        f'<p>{escape(choice)} <button type="button" class="button" data-consent-show>Change cookie settings'
        "</button></p>" + render_html(policy)
    )
    return _layout(request, "Cookie policy", body)


async def preferences(request: Request) -> Response:
    font = request.query_params.get("font", "normal")
    response = RedirectResponse(request.headers.get("referer") or "/", status_code=303)
    if font in ("normal", "large"):
        response.set_cookie("font_size", font, max_age=YEAR, samesite="lax")
    return response


PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
    b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


async def pixel(request: Request) -> Response:
    response = Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})
    response.set_cookie(
        "px_uid", request.cookies.get("px_uid") or secrets.token_hex(8), max_age=90 * 86400
    )
    return response


async def embed(request: Request) -> Response:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><title>Video</title></head>'
        '<body style="margin:0;font:16px system-ui;background:#111;color:#eee;display:grid;'
        'place-items:center;height:100vh"><p id="player">▶ Pacing in daily life (4:12)</p></body></html>'
    )


async def stats_hit(request: Request) -> Response:
    return Response(status_code=204)


def create_app(
    *,
    secret_key: str | list[str],
    store: str = "sqlite:///consent-demo.db",
    policy: str | Path = POLICY_DIR,
    **options: Any,
) -> ConsentMiddleware:
    """The demo site wrapped in :class:`ConsentMiddleware`."""
    site = Starlette(
        routes=[
            Route("/", home),
            Route("/articles/{slug}", article),
            Route("/newsletter", newsletter, methods=["GET", "POST"]),
            Route("/contact", contact, methods=["GET", "POST"]),
            Route("/cookie-policy", cookie_policy),
            Route("/preferences", preferences),
            Route("/pixel.gif", pixel),
            Route("/embed/{name}", embed),
            Route("/stats/hit", stats_hit, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
    app = ConsentMiddleware(site, policy=policy, secret_key=secret_key, store=store, **options)
    site.state.policy = app.policy
    return app

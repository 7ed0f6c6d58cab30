"""The demo clinic's pages: the layout, each route's handler, and the routes."""

from __future__ import annotations

import secrets
from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..declaration import render_html
from ..state import ConsentState
from ..web import ConsentMiddleware
from .content import (
    ARTICLES,
    LANGUAGES,
    STATIC_DIR,
    TEXT,
    VIDEO_ARTICLE,
    VIDEO_PREFIX,
    VIDEO_SLUG,
    YEAR,
)

__all__ = ["not_found", "site_routes"]

# ------------------------------------------------------------------------------------- helpers


def _language(request: Request) -> str:
    """``?lang=`` first, then the ``lang`` preference cookie (present only when allowed)."""
    asked = request.query_params.get("lang", "")
    if asked in LANGUAGES:
        return asked
    saved = request.cookies.get("lang", "")
    return saved if saved in LANGUAGES else "en"


def _prefix(request: Request) -> str:
    """Where the consent endpoints answer, as seen by the browser."""
    consent: ConsentMiddleware = request.app.state.consent
    return str(request.scope.get("root_path", "")) + consent.prefix


def _url(path: str, lang: str, **params: str) -> str:
    """An internal link that keeps the page language (the cookie may not be allowed)."""
    query = {**({"lang": lang} if lang != "en" else {}), **params}
    return path + ("?" + urlencode(query) if query else "")


def _same_site_path(value: str | None, fallback: str = "/") -> str:
    """A local path from a Referer or ``next`` value; anything else becomes ``fallback``."""
    if not value:
        return fallback
    parts = urlsplit(value)
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return fallback
    return path + ("?" + parts.query if parts.query else "")


def _page(
    request: Request, title: str, body: str, *, status_code: int = 200, lang: str | None = None
) -> HTMLResponse:
    """A complete page in the site's layout.

    The page sets the analytics visitor cookie (and the ``lang`` cookie when the language was
    chosen by ``?lang=``) without asking anybody: deciding which cookies may be stored is the
    middleware's job, not the application's.
    """
    lang = lang or _language(request)
    t = TEXT[lang]
    # Gated scripts carry the page's CSP nonce: the banner activates only those that do.
    csp_nonce = getattr(request.state, "csp_nonce", "")
    nonce = f' nonce="{escape(csp_nonce)}"' if csp_nonce else ""
    settings = _prefix(request) + "/declaration"
    font = request.cookies.get("font_size", "normal")
    font = font if font in ("normal", "large") else "normal"
    path = request.url.path
    other = "de" if lang == "en" else "en"
    notice = ""
    if request.query_params.get("pref") == "blocked":
        notice = (
            f'<p class="site-notice" role="status">{escape(t["pref_blocked"])} '
            f'<a href="{settings}" data-consent-show>{escape(t["change"])}</a></p>'
        )
    nav = "".join(
        f'<a href="{_url(href, lang)}"{" aria-current=page" if href == path else ""}>'
        f"{escape(t[key])}</a>"
        for href, key in (
            ("/", "nav_research"),
            ("/newsletter", "nav_newsletter"),
            ("/contact", "nav_contact"),
            ("/cookie-policy", "nav_policy"),
        )
    )
    html = f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {escape(t["clinic"])}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/site.css">
<script type="text/plain" data-consent="analytics" src="/static/stats.js"{nonce}></script>
<script type="text/plain" data-consent="marketing" src="/static/pixel.js"{nonce}></script>
</head>
<body class="font-{font}">
<a class="skip" href="#main">{escape(t["skip"])}</a>
<header class="site-header">
<div class="site-header-inner">
<a class="brand" href="{_url("/", lang)}"><span class="brand-mark" aria-hidden="true">L</span>
<span><span class="brand-name">{escape(t["clinic"])}</span>
<span class="brand-tagline">{escape(t["tagline"])}</span></span></a>
<nav aria-label="Main">{nav}
<a class="lang-switch" href="{escape(path)}?lang={other}" hreflang="{other}" lang="{other}">{escape(t["other_language"])}</a></nav>
</div>
</header>
{notice}
<main id="main">
{body}
</main>
<footer class="site-footer">
<p>{escape(t["footer_address"])}</p>
<p class="footer-links"><a href="{_url("/cookie-policy", lang)}">{escape(t["nav_policy"])}</a>
<a href="{settings}" data-consent-show>{escape(t["footer_settings"])}</a>
<span class="text-size">{escape(t["text_size"])}:
<a href="/preferences?font=normal"{" aria-current=true" if font == "normal" else ""}>{escape(t["text_normal"])}</a>
<a href="/preferences?font=large"{" aria-current=true" if font == "large" else ""}>{escape(t["text_large"])}</a></span></p>
<img class="pixel" data-consent="marketing" data-src="/pixel.gif" alt="" width="1" height="1">
</footer>
</body>
</html>"""
    response = HTMLResponse(html, status_code=status_code)
    visitor = request.cookies.get("stats_vid") or secrets.token_hex(8)
    response.set_cookie("stats_vid", visitor, max_age=395 * 86400, samesite="lax")
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, max_age=YEAR, samesite="lax")
    return response


def _evening(lang: str) -> str:
    t = TEXT[lang]
    return (
        f'<aside class="evening" aria-labelledby="evening-h"><h2 id="evening-h">'
        f"{escape(t['evening_h'])}</h2><p>{escape(t['evening_p'])}</p>"
        f'<p><a href="{_url("/contact", lang, topic="trial")}">{escape(t["evening_link"])}</a>'
        "</p></aside>"
    )


def _video(lang: str, prefix: str) -> str:
    t = TEXT[lang]
    player = f"{VIDEO_PREFIX}/embed/{VIDEO_SLUG}"
    # Until the visitor allows it, the middleware's placeholder: with JavaScript, one with
    # "Load this once" and "Always allow" buttons; without, the src below (a link to the
    # cookie settings).
    return (
        '<figure class="video">'
        '<div class="video-frame">'
        f'<iframe data-consent="embedded" data-src="{player}" '
        f'src="{prefix}/embed?category=embedded" title="{escape(t["video_title"])}" '
        'allow="fullscreen" loading="lazy"></iframe></div>'
        f"<figcaption>{escape(t['video_caption'])} "
        f'<a href="{VIDEO_PREFIX}/watch/{VIDEO_SLUG}">{escape(t["video_direct"])}</a>.'
        "</figcaption></figure>"
    )


# -------------------------------------------------------------------------------------- pages


async def home(request: Request) -> Response:
    lang = _language(request)
    t = TEXT[lang]
    items = "".join(
        f'<li class="teaser"><h2><a href="{_url("/articles/" + slug, lang)}">'
        f"{escape(texts[lang][0])}</a></h2><p>{escape(texts[lang][1])}</p></li>"
        for slug, texts in ARTICLES.items()
    )
    body = (
        f'<h1>{escape(t["home_h1"])}</h1><p class="lead">{escape(t["home_intro"])}</p>'
        f'<ul class="teasers">{items}</ul>{_evening(lang)}'
        f'<section class="newsletter-teaser"><p>{escape(t["newsletter_teaser"])}</p>'
        f'<p><a class="button" href="{_url("/newsletter", lang)}">{escape(t["newsletter_link"])}'
        "</a></p></section>"
    )
    return _page(request, t["home_title"], body, lang=lang)


async def article(request: Request) -> Response:
    lang = _language(request)
    slug = request.path_params["slug"]
    if slug not in ARTICLES:
        return await not_found(request)
    title, summary, paragraphs = ARTICLES[slug][lang]
    text = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    extra = _video(lang, _prefix(request)) + _evening(lang) if slug == VIDEO_ARTICLE else ""
    body = (
        f'<article><h1>{escape(title)}</h1><p class="lead">{escape(summary)}</p>{text}{extra}'
        "</article>"
    )
    return _page(request, title, body, lang=lang)


async def not_found(request: Request) -> Response:
    lang = _language(request)
    t = TEXT[lang]
    body = (
        f"<h1>{escape(t['not_found'])}</h1><p>{escape(t['not_found_p'])}</p>"
        f'<p><a href="{_url("/", lang)}">{escape(t["home_link"])}</a></p>'
    )
    return _page(request, t["not_found"], body, status_code=404, lang=lang)


def _form_page(
    request: Request, title: str, intro: str, fields: str, action: str, submit: str
) -> Response:
    """A form protected by a double-submit CSRF token (a necessary cookie)."""
    token = request.cookies.get("csrftoken") or secrets.token_urlsafe(16)
    body = (
        f"<h1>{escape(title)}</h1><p>{escape(intro)}</p>"
        f'<form method="post" action="{escape(action)}" class="site-form">'
        f'<input type="hidden" name="csrf" value="{escape(token)}">{fields}'
        f'<button type="submit" class="button">{escape(submit)}</button></form>'
    )
    response = _page(request, title, body)
    response.set_cookie("csrftoken", token, max_age=YEAR, httponly=True, samesite="lax")
    return response


async def newsletter(request: Request) -> Response:
    lang = _language(request)
    t = TEXT[lang]
    if request.method == "POST":
        return await _check_form(request, t["thanks_newsletter"])
    return _form_page(
        request,
        t["newsletter_title"],
        t["newsletter_intro"],
        f'<label>{escape(t["email"])} <input type="email" name="email" required '
        'autocomplete="email"></label>',
        _url("/newsletter", lang),
        t["subscribe"],
    )


async def contact(request: Request) -> Response:
    lang = _language(request)
    t = TEXT[lang]
    if request.method == "POST":
        return await _check_form(request, t["thanks_contact"])
    chosen = request.query_params.get("topic", "")
    options = "".join(
        f'<option value="{value}"{" selected" if value == chosen else ""}>{escape(t[key])}</option>'
        for value, key in (
            ("trial", "topic_trial"),
            ("treatment", "topic_treatment"),
            ("other", "topic_other"),
        )
    )
    return _form_page(
        request,
        t["contact_title"],
        t["contact_intro"],
        f'<label>{escape(t["name"])} <input name="name" required autocomplete="name"></label>'
        f'<label>{escape(t["email"])} <input type="email" name="email" required '
        'autocomplete="email"></label>'
        f'<label>{escape(t["topic"])} <select name="topic">{options}</select></label>'
        f'<label>{escape(t["question"])} <textarea name="question" rows="5" required>'
        "</textarea></label>",
        _url("/contact", lang),
        t["send"],
    )


async def _check_form(request: Request, thanks: str) -> Response:
    t = TEXT[_language(request)]
    # A plain URL-encoded form: parsed here, so the demo needs no multipart parser.
    raw = await request.body()
    form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    sent = form.get("csrf")
    if not sent or sent != request.cookies.get("csrftoken"):
        body = f"<h1>{escape(t['expired_h'])}</h1><p>{escape(t['expired_p'])}</p>"
        return _page(request, t["expired_h"], body, status_code=400)
    response = _page(
        request, t["thanks"], f'<h1>{escape(t["thanks"])}</h1><p role="status">{escape(thanks)}</p>'
    )
    # Keeps the visitor's input between pages in a real site: a necessary session cookie.
    response.set_cookie("session", secrets.token_urlsafe(16), httponly=True, samesite="lax")
    return response


async def cookie_policy(request: Request) -> Response:
    lang = _language(request)
    t = TEXT[lang]
    state: ConsentState = request.state.consent
    app: ConsentMiddleware = request.app.state.consent
    policy = app.policy
    prefix = _prefix(request)
    if not state.decided:
        choice = t["choice_none"]
    elif state.granted:
        titles = [
            policy.categories[k].text(lang).title for k in policy.optional if k in state.granted
        ]
        choice = f"{t['choice_some']}: {', '.join(titles)}."
    else:
        choice = t["choice_only_necessary"]
    rows = []
    for name in request.cookies:
        found = app.classifier.match(name)
        key = found[0] if found else None
        if name == app.cookie_name:
            key = next(iter(sorted(policy.necessary)), None)
        category = policy.categories[key].text(lang).title if key else "?"
        rows.append(f"<tr><td><code>{escape(name)}</code></td><td>{escape(category)}</td></tr>")
    seen = (
        f'<table class="server-sees"><thead><tr><th scope="col">{escape(t["cookie"])}</th>'
        f'<th scope="col">{escape(t["category"])}</th></tr></thead><tbody>{"".join(rows)}'
        "</tbody></table>"
        if rows
        else f"<p>{escape(t['no_cookies'])}</p>"
    )
    receipt = (
        f' <a class="button button-secondary" href="{prefix}/receipt">{escape(t["receipt"])}</a>'
        if state.decided
        else ""
    )
    body = (
        f"<h1>{escape(t['policy_title'])}</h1><p>{escape(t['policy_intro'])}</p>"
        f'<p id="your-choice">{escape(choice)}</p>'
        f'<p class="actions"><a class="button" href="{prefix}/declaration" data-consent-show>'
        f"{escape(t['change'])}</a>{receipt}</p>"
        f'<section class="panel" aria-labelledby="server-sees"><h2 id="server-sees">'
        f"{escape(t['server_sees_h'])}</h2><p>{escape(t['server_sees_p'])}</p>{seen}</section>"
        + render_html(policy, lang)
    )
    return _page(request, t["policy_title"], body, lang=lang)


async def preferences(request: Request) -> Response:
    """Remember the text size. The cookie only sticks when preferences are allowed; otherwise
    the visitor is told why nothing changed."""
    state: ConsentState = request.state.consent
    font = request.query_params.get("font", "normal")
    back = _same_site_path(request.headers.get("referer"))
    if not state.allows("preferences"):
        parts = urlsplit(back)
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("pref="))
        back = parts.path + "?" + (query + "&" if query else "") + "pref=blocked"
    response = RedirectResponse(back, status_code=303)
    if font in ("normal", "large"):
        response.set_cookie("font_size", font, max_age=YEAR, samesite="lax")
    return response


PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
    b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


async def pixel(request: Request) -> Response:
    """The advertising partner's pixel (served locally: the demo never contacts another host)."""
    response = Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})
    response.set_cookie(
        "px_uid",
        request.cookies.get("px_uid") or secrets.token_hex(8),
        max_age=90 * 86400,
        samesite="lax",
    )
    return response


async def favicon(request: Request) -> Response:
    """For pages without an icon link (the consent endpoints' own pages)."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


async def stats_hit(request: Request) -> Response:
    """Where the analytics script reports a page view (the body is not kept)."""
    await request.body()
    return Response(status_code=204)


def site_routes() -> list[Route | Mount]:
    return [
        Route("/", home),
        Route("/articles/{slug}", article),
        Route("/newsletter", newsletter, methods=["GET", "POST"]),
        Route("/contact", contact, methods=["GET", "POST"]),
        Route("/cookie-policy", cookie_policy),
        Route("/preferences", preferences),
        Route("/pixel.gif", pixel),
        Route("/stats/hit", stats_hit, methods=["POST"]),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]

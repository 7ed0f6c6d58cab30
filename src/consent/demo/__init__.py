"""The demo site: the Lindenhof Clinic's information pages, wired with ConsentMiddleware.

It sets cookies the way real sites do, so every part of the middleware can be seen working:

* ``session`` and ``csrftoken`` for the newsletter and information-request forms (necessary);
* first-party analytics: ``stats_vid`` set by the server on every page, ``stats_ses`` set by a
  script that is gated with ``<script type="text/plain" data-consent="analytics">``;
* an advertising pixel: ``px_uid`` from a gated ``<img data-src>``, ``_fbp`` from a gated script;
* an embedded video in a gated ``<iframe data-src>``, served by a stand-in "video platform" that
  lives outside the clinic's middleware, as a real third party would;
* ``font_size`` and ``lang`` preference cookies.

The application code sets its cookies without asking: the middleware drops those the visitor has
not allowed. ``consent demo`` serves the site on 127.0.0.1:8000 with the SQLite store;
``uvicorn --factory consent.demo:from_env`` does the same from environment variables (used by the
browser tests). Nothing here loads anything from another host.
"""

from __future__ import annotations

import os
import secrets
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..declaration import render_html
from ..state import ConsentState
from ..web import ConsentMiddleware

__all__ = ["POLICY_DIR", "VIDEO_PREFIX", "DemoApp", "create_app", "from_env"]

HERE = Path(__file__).resolve().parent
POLICY_DIR = HERE / "policy"
STATIC_DIR = HERE / "static"
YEAR = 365 * 86400
#: Where the stand-in video platform answers (outside the middleware, like a third party).
VIDEO_PREFIX = "/video-platform"
LANGUAGES = ("en", "de")

# ---------------------------------------------------------------------------------------- text

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "clinic": "Lindenhof Clinic",
        "tagline": "Rehabilitation and orthopaedics in Berlin-Mitte",
        "nav_research": "Research",
        "nav_newsletter": "Newsletter",
        "nav_contact": "Ask us",
        "nav_policy": "Cookie policy",
        "other_language": "Deutsch",
        "home_title": "Research news",
        "home_h1": "Research news from the Lindenhof Clinic",
        "home_intro": "What our doctors and therapists are learning, written for patients and "
        "their families. Every article names the study behind it and what it cannot tell us.",
        "read_more": "Read the article",
        "evening_h": "Information evening: the pacing trial",
        "evening_p": "Thursday, 4 February, 18:00, lecture hall B. Our rehabilitation team explains "
        "the new trial on pacing after long COVID and who can take part. No registration needed.",
        "evening_link": "Questions about taking part? Ask us",
        "newsletter_teaser": "One e-mail a month with new research and the dates of our "
        "information evenings.",
        "newsletter_link": "Subscribe to the newsletter",
        "video_title": "Video: pacing in daily life",
        "video_caption": "Our physiotherapist Jana Krüger shows how to plan a day in small blocks "
        "(4 minutes).",
        "video_blocked": "This video is hosted by a video platform, which may set cookies and "
        "learn that you visited this page. It loads only if you allow embedded videos.",
        "video_allow": "Change cookie settings",
        "video_direct": "Open the video page instead",
        "newsletter_title": "Newsletter",
        "newsletter_intro": "One e-mail a month with new research and the dates of our "
        "information evenings. You can unsubscribe with one click in every e-mail.",
        "contact_title": "Ask us",
        "contact_intro": "Questions about a treatment, a study or taking part in a trial? Our "
        "patient service answers within two working days. Please do not send medical "
        "emergencies here: call 112.",
        "email": "E-mail",
        "name": "Name",
        "question": "Your question",
        "topic": "Topic",
        "topic_trial": "Taking part in a study",
        "topic_treatment": "A treatment",
        "topic_other": "Something else",
        "send": "Send",
        "subscribe": "Subscribe",
        "thanks": "Thank you",
        "thanks_newsletter": "Thank you: please confirm the link we sent to your e-mail address.",
        "thanks_contact": "Thank you: our patient service will answer within two working days.",
        "expired_h": "The form expired",
        "expired_p": "Please go back, reload the page and send it again.",
        "policy_title": "Cookie policy",
        "policy_intro": "This site uses cookies only for what you allow. Necessary cookies keep "
        "the forms working and remember your choice; everything else waits for your consent.",
        "choice_none": "You have not made a choice yet.",
        "choice_some": "You allowed",
        "choice_only_necessary": "You allowed only the necessary cookies.",
        "change": "Change cookie settings",
        "receipt": "Show your consent receipt",
        "server_sees_h": "What our server sees",
        "server_sees_p": "The cookies below are the ones your browser sent that reached the "
        "clinic's application on this request. Cookies of categories you have not allowed are "
        "removed before the application sees them.",
        "no_cookies": "No cookies reached the application.",
        "cookie": "Cookie",
        "category": "Category",
        "footer_address": "Lindenhof Clinic gGmbH · Lindenallee 12 · 10115 Berlin",
        "footer_settings": "Cookie settings",
        "skip": "Skip to content",
        "text_size": "Text size",
        "text_normal": "Normal",
        "text_large": "Large",
        "pref_blocked": "We can remember your text size and language only if you allow "
        "preference cookies.",
        "not_found": "Page not found",
        "not_found_p": "This page does not exist (any more).",
        "home_link": "Back to the research news",
    },
    "de": {
        "clinic": "Klinik Lindenhof",
        "tagline": "Rehabilitation und Orthopädie in Berlin-Mitte",
        "nav_research": "Forschung",
        "nav_newsletter": "Newsletter",
        "nav_contact": "Fragen Sie uns",
        "nav_policy": "Cookie-Richtlinie",
        "other_language": "English",
        "home_title": "Aus der Forschung",
        "home_h1": "Neues aus der Forschung der Klinik Lindenhof",
        "home_intro": "Was unsere Ärztinnen, Ärzte und Therapeuten herausfinden, geschrieben für "
        "Patientinnen, Patienten und Angehörige. Jeder Artikel nennt die Studie dahinter und was "
        "sie nicht beantworten kann.",
        "read_more": "Zum Artikel",
        "evening_h": "Informationsabend: die Pacing-Studie",
        "evening_p": "Donnerstag, 4. Februar, 18 Uhr, Hörsaal B. Unser Reha-Team stellt die neue "
        "Studie zum Pacing nach Long COVID vor und erklärt, wer teilnehmen kann. Ohne Anmeldung.",
        "evening_link": "Fragen zur Teilnahme? Schreiben Sie uns",
        "newsletter_teaser": "Einmal im Monat eine E-Mail mit neuen Ergebnissen und den Terminen "
        "unserer Informationsabende.",
        "newsletter_link": "Newsletter abonnieren",
        "video_title": "Video: Pacing im Alltag",
        "video_caption": "Unsere Physiotherapeutin Jana Krüger zeigt, wie man einen Tag in kleinen "
        "Blöcken plant (4 Minuten).",
        "video_blocked": "Dieses Video liegt bei einer Videoplattform, die Cookies setzen und von "
        "Ihrem Besuch erfahren kann. Es wird nur geladen, wenn Sie eingebettete Videos erlauben.",
        "video_allow": "Cookie-Einstellungen ändern",
        "video_direct": "Stattdessen die Videoseite öffnen",
        "newsletter_title": "Newsletter",
        "newsletter_intro": "Einmal im Monat eine E-Mail mit neuen Ergebnissen und den Terminen "
        "unserer Informationsabende. Abmelden können Sie sich mit einem Klick in jeder E-Mail.",
        "contact_title": "Fragen Sie uns",
        "contact_intro": "Fragen zu einer Behandlung, einer Studie oder zur Teilnahme? Unser "
        "Patientenservice antwortet innerhalb von zwei Werktagen. Bitte keine Notfälle: wählen "
        "Sie 112.",
        "email": "E-Mail",
        "name": "Name",
        "question": "Ihre Frage",
        "topic": "Thema",
        "topic_trial": "Teilnahme an einer Studie",
        "topic_treatment": "Eine Behandlung",
        "topic_other": "Etwas anderes",
        "send": "Senden",
        "subscribe": "Abonnieren",
        "thanks": "Vielen Dank",
        "thanks_newsletter": "Vielen Dank: Bitte bestätigen Sie den Link, den wir an Ihre "
        "E-Mail-Adresse geschickt haben.",
        "thanks_contact": "Vielen Dank: Unser Patientenservice antwortet innerhalb von zwei "
        "Werktagen.",
        "expired_h": "Das Formular ist abgelaufen",
        "expired_p": "Bitte gehen Sie zurück, laden Sie die Seite neu und senden Sie es noch einmal.",
        "policy_title": "Cookie-Richtlinie",
        "policy_intro": "Diese Website verwendet Cookies nur für das, was Sie erlauben. Notwendige "
        "Cookies halten die Formulare in Gang und merken sich Ihre Auswahl; alles andere wartet "
        "auf Ihre Einwilligung.",
        "choice_none": "Sie haben noch keine Auswahl getroffen.",
        "choice_some": "Sie haben erlaubt",
        "choice_only_necessary": "Sie haben nur die notwendigen Cookies erlaubt.",
        "change": "Cookie-Einstellungen ändern",
        "receipt": "Ihren Einwilligungsnachweis anzeigen",
        "server_sees_h": "Was unser Server sieht",
        "server_sees_p": "Unten stehen die Cookies Ihres Browsers, die bei dieser Anfrage die "
        "Anwendung der Klinik erreicht haben. Cookies aus Kategorien, die Sie nicht erlaubt haben, "
        "werden vorher entfernt.",
        "no_cookies": "Keine Cookies haben die Anwendung erreicht.",
        "cookie": "Cookie",
        "category": "Kategorie",
        "footer_address": "Klinik Lindenhof gGmbH · Lindenallee 12 · 10115 Berlin",
        "footer_settings": "Cookie-Einstellungen",
        "skip": "Zum Inhalt springen",
        "text_size": "Schriftgröße",
        "text_normal": "Normal",
        "text_large": "Groß",
        "pref_blocked": "Schriftgröße und Sprache können wir uns nur merken, wenn Sie "
        "Einstellungs-Cookies erlauben.",
        "not_found": "Seite nicht gefunden",
        "not_found_p": "Diese Seite gibt es nicht (mehr).",
        "home_link": "Zurück zu den Forschungsnachrichten",
    },
}

ARTICLES: dict[str, dict[str, tuple[str, str, list[str]]]] = {
    "pacing-after-long-covid": {
        "en": (
            "Pacing after long COVID: what our rehabilitation study found",
            "Two thirds of 212 patients had fewer crashes after exertion after twelve weeks.",
            [
                "Since 2024 the Lindenhof Clinic's rehabilitation team has followed 212 patients "
                "with post-COVID fatigue through a twelve-week programme built on pacing: planning "
                "activity in small blocks, resting before exhaustion sets in, and raising the load "
                "only when symptoms stay stable for a week.",
                "After twelve weeks, two thirds of the participants reported fewer crashes after "
                "exertion, and the average distance walked in six minutes rose by 48 metres. "
                "Patients who kept a daily activity diary improved most. The programme did not "
                "help everybody: one participant in five saw no change, and we are now studying "
                "why.",
                "The study is observational and has no control group, so it cannot prove that "
                "pacing caused the improvement. A randomised trial with the Charité begins next "
                "spring; the information evening below explains how to take part.",
            ],
        ),
        "de": (
            "Pacing nach Long COVID: Was unsere Reha-Studie gezeigt hat",
            "Zwei Drittel von 212 Patientinnen und Patienten hatten nach zwölf Wochen seltener "
            "Einbrüche nach Belastung.",
            [
                "Seit 2024 begleitet das Reha-Team der Klinik Lindenhof 212 Patientinnen und "
                "Patienten mit Post-COVID-Fatigue durch ein zwölfwöchiges Programm, das auf Pacing "
                "beruht: Aktivität in kleinen Blöcken planen, ruhen, bevor die Erschöpfung kommt, "
                "und die Belastung erst steigern, wenn die Beschwerden eine Woche lang stabil "
                "bleiben.",
                "Nach zwölf Wochen berichteten zwei Drittel der Teilnehmenden über seltenere "
                "Einbrüche nach Belastung, und die in sechs Minuten gegangene Strecke stieg im "
                "Mittel um 48 Meter. Wer täglich ein Aktivitätstagebuch führte, profitierte am "
                "meisten. Nicht allen hat das Programm geholfen: Bei einer von fünf Personen "
                "änderte sich nichts, und wir untersuchen nun, warum.",
                "Die Studie ist eine Beobachtungsstudie ohne Kontrollgruppe; sie kann nicht "
                "beweisen, dass das Pacing die Besserung bewirkt hat. Im Frühjahr beginnt mit der "
                "Charité eine randomisierte Studie; der Informationsabend unten erklärt, wie man "
                "teilnehmen kann.",
            ],
        ),
    },
    "knee-replacement-recovery": {
        "en": (
            "Walking again after a knee replacement",
            "Daily home exercises brought full bending two weeks sooner.",
            [
                "Most patients walk with crutches on the day after surgery. Our physiotherapists "
                "start with bending exercises in bed and short walks on the ward.",
                "In our 2025 follow-up of 340 patients, those who practised the home exercises "
                "daily reached 110 degrees of flexion two weeks earlier than those who did not. "
                "Pain at rest was the same in both groups after six weeks.",
                "The exercise sheets are handed out on the ward; ask your physiotherapist for the "
                "large-print version if you need it.",
            ],
        ),
        "de": (
            "Wieder gehen nach einer Knieprothese",
            "Tägliche Übungen zu Hause brachten die volle Beugung zwei Wochen früher.",
            [
                "Die meisten Patientinnen und Patienten gehen am Tag nach der Operation mit "
                "Unterarmgehstützen. Unsere Physiotherapie beginnt mit Beugeübungen im Bett und "
                "kurzen Wegen auf der Station.",
                "In unserer Nachbeobachtung von 340 Patientinnen und Patienten aus dem Jahr 2025 "
                "erreichten diejenigen, die täglich zu Hause übten, eine Beugung von 110 Grad zwei "
                "Wochen früher als die anderen. Der Ruheschmerz war nach sechs Wochen in beiden "
                "Gruppen gleich.",
                "Die Übungsblätter bekommen Sie auf der Station; fragen Sie Ihre Physiotherapeutin "
                "nach der Ausgabe in großer Schrift, wenn Sie sie brauchen.",
            ],
        ),
    },
}

VIDEO_SLUG = "pacing-in-daily-life"
VIDEO_ARTICLE = "pacing-after-long-covid"

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
    return (
        '<figure class="video">'
        '<div class="video-frame">'
        f'<iframe data-consent="embedded" data-src="{player}" title="{escape(t["video_title"])}" '
        'allow="fullscreen" loading="lazy"></iframe>'
        '<div class="video-placeholder">'
        f"<p><strong>{escape(t['video_title'])}</strong></p><p>{escape(t['video_blocked'])}</p>"
        f'<p><a class="button" href="{prefix}/declaration" data-consent-show>'
        f"{escape(t['video_allow'])}</a></p></div></div>"
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


def _site_routes() -> list[Route | Mount]:
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
    site = Starlette(routes=_site_routes(), exception_handlers={404: _not_found_handler})
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

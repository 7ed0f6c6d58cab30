"""Every page and form the server renders: the no-JavaScript form, the declaration, the
visitor's history of receipts, the text of a policy revision, and the page a gated iframe shows
without JavaScript.

The endpoints answer with these pages when a browser asks for HTML, and the middleware inserts
:func:`noscript_form` into pages for visitors who have not decided. Every text is escaped with
:func:`html.escape`. The visitor's own pages (:func:`history_page`, :func:`revision_page`) are
styled like the banner (:func:`styled_page`).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from .declaration import render_html
from .history import revision_href
from .i18n import ui_strings
from .policy import Policy
from .receipts import StoredReceipt
from .state import ConsentState

__all__ = [
    "consent_form",
    "declaration_page",
    "embed_page",
    "history_page",
    "no_history_page",
    "noscript_form",
    "page",
    "revision_page",
    "styled_page",
]


def page(title: str, body: str, language: str) -> str:
    """A whole page around ``body`` (already HTML), readable on a phone."""
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;"
        "color:#1a1a1a;overflow-wrap:break-word;hyphens:auto}table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:.3rem .5rem;"
        "text-align:left;overflow-wrap:anywhere}fieldset{margin:1rem 0}"
        "button{font:inherit;padding:.5rem 1rem;margin:.25rem}"
        # On a narrow screen a wide table scrolls by itself, not the whole page (WCAG 1.4.10).
        "@media (max-width:40rem){table{display:block;overflow-x:auto}}"
        "</style></head><body><main>" + body + "</main></body></html>"
    )


def consent_form(
    policy: Policy, prefix: str, state: ConsentState, *, next_url: str, language: str = "en"
) -> str:
    """A plain HTML form with the same choices as the banner (works without JavaScript)."""
    t = policy.ui_strings(language)
    rows = []
    gpc_note = ""
    for key, cat in policy.ordered():
        title = escape(cat.text(language).title)
        if cat.necessary:
            rows.append(
                f'<p><label><input type="checkbox" checked disabled> {title} '
                f"({escape(t['always_on'])})</label></p>"
            )
        elif state.gpc and cat.sale_or_share:
            # Global Privacy Control refuses it whatever is ticked (as the banner shows it).
            rows.append(
                f'<p><label><input type="checkbox" disabled> {title} '
                f"— {escape(t['gpc_off'])}</label></p>"
            )
            gpc_note = f"<p>{escape(t['gpc'])}</p>"
        else:
            checked = " checked" if key in state.granted else ""
            rows.append(
                f'<p><label><input type="checkbox" name="accept" value="{escape(key)}"{checked}> '
                f"{title}</label></p>"
            )
    return (
        f'<form method="post" action="{escape(prefix)}" class="consent-form">'
        f"<fieldset><legend>{escape(t['your_choices'])}</legend>{''.join(rows)}{gpc_note}"
        "</fieldset>"
        f'<input type="hidden" name="next" value="{escape(next_url)}">'
        f'<button type="submit" name="save" value="1">{escape(t["save"])}</button>'
        f'<button type="submit" name="accept" value="all">{escape(t["accept_all"])}</button>'
        f'<button type="submit" name="accept" value="none">{escape(t["reject_all"])}</button>'
        "</form>"
    )


def declaration_page(
    policy: Policy, prefix: str, state: ConsentState, language: str, next_url: str = "/"
) -> str:
    """The cookie declaration with the no-JavaScript form under it (which returns to
    ``next_url``)."""
    form = consent_form(policy, prefix, state, next_url=next_url, language=language)
    title = policy.ui_strings(language)["declaration"]
    return page(title, render_html(policy, language, form=form), language)


def embed_page(
    policy: Policy, prefix: str, language: str, category: str, vendor: str, back: str | None
) -> str:
    """What a gated iframe shows without JavaScript (its ``src`` until it is activated): what
    would load (``category``'s title, ``vendor`` or the category's third parties), and a link
    to the cookie settings, which return to the page ``back`` when given."""
    t = policy.ui_strings(language)
    cat = policy.categories.get(category)
    title = cat.text(language).title if cat else t["embed_title"]
    vendor = vendor[:200] or (
        ", ".join(cat.third_parties) if cat and cat.third_parties else t["embed_title"]
    )
    notice = t["embed_notice"].replace("{vendor}", vendor).replace("{category}", title)
    query = "?" + urlencode({"next": back}) if back else ""
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(t['embed_title'])}</title>"
        f'<link rel="stylesheet" href="{escape(prefix)}/banner.css"></head>'
        '<body class="consent-root consent-embed consent-embed-nojs">'
        f'<p class="consent-embed-title">{escape(t["embed_title"])}</p>'
        f'<p class="consent-embed-text">{escape(notice)}</p>'
        f'<p><a class="consent-embed-settings" href="{escape(prefix)}/declaration'
        f'{escape(query)}" '
        f'target="_top">{escape(t["settings"])}</a></p></body></html>'
    )


def noscript_form(
    policy: Policy, prefix: str, state: ConsentState, *, next_url: str, language: str
) -> str:
    """For visitors without JavaScript who have not decided: what the banner's first layer
    says (the notice, the policy link) and the same choices as a form, in a ``<noscript>``."""
    form = consent_form(policy, prefix, state, next_url=next_url, language=language)
    t = policy.ui_strings(language)
    site = policy.site
    notice = site.notice_for(language) or t["notice"]
    return (
        f'<noscript><div class="consent-noscript" role="region" lang="{escape(language)}" '
        f'aria-label="{escape(t["title"])}"><p>{escape(notice)} '
        f'<a href="{escape(site.policy_url)}">{escape(t["policy_link"])}</a></p>'
        f"{form}</div></noscript>"
    )


# The banner's palette (banner.css defaults, WCAG AA): text 16.1:1, secondary text 8.6:1 and
# links 6.3:1 on white; focus ring 3:1 against both.
_CSS = (
    ":root{color-scheme:light}"
    "body{margin:0;background:#f4f4f4;color:#1a1a1a;"
    'font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}'
    ".consent-page{box-sizing:border-box;max-width:60rem;margin:1.5rem auto;padding:1.25rem 1.5rem;"
    "background:#fff;border:1px solid #6b6b6b;border-radius:.5rem;overflow-wrap:break-word}"
    "h1{font-size:1.5rem;line-height:1.3;margin:0 0 .75rem}"
    "h2{font-size:1.2rem;line-height:1.3;margin:1.5rem 0 .5rem}"
    "p,dl{margin:0 0 .75rem}"
    "a{color:#0b57d0;text-underline-offset:.15em}"
    "a:focus-visible,[tabindex]:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}"
    ".consent-muted{color:#4a4a4a}"
    ".consent-status{padding:.5rem .75rem;border-left:.25rem solid #0b57d0;background:#eef3fd}"
    ".consent-status.stale{border-color:#8a4b00;background:#fff4e5}"
    "dl.consent-facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}"
    "dl.consent-facts dt{font-weight:600}dl.consent-facts dd{margin:0;min-width:0}"
    "code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;"
    "overflow-wrap:anywhere}"
    ".consent-table{overflow-x:auto;margin:0 0 1rem}"
    "table{border-collapse:collapse;width:100%}"
    # The caption names the table for assistive technology; the heading above it shows.
    "caption{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);"
    "white-space:nowrap}"
    # Columns wide enough to read; on a narrow screen the table scrolls in its region.
    ".consent-table table{min-width:56rem}"
    "th,td{border:1px solid #9a9a9a;padding:.4rem .5rem;text-align:left;vertical-align:top}"
    "thead th{background:#f0f0f0}tbody th{white-space:nowrap}"
    ".consent-actions{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;margin:1rem 0 0;padding:0;"
    "list-style:none}"
    ".consent-actions a{display:inline-block;min-height:1.5rem;padding:.25rem 0}"
    "@media (max-width:40rem){.consent-page{margin:0;border:0;border-radius:0;padding:1rem}"
    "dl.consent-facts{grid-template-columns:1fr}dl.consent-facts dd{margin-bottom:.5rem}"
    # the declaration's cookie tables (on a revision's page) scroll by themselves
    ".consent-declaration table{display:block;overflow-x:auto}}"
)


def styled_page(title: str, body: str, language: str) -> str:
    """A page of its own (one ``main`` landmark, the title as its name), styled like the
    banner and readable from 320 CSS pixels wide (WCAG 1.4.10: only a wide table scrolls,
    in a region of its own that a keyboard can reach)."""
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f'<main class="consent-page" aria-labelledby="consent-title">{body}</main>'
        "</body></html>"
    )


def _titles(keys: Sequence[str], stored: StoredReceipt, policy: Policy, language: str) -> str:
    """Category titles in ``language`` (from the policy; the receipt's own for a category
    the policy no longer has)."""
    recorded = {p.key: p.title for p in stored.receipt.purposes}
    cats = policy.categories
    names = [cats[k].text(language).title if k in cats else recorded.get(k, k) for k in keys]
    return ", ".join(names)


def history_page(
    entries: Sequence[StoredReceipt],
    *,
    subject_id: str,
    current: bool,
    prefix: str,
    policy: Policy,
    language: str,
    limit: int,
) -> str:
    """The visitor's history as a page in ``language``."""
    t = ui_strings(language)
    newest = entries[0].receipt
    controller = newest.controller
    status = (
        f'<p class="consent-status">{escape(t["history_current"])}</p>'
        if current
        else f'<p class="consent-status stale">{escape(t["history_not_current"])}</p>'
    )
    facts = (
        '<dl class="consent-facts">'
        f"<dt>{escape(t['receipt_subject'])}</dt><dd><code>{escape(subject_id)}</code></dd>"
        f"<dt>{escape(t['controller'])}</dt><dd>{escape(controller.name)} "
        f'(<a href="mailto:{escape(controller.email)}">{escape(controller.email)}</a>)</dd>'
        f"<dt>{escape(t['receipt_policy'])}</dt><dd>"
        f'<a href="{escape(newest.policy_url)}">{escape(newest.policy_url)}</a></dd>'
        "</dl>"
    )
    heads = "".join(
        f'<th scope="col">{escape(t[k])}</th>'
        for k in (
            "receipt_time",
            "receipt_event",
            "receipt_granted",
            "receipt_refused",
            "receipt_method",
            "history_text",
            "receipt_id",
        )
    )
    rows = []
    for stored in entries:
        r = stored.receipt
        method = t.get(f"method_{r.method}", r.method)
        if r.gpc:
            method += f" ({t['receipt_gpc']})"
        rows.append(
            "<tr>"
            f'<th scope="row"><time datetime="{escape(r.time)}">'
            f"{escape(r.time.replace('T', ' ').removesuffix('Z'))}</time></th>"
            f"<td>{escape(t.get(f'event_{r.event}', r.event))}</td>"
            f"<td>{escape(_titles(r.granted, stored, policy, language) or t['none'])}</td>"
            f"<td>{escape(_titles(r.refused, stored, policy, language) or t['none'])}</td>"
            f"<td>{escape(method)}</td>"
            f'<td><a href="{escape(revision_href(prefix, r.revision))}">'
            f"{escape(t['history_read'])}"
            f'<span class="consent-muted"> ({escape(t["receipt_revision"])} '
            f"<code>{escape(r.revision[:12])}</code>)</span></a></td>"
            f"<td><code>{escape(r.receipt_id)}</code></td>"
            "</tr>"
        )
    more = (
        f'<p class="consent-muted">{escape(t["history_more"].replace("{count}", str(limit)))}</p>'
        if len(entries) >= limit
        else ""
    )
    body = (
        f'<h1 id="consent-title">{escape(t["receipt_title"])}</h1>'
        f"<p>{escape(t['history_intro'])}</p>"
        f"{status}{facts}"
        f'<h2 id="consent-history">{escape(t["history_heading"])}</h2>'
        '<div class="consent-table" role="region" tabindex="0" aria-labelledby="consent-caption">'
        f'<table><caption id="consent-caption">{escape(t["history_caption"])}</caption>'
        f"<thead><tr>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}"
        '<ul class="consent-actions">'
        f'<li><a href="{escape(prefix)}/receipt?format=json" download>'
        f"{escape(t['history_download'])}</a></li>"
        f'<li><a href="{escape(prefix)}/declaration">{escape(t["change_choices"])}</a></li>'
        "</ul>"
    )
    return styled_page(t["receipt_title"], body, language)


def no_history_page(prefix: str, language: str) -> str:
    """The readable 404 for a browser without any recorded decision."""
    t = ui_strings(language)
    body = (
        f'<h1 id="consent-title">{escape(t["receipt_title"])}</h1>'
        f"<p>{escape(t['receipt_none'])}</p>"
        f'<p><a href="{escape(prefix)}/declaration">{escape(t["change_choices"])}</a></p>'
    )
    return styled_page(t["receipt_title"], body, language)


def revision_page(
    revision: str,
    *,
    body_html: str | None,
    prefix: str,
    language: str,
    current: bool,
    archived: bool = False,
) -> str:
    """The text shown under a revision (``body_html``, the declaration as rendered: the
    current policy's, or one the policy archive keeps), or a note that the site no longer has
    it."""
    t = ui_strings(language)
    title = t["revision_title"].replace("{revision}", revision[:12])
    if body_html:
        # The declaration's headings, one level down under this page's own.
        for level in ("2", "1"):
            down = str(int(level) + 1)
            body_html = body_html.replace(f"<h{level}", f"<h{down}").replace(
                f"</h{level}>", f"</h{down}>"
            )
    note = t[
        "revision_current" if current else "revision_archived" if archived else "revision_missing"
    ]
    body = (
        f'<h1 id="consent-title">{escape(title)}</h1>'
        f"<p>{escape(note)} <code>{escape(revision)}</code></p>"
        f"{body_html or ''}"
        f'<p><a href="{escape(prefix)}/receipt">{escape(t["back_to_receipts"])}</a></p>'
    )
    return styled_page(title, body, language)

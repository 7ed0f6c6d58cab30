"""Every page and form the server renders: the no-JavaScript form, the receipt, the declaration,
the page a gated iframe shows without JavaScript.

The endpoints answer with these pages when a browser asks for HTML, and the middleware inserts
:func:`noscript_form` into pages for visitors who have not decided. Every text is escaped with
:func:`html.escape`.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from .declaration import render_html
from .policy import Policy
from .receipts import StoredReceipt
from .state import ConsentState

__all__ = [
    "consent_form",
    "declaration_page",
    "embed_page",
    "no_receipt_page",
    "noscript_form",
    "page",
    "receipt_page",
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


def receipt_page(stored: StoredReceipt, prefix: str, policy: Policy, language: str) -> str:
    """The visitor's receipt as a page in ``language`` (categories by their titles)."""
    r = stored.receipt
    t = policy.ui_strings(language)

    def titles(keys: list[str]) -> str:
        cats = policy.categories
        return (
            ", ".join(cats[k].text(language).title if k in cats else k for k in keys) or t["none"]
        )

    rows = [
        (t["receipt_id"], r.receipt_id),
        (t["receipt_time"], r.time),
        (t["receipt_event"], t.get(f"event_{r.event}", r.event)),
        (t["receipt_granted"], titles(r.granted)),
        (t["receipt_refused"], titles(r.refused)),
        (t["receipt_method"], t.get(f"method_{r.method}", r.method)),
        (t["receipt_gpc"], t["yes"] if r.gpc else t["no"]),
        (t["controller"], f"{r.controller.name} <{r.controller.email}>"),
        (t["receipt_policy"], r.policy_url),
        (t["receipt_revision"], r.revision),
        (t["receipt_jurisdiction"], r.jurisdiction),
        (t["receipt_subject"], r.subject_id),
        (t["receipt_signature"].replace("{kid}", stored.kid), stored.signature),
        (t["receipt_hash"], stored.hash),
    ]
    table = "".join(
        f'<tr><th scope="row">{escape(k)}</th><td>{escape(str(v))}</td></tr>' for k, v in rows
    )
    body = (
        f"<h1>{escape(t['receipt_title'])}</h1><p>{escape(t['receipt_intro'])}</p>"
        f"<table>{table}</table>"
        f'<p><a href="{escape(prefix)}/declaration">{escape(t["change_choices"])}</a></p>'
    )
    return page(t["receipt_title"], body, language)


def no_receipt_page(policy: Policy, prefix: str, language: str) -> str:
    """The page for a browser without a recorded decision, linking to the declaration."""
    t = policy.ui_strings(language)
    link = f'<a href="{escape(prefix)}/declaration">{escape(t["change_choices"])}</a>'
    body = f"<h1>{escape(t['receipt_title'])}</h1><p>{escape(t['receipt_none'])}</p><p>{link}</p>"
    return page(t["receipt_title"], body, language)


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

"""The cookie declaration: per category, its text and the cookies it covers.

Rendered as JSON, Markdown or HTML for ``consent declaration`` and ``GET <prefix>/declaration``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from .policy import Policy
from .rulenames import Segment, rule_segments, segments_text

__all__ = ["declaration_data", "render_html", "render_json", "render_markdown"]


def declaration_data(policy: Policy, language: str | None = None) -> dict[str, Any]:
    site = policy.site
    lang = language or site.language
    words = policy.ui_strings(lang)
    return {
        "controller": site.controller.model_dump(mode="json"),
        "policy_url": site.policy_url,
        "jurisdiction": site.jurisdiction,
        "language": language if language else site.language,
        "revision": policy.revision,
        "undeclared": site.undeclared,
        "categories": [
            {
                "key": key,
                "title": cat.text(language).title,
                "description": cat.text(language).description,
                "necessary": cat.necessary,
                "sale_or_share": cat.sale_or_share,
                "consent_mode": list(cat.consent_mode),
                "third_parties": list(cat.third_parties),
                "cookies": [
                    {
                        "name": rule.label,
                        "match": rule.kind,
                        # what visitors read: see consent.rulenames
                        "display": segments_text(rule_segments(rule, lang, words)),
                        "vendor": rule.vendor,
                        "purpose": rule.text(language).purpose,
                        "duration": rule.text(language).duration,
                        "domain": list(rule.domains),
                        "path": rule.path,
                        "third_party": rule.third_party,
                    }
                    for rule in cat.cookies
                ],
            }
            for key, cat in policy.ordered()
        ],
    }


def render_json(policy: Policy, language: str | None = None) -> str:
    return json.dumps(declaration_data(policy, language), indent=2, ensure_ascii=False) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def render_markdown(policy: Policy, language: str | None = None) -> str:
    data = declaration_data(policy, language)
    t = policy.ui_strings(data["language"])
    c = data["controller"]
    lines = [
        f"# {t['declaration']}",
        "",
        f"{t['controller']}{t['colon']}{c['name']} ({c['email']}). "
        f"{t['policy_link']}{t['colon']}{data['policy_url']}. "
        f"{t['receipt_revision']}{t['colon']}`{data['revision'][:16]}`.",
        "",
    ]
    heads = [t[f"cookie_{k}"] for k in ("name", "vendor", "purpose", "duration")]
    names = {
        key: [_md_segments(rule_segments(rule, data["language"], t)) for rule in cat.cookies]
        for key, cat in policy.categories.items()
    }
    for cat in data["categories"]:
        status = t["always_on"] if cat["necessary"] else t["only_with_consent"]
        lines += [f"## {cat['title']} ({status})", "", cat["description"], ""]
        if cat["third_parties"]:
            lines += [f"{t['shared_with']}{t['colon']}{', '.join(cat['third_parties'])}.", ""]
        if cat["cookies"]:
            lines += ["| " + " | ".join(heads) + " |", "| --- | --- | --- | --- |"]
            for ck, shown in zip(cat["cookies"], names[cat["key"]], strict=True):
                # The rule as written, for operators, and what visitors read, when it differs.
                name = f"`{_md_cell(ck['name'])}`" + (
                    f" ({t['cookie_pattern']}: {shown})"
                    if ck["match"] != "name" or ck["display"] != ck["name"]
                    else ""
                )
                lines.append(
                    f"| {name} | {_md_cell(ck['vendor'])} | {_md_cell(ck['purpose'])} | "
                    f"{_md_cell(ck['duration'])} |"
                )
            lines.append("")
    return "\n".join(lines)


def render_html(policy: Policy, language: str | None = None, *, form: str = "") -> str:
    """The declaration as an HTML fragment (``form`` is optional markup placed after the intro)."""
    data = declaration_data(policy, language)
    t = policy.ui_strings(data["language"])
    c = data["controller"]
    # What visitors read in the name column (consent.rulenames), per category and rule.
    names = {
        key: [_html_segments(rule_segments(rule, data["language"], t)) for rule in cat.cookies]
        for key, cat in policy.categories.items()
    }
    out = [
        '<section class="consent-declaration">',
        f"<h1>{escape(t['declaration'])}</h1>",
        f"<p>{escape(t['controller'] + t['colon'])}{escape(c['name'])} "
        f'(<a href="mailto:{escape(c["email"])}">{escape(c["email"])}</a>). '
        f'<a href="{escape(data["policy_url"])}">{escape(t["policy_link"])}</a>. '
        f"{escape(t['receipt_revision'] + t['colon'])}"
        f"<code>{escape(data['revision'][:16])}</code>.</p>",
        form,
    ]
    for cat in data["categories"]:
        status = t["always_on"] if cat["necessary"] else t["only_with_consent"]
        out.append(
            f'<h2 id="category-{escape(cat["key"])}">{escape(cat["title"])} '
            f"<small>({escape(status)})</small></h2>"
        )
        out.append(f"<p>{escape(cat['description'])}</p>")
        if cat["third_parties"]:
            out.append(
                f'<p class="consent-third-parties">{escape(t["shared_with"] + t["colon"])}'
                f"{escape(', '.join(cat['third_parties']))}.</p>"
            )
        if cat["cookies"]:
            heads = "".join(
                f'<th scope="col">{escape(t[k])}</th>'
                for k in ("cookie_name", "cookie_vendor", "cookie_purpose", "cookie_duration")
            )
            out.append(f"<table><thead><tr>{heads}</tr></thead><tbody>")
            for ck, name in zip(cat["cookies"], names[cat["key"]], strict=True):
                out.append(
                    f"<tr><td>{name}</td>"
                    f"<td>{escape(ck['vendor'])}</td>"
                    f"<td>{escape(ck['purpose'])}</td><td>{escape(ck['duration'])}</td></tr>"
                )
            out.append("</tbody></table>")
    out.append("</section>")
    return "\n".join(out) + "\n"


def _html_segments(segments: list[Segment]) -> str:
    return "".join(
        f"<code>{escape(text)}</code>" if is_name else escape(text) for text, is_name in segments
    )


def _md_segments(segments: list[Segment]) -> str:
    return "".join(
        f"`{_md_cell(text)}`" if is_name else _md_cell(text) for text, is_name in segments
    )

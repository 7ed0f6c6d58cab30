"""A scan report as text (for a person), as JSON (for a pipeline), and its draft rules as files."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .model import CookieSeen, DecisionRun, StorageSeen
from .report import UNSORTED, Item, Report
from .site import Site

__all__ = ["render_json", "render_text", "to_json", "write_drafts"]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _lifetime(expires: float | None, now: float) -> str:
    """How long a cookie lives from now: ``session``, ``45 min``, ``6 h``, ``395 days``."""
    if expires is None:
        return "session"
    left = expires - now
    if left < 3600:
        return f"{max(0, round(left / 60))} min"
    if left < 86400:
        return f"{round(left / 3600)} h"
    return f"{round(left / 86400)} days"


def _short(url: str, site: Site) -> str:
    """A page of the scanned site by its path, another address in full."""
    return url[len(site.origin) :] or "/" if url.startswith(site.origin + "/") else url


def _seen(item: Item) -> list[dict[str, str]]:
    return [{"decision": d, "page": page} for d, page in item.seen.items()]


# ---------------------------------------------------------------------- JSON


def to_json(report: Report) -> dict[str, Any]:
    categories = {(i.kind, i.name, i.domain): i.category for i in report.items}

    def cookie(c: CookieSeen) -> dict[str, Any]:
        return {
            "name": c.name,
            "domain": c.domain,
            "path": c.path,
            "expires": _iso(c.expires),
            "http_only": c.http_only,
            "secure": c.secure,
            "same_site": c.same_site,
            "third_party": c.third_party,
            "set_by": c.set_by,
            "category": categories.get(("cookie", c.name, c.domain)),
            "page": c.page,
        }

    def storage(s: StorageSeen) -> dict[str, Any]:
        return {
            "kind": s.kind,
            "origin": s.origin,
            "key": s.key,
            "third_party": s.third_party,
            "category": categories.get((s.kind, s.key, s.origin)),
            "page": s.page,
        }

    def decision(run: DecisionRun) -> dict[str, Any]:
        return {
            "decision": run.name,
            "granted": sorted(run.decision.granted),
            "gpc": run.decision.gpc,
            "via": run.via,
            "error": run.error,
            "banner_error": run.banner_error,
            "pages": [{"url": p.url, "status": p.status, "error": p.error} for p in run.pages],
            "cookies": [cookie(c) for c in run.cookies],
            "storage": [storage(s) for s in run.storage],
            "third_party_hosts": run.third_party_hosts,
            "hosts": [
                {"host": h, "page": page, "third_party": third}
                for h, (page, third) in sorted(run.hosts.items())
            ],
        }

    def entry(item: Item, decisions: Sequence[str]) -> dict[str, Any]:
        return {
            "kind": item.kind,
            "name": item.name,
            "domain": item.domain,
            "category": item.category,
            "decisions": list(decisions),
            "seen": _seen(item),
            "set_by": item.set_by,
            "third_party": item.third_party,
        }

    site = report.site
    return {
        "url": site.url,
        "scanned_at": _iso(report.started),
        "duration_seconds": round(report.duration, 1),
        "pages_per_decision": report.pages,
        "consent": {"prefix": site.prefix, "banner": site.banner},
        "policy": {
            "source": report.policy_source,
            "location": report.policy_location,
            "revision": report.revision,
        },
        "decisions": [decision(run) for run in report.runs],
        "violations": [entry(i, i.violated) for i in report.violations],
        "undeclared": [
            {
                **entry(i, list(i.seen)),
                "suggestion": i.suggestion.to_json() if i.suggestion is not None else None,
                "draft": (
                    {"file": i.draft.file, "category": i.draft.category, "toml": i.draft.toml}
                    if i.draft is not None
                    else None
                ),
            }
            for i in report.undeclared
        ],
        "stale": [
            {
                "file": s.file,
                "category": s.category,
                "kind": s.kind,
                "rule": s.rule,
                "vendor": s.vendor,
                "third_party": s.third_party,
            }
            for s in report.stale
        ],
        "third_party_before_consent": [
            {"decision": d, "host": h, "page": p} for d, h, p in report.before_consent
        ],
        "errors": [{"decision": d, "error": e} for d, e in report.errors],
    }


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------- text


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        (indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
        for r in rows
    ]


def render_text(report: Report, *, strict: bool = False) -> str:
    site = report.site
    now = report.started
    out = [f"Scan of {site.url}"]
    if report.policy_source == "directory":
        policy = f"{report.policy_location} (revision {str(report.revision)[:16]})"
    elif report.policy_source == "declaration":
        policy = (
            f"the site's declaration, {report.policy_location} "
            f"(revision {str(report.revision)[:16]})"
        )
    else:
        policy = "none (the site has no consent endpoint; pass --policy DIR to check one)"
    consent = (
        f"{'banner and ' if site.banner else ''}endpoint at {site.prefix}"
        if site.prefix
        else "no banner or consent endpoint found: only 'none' was scanned"
    )
    out += [
        f"  policy     {policy}",
        f"  consent    {consent}",
        f"  decisions  {', '.join(r.name for r in report.runs)} (up to {report.pages} pages each)",
        f"  took       {report.duration:.1f} s",
        "",
    ]
    rows: list[tuple[str, ...]] = [
        ("DECISION", "MADE BY", "PAGES", "COOKIES", "STORAGE", "THIRD-PARTY HOSTS")
    ]
    for run in report.runs:
        made = run.via or ("-" if run.name == "none" else "not made")
        rows.append(
            (
                run.name,
                made,
                str(len(run.pages)),
                str(len(run.cookies)),
                str(len(run.storage)),
                ", ".join(run.third_party_hosts) or "-",
            )
        )
    out += _table(rows, "")
    for run in report.runs:
        if run.error:
            out.append(f"  {run.name}: the decision could not be made: {run.error}")
        elif run.banner_error:
            out.append(f"  {run.name}: the banner could not be used ({run.banner_error})")

    latest: dict[tuple[str, str, str], CookieSeen] = {}
    for run in report.runs:
        for seen in run.cookies:
            latest[("cookie", seen.name, seen.domain)] = seen
    if report.items:
        out += ["", "What the browser stored"]
        rows = [("NAME", "WHERE", "CATEGORY", "SET BY", "LIFETIME", "FLAGS", "UNDER")]
        for item in report.items:
            c: CookieSeen | None = latest.get((item.kind, item.name, item.domain))
            if c is not None:
                flags = " ".join(
                    f
                    for f, on in (
                        ("HttpOnly", c.http_only),
                        ("Secure", c.secure),
                        (c.same_site, bool(c.same_site)),
                        ("3rd-party", c.third_party),
                    )
                    if on
                )
                life = _lifetime(c.expires, now)
            else:
                flags, life = item.kind + (" 3rd-party" if item.third_party else ""), "-"
            category = item.category or ("(undeclared)" if report.policy else "-")
            rows.append(
                (
                    item.name,
                    item.domain,
                    category,
                    item.set_by or "-",
                    life,
                    flags,
                    ", ".join(item.seen),
                )
            )
        out += _table(rows)

    violations = report.violations
    out += ["", f"Violations: {len(violations) or 'none'}"]
    for item in violations:
        what = item.category or "undeclared"
        by = (
            f", set by {'the server' if item.set_by == 'server' else 'a script'}"
            if item.set_by
            else ""
        )
        label = "" if item.kind == "cookie" else f" ({item.kind})"
        out.append(f"  {item.name}{label} on {item.domain}: {what}{by}")
        pages: dict[str, list[str]] = {}
        for d in item.violated:
            pages.setdefault(item.seen[d], []).append(d)
        out.append(
            "    under "
            + "; ".join(f"{', '.join(ds)} (first on {_short(p, site)})" for p, ds in pages.items())
        )

    undeclared = report.undeclared
    out += ["", f"Undeclared: {len(undeclared) or 'none'}"]
    for item in undeclared:
        label = "" if item.kind == "cookie" else f" ({item.kind})"
        out.append(f"  {item.name}{label} on {item.domain}, seen under {', '.join(item.seen)}")
        suggestion = item.suggestion
        out.append(
            f"    catalog: {suggestion.summary()}" if suggestion else "    catalog: not known"
        )
        if item.draft is not None:
            out.append(f"    draft for {item.draft.file}:")
            # (its first line says what the lines above say)
            out += [f"      {line}" for line in item.draft.toml.splitlines()[1:]]

    if report.policy is not None:
        out += [
            "",
            f"Stale rules (declared, never seen under any decision): {len(report.stale) or 'none'}",
        ]
        if report.stale:
            out += _table(
                [
                    (s.file, s.kind, s.rule, "third party" if s.third_party else "")
                    for s in report.stale
                ]
            )

    out += ["", f"Third-party hosts before consent: {len(report.before_consent) or 'none'}"]
    out += [f"  {h} (under {d}, from {_short(p, site)})" for d, h, p in report.before_consent]

    code = report.exit_code(strict=strict)
    counts = [
        f"{len(violations)} violation{'s' * (len(violations) != 1)}",
        f"{len(undeclared)} undeclared",
    ]
    if strict:
        counts.append(f"{len(report.before_consent)} third-party before consent")
    out += ["", f"Result: {', '.join(counts)} -> exit {code}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- drafts


def write_drafts(report: Report, directory: Path) -> list[Path]:
    """One TOML file per suggested category file, holding the draft rules to review."""
    by_file: dict[str, list[str]] = {}
    for item in report.undeclared:
        if item.draft is not None:
            by_file.setdefault(item.draft.file, []).append(item.draft.toml)
    if not by_file:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    stamp = time.strftime("%Y-%m-%d", time.gmtime(report.started))
    for name, rules in sorted(by_file.items()):
        head = f"# Draft cookie rules from `consent scan {report.site.url}` on {stamp}.\n"
        if name == UNSORTED:
            head += (
                "# Names the catalog does not know, or lists under conflicting categories: "
                "choose a category\n# for each, describe it, then add it to that category's file.\n"
            )
        else:
            head += f"# Review each, then add it to {name} in your policy directory.\n"
        path = directory / name
        path.write_text(head + "\n" + "\n".join(rules), encoding="utf-8")
        written.append(path)
    return written

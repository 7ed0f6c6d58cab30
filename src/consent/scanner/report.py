"""A scan's findings: what the browser saw under each decision, checked against the site's policy
(through the middleware's own :class:`~consent.classify.Classifier`) and the known-cookie catalog.

* a **violation** is a cookie or storage key present under a decision that does not allow its
  category (an undeclared one is allowed only with ``undeclared = "allow"``);
* an **undeclared** cookie or key is one no rule of the policy matches; it comes with the
  catalog's suggestion and a draft rule for the suggested category's file;
* a **stale** rule is a declared one that nothing matched under any decision;
* third-party hosts contacted under ``none`` and ``reject`` are reported as contacted before
  consent.

Without a policy (a site without the consent endpoint, scanned without ``--policy``) nothing can
be a violation: everything found is undeclared, with the catalog's suggestions.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Literal

from ..catalog.database import FUNCTIONAL_NOTE, SOURCE, Catalog, Suggestion
from ..catalog.mapping import site_category
from ..classify import Classifier
from ..policy import COOKIE_GLOB, COOKIE_NAME, CookieRule, Policy
from .model import DecisionRun
from .site import Site

__all__ = ["Draft", "Item", "Report", "StaleRule", "build_report"]

Kind = Literal["cookie", "localStorage", "sessionStorage"]
_KIND_ORDER = {"cookie": 0, "localStorage": 1, "sessionStorage": 2}
#: Decisions under which nothing has been consented to.
BEFORE_CONSENT = ("none", "reject")
#: Where drafts for names the catalog does not know, or lists ambiguously, go.
UNSORTED = "unsorted.toml"


@dataclass(slots=True)
class Item:
    """One cookie (by name and domain) or storage key (by name and origin), across decisions."""

    kind: Kind
    name: str
    #: a cookie's domain, a storage key's origin
    domain: str
    third_party: bool
    #: ``server``, ``script`` (cookies; ``server`` if any decision saw a response set it)
    set_by: str | None
    #: decision -> the page where it first appeared under it, in the order of the decisions
    seen: dict[str, str] = field(default_factory=dict)
    #: the policy's category, ``None`` when no rule declares it
    category: str | None = None
    rule: CookieRule | None = None
    #: the cookie the site's consent endpoint sets with a decision
    consent_cookie: bool = False
    #: the decisions under which it was present but not allowed
    violated: list[str] = field(default_factory=list)
    suggestion: Suggestion | None = None
    draft: Draft | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A cookie rule to review, for the policy file of the suggested category."""

    file: str
    category: str | None
    toml: str


@dataclass(frozen=True, slots=True)
class StaleRule:
    file: str
    category: str
    kind: str
    rule: str
    vendor: str
    third_party: bool


@dataclass(slots=True)
class Report:
    site: Site
    runs: list[DecisionRun]
    policy: Policy | None
    #: ``directory`` (``--policy``), ``declaration`` (the site's own), or ``None``
    policy_source: str | None
    #: the policy directory or the declaration's URL
    policy_location: str | None
    #: the site's declared revision (from its declaration), else the policy's
    revision: str | None
    items: list[Item]
    stale: list[StaleRule]
    #: (decision, host, first page that contacted it)
    before_consent: list[tuple[str, str, str]]
    pages: int
    started: float = field(default_factory=time.time)
    duration: float = 0.0

    @property
    def violations(self) -> list[Item]:
        return [i for i in self.items if i.violated]

    @property
    def undeclared(self) -> list[Item]:
        return [i for i in self.items if i.category is None and not i.consent_cookie]

    @property
    def errors(self) -> list[tuple[str, str]]:
        """Decisions that could not be made: (decision, why)."""
        return [(r.name, r.error) for r in self.runs if r.error]

    def exit_code(self, *, strict: bool = False) -> int:
        """2 when a decision could not be made, 1 for violations or undeclared cookies (and
        with ``strict`` for third-party hosts before consent), else 0."""
        if self.errors:
            return 2
        if self.violations or self.undeclared or (strict and self.before_consent):
            return 1
        return 0


def build_report(
    site: Site,
    runs: list[DecisionRun],
    policy: Policy | None,
    catalog: Catalog,
    *,
    policy_source: str | None = None,
    policy_location: str | None = None,
    revision: str | None = None,
    pages: int = 10,
) -> Report:
    classifier = Classifier(policy) if policy is not None else None
    consent_names = {n for run in runs for n in run.consent_cookies}
    if policy is not None and policy_source == "directory":
        consent_names.add(policy.site.consent_cookie.name)
    granted = {run.name: run.decision.granted for run in runs}

    items: dict[tuple[str, str, str], Item] = {}
    for run in runs:
        for c in run.cookies:
            item = items.setdefault(
                ("cookie", c.name, c.domain),
                Item("cookie", c.name, c.domain, c.third_party, c.set_by),
            )
            item.seen.setdefault(run.name, c.page)
            if c.set_by == "server":
                item.set_by = "server"
        for s in run.storage:
            item = items.setdefault(
                (s.kind, s.key, s.origin), Item(s.kind, s.key, s.origin, s.third_party, None)
            )
            item.seen.setdefault(run.name, s.page)

    matched: set[int] = set()
    for item in items.values():
        item.consent_cookie = item.kind == "cookie" and item.name in consent_names
        if classifier is not None and policy is not None:
            found = classifier.match(item.name)
            if found is not None:
                item.category, item.rule = found
                matched.add(id(found[1]))
            elif item.consent_cookie and policy.necessary:
                item.category = min(policy.necessary)  # the middleware's own, always kept
            if not item.consent_cookie:
                allow_undeclared = policy.site.undeclared == "allow"
                item.violated = [
                    d
                    for d in item.seen
                    if not (
                        (item.category is None and allow_undeclared)
                        or item.category in policy.necessary
                        or item.category in granted[d]
                    )
                ]
        if item.category is None and not item.consent_cookie:
            item.suggestion = catalog.lookup(item.name)
            item.draft = draft(item, item.suggestion, policy)

    stale = []
    if policy is not None:
        for key, category in policy.ordered():
            for rule in category.cookies:
                if id(rule) not in matched:
                    stale.append(
                        StaleRule(
                            f"{key}.toml", key, rule.kind, rule.label, rule.vendor, rule.third_party
                        )
                    )

    before = sorted(
        (run.name, host, run.hosts[host][0])
        for run in runs
        if run.name in BEFORE_CONSENT
        for host in run.third_party_hosts
    )
    return Report(
        site=site,
        runs=runs,
        policy=policy,
        policy_source=policy_source,
        policy_location=policy_location,
        revision=revision or (policy.revision if policy is not None else None),
        items=sorted(items.values(), key=lambda i: (_KIND_ORDER[i.kind], i.name, i.domain)),
        stale=stale,
        before_consent=before,
        pages=pages,
    )


# ---------------------------------------------------------------------- drafts


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def draft(item: Item, suggestion: Suggestion | None, policy: Policy | None) -> Draft:
    """A rule for ``item`` in the file of the category the catalog suggests (the site's own
    name for it, see :func:`~consent.catalog.mapping.site_category`)."""
    key = suggestion.category if suggestion is not None else None
    category = None
    if key is not None:
        category = (site_category(policy, key) if policy is not None else None) or key
    file = f"{category}.toml" if category else UNSORTED

    decisions = ", ".join(item.seen)
    what = {
        "cookie": "cookie",
        "localStorage": "localStorage key",
        "sessionStorage": "sessionStorage key",
    }
    by = (
        f", set by {'the server' if item.set_by == 'server' else 'a script'}" if item.set_by else ""
    )
    lines = [f"# {what[item.kind]} {item.name!r} on {item.domain}{by}; seen under {decisions}"]
    if suggestion is None:
        lines.append(f"# not in the {SOURCE}: choose its category and describe it")
    elif suggestion.ambiguous:
        lines.append(f"# {suggestion.summary()}")
        lines.append("# choose its category")
    else:
        lines.append(
            f"# {SOURCE}: {suggestion.vendor or 'no platform named'}, "
            f"{suggestion.catalog_category} -> {suggestion.category}"
        )
        if key == "necessary" and "Functional" in suggestion.catalog_category:
            lines.append(f"# {FUNCTIONAL_NOTE}")
    if item.kind != "cookie":
        lines.append("# (ePrivacy Art. 5(3) covers storage as it covers cookies)")
    lines.append("[[cookies]]")

    prefix = suggestion.pattern if suggestion is not None and suggestion.match == "prefix" else ""
    if prefix and item.name.startswith(prefix) and COOKIE_GLOB.fullmatch(prefix):
        lines.append(f"pattern = {_toml(prefix + '*')}")
    elif COOKIE_NAME.fullmatch(item.name):
        lines.append(f"name = {_toml(item.name)}")
    else:
        lines.append(f"regex = {_toml(re.escape(item.name))}")
    clear = suggestion is not None and not suggestion.ambiguous
    lines.append(f"vendor = {_toml(suggestion.vendor if clear and suggestion else '')}")
    lines.append(f"purpose = {_toml(suggestion.description if clear and suggestion else '')}")
    lines.append(f"duration = {_toml(suggestion.retention if clear and suggestion else '')}")
    if item.kind == "cookie" and item.third_party:
        lines.append(f"domain = {_toml(item.domain)}")
        lines.append("third_party = true")
    return Draft(file, category, "\n".join(lines) + "\n")

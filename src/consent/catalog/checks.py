"""``consent check``'s catalog warnings: "essential" cookies that the catalog calls Analytics or
Marketing (a finding of the EDPB cookie-banner taskforce: cookies labelled essential that are not).

A ``name`` rule is looked up as a cookie name (exact, then the longest prefix row). A ``pattern``
or ``regex`` rule is tested against every name in the catalog, a prefix row also with one
character appended (``_ga_`` as ``_ga_0``). Names the catalog lists under conflicting
categories are not held against a rule.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection
from dataclasses import dataclass

from ..policy import CookieRule, Policy
from .database import SOURCE, Catalog, Suggestion, default_catalog

__all__ = ["Misclassified", "necessary_warnings"]

#: Catalog categories that a necessary category must not hold.
CONSENTED = frozenset({"analytics", "marketing"})


@dataclass(frozen=True, slots=True)
class Misclassified:
    """A rule of a necessary category that matches catalog entries of Analytics or Marketing."""

    file: str
    index: int
    rule: CookieRule
    #: (catalog name, what the catalog says about it)
    matches: tuple[tuple[str, Suggestion], ...]

    def message(self) -> str:
        rule = self.rule
        where = f"{self.file}: cookies[{self.index}].{rule.kind} {rule.label!r}"
        said = "; ".join(
            f"{name!r}{' (prefix)' if s.match == 'prefix' else ''} as {s.catalog_category} "
            f"({s.vendor or 'no platform named'})"
            for name, s in self.matches[:3]
        )
        more = f" and {len(self.matches) - 3} more" if len(self.matches) > 3 else ""
        if rule.kind == "name":
            found = f"the {SOURCE} lists {said}"
        else:
            found = f"it matches names the {SOURCE} lists: {said}{more}"
        return (
            f"{where} is declared necessary, but {found}. A cookie that is not strictly "
            "necessary needs consent: move the rule to a category visitors can refuse, or, if "
            f"it is another cookie of the same name, pass --ignore {shlex.quote(rule.label)}"
        )


def necessary_warnings(
    policy: Policy, catalog: Catalog | None = None, *, ignore: Collection[str] = ()
) -> list[Misclassified]:
    """Rules of ``necessary = true`` categories that the catalog calls Analytics or Marketing;
    rules whose name, glob or regex is in ``ignore`` are skipped."""
    catalog = catalog or default_catalog()
    found: list[Misclassified] = []
    for key, category in policy.ordered():
        if not category.necessary:
            continue
        for index, rule in enumerate(category.cookies):
            if rule.label in ignore:
                continue
            matches = _matches(rule, catalog)
            if matches:
                found.append(Misclassified(f"{key}.toml", index, rule, matches))
    return found


def _matches(rule: CookieRule, catalog: Catalog) -> tuple[tuple[str, Suggestion], ...]:
    if rule.name is not None:
        suggestion = catalog.lookup(rule.name)
        if suggestion is not None and suggestion.category in CONSENTED:
            return ((suggestion.pattern, suggestion),)
        return ()
    rx = rule.compiled()
    out: dict[str, Suggestion] = {}
    for entry in catalog.entries:
        if entry.key not in CONSENTED or entry.name in out:
            continue
        if rx.fullmatch(entry.name) or (entry.prefix and rx.fullmatch(entry.name + "0")):
            suggestion = catalog.lookup(entry.name + ("0" if entry.prefix else ""))
            if suggestion is not None and suggestion.category in CONSENTED:
                out[entry.name] = suggestion
    return tuple(out.items())

"""Cookie name -> category.

Built once from a :class:`~consent.policy.Policy`: exact names go into a dict, globs and regexes
into one compiled alternation. Lookups are cached (bounded), so a site's usual handful of cookie
names costs one dict lookup each per request.

Precedence, from first to last:

1. an exact ``name`` rule;
2. a ``pattern`` (glob) or ``regex`` rule, in category display order then file order;
3. for names carrying a ``__Host-`` or ``__Secure-`` prefix with no rule of their own, the same
   steps for the name without the prefix;
4. otherwise the cookie is *undeclared* (``None``).

Names are case-sensitive, as browsers treat them.
"""

from __future__ import annotations

import re

from .policy import CookieRule, Policy

__all__ = ["PREFIXES", "Classifier", "Match"]

PREFIXES = ("__Host-", "__Secure-")
Match = tuple[str, CookieRule]
_CACHE_LIMIT = 4096


class Classifier:
    """Sorts cookie names into the categories of a policy."""

    __slots__ = ("_cache", "_combined", "_exact", "_group_match", "_loop")

    def __init__(self, policy: Policy) -> None:
        self._exact: dict[str, Match] = {}
        patterns: list[tuple[re.Pattern[str], Match]] = []
        for key, cat in policy.ordered():
            for rule in cat.cookies:
                if rule.name is not None:
                    self._exact.setdefault(rule.name, (key, rule))
                else:
                    patterns.append((rule.compiled(), (key, rule)))
        self._group_match: dict[str, Match] = {}
        self._combined: re.Pattern[str] | None = None
        self._loop: list[tuple[re.Pattern[str], Match]] = []
        if patterns:
            parts = []
            for i, (rx, match) in enumerate(patterns):
                self._group_match[f"_c{i}"] = match
                parts.append(f"(?P<_c{i}>(?:{rx.pattern}))")
            try:
                self._combined = re.compile("|".join(parts))
            except re.error:
                # A user regex with its own named groups cannot be combined; test one by one.
                self._loop = patterns
        self._cache: dict[str, Match | None] = {}

    def match(self, name: str) -> Match | None:
        """The ``(category, rule)`` a cookie name belongs to, or ``None`` when undeclared."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        found = self._lookup(name)
        if found is None:
            for prefix in PREFIXES:
                if name.startswith(prefix):
                    found = self._lookup(name[len(prefix) :])
                    break
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[name] = found
        return found

    def classify(self, name: str) -> str | None:
        """The category key of a cookie name, or ``None`` when the policy does not declare it."""
        found = self.match(name)
        return None if found is None else found[0]

    def _lookup(self, name: str) -> Match | None:
        found = self._exact.get(name)
        if found is not None:
            return found
        if self._combined is not None:
            m = self._combined.fullmatch(name)
            if m is not None and m.lastgroup is not None:
                return self._group_match[m.lastgroup]
            return None
        for rx, match in self._loop:
            if rx.fullmatch(name):
                return match
        return None

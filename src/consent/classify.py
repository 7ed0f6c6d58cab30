"""Cookie name -> category.

Built once from a :class:`~consent.policy.Policy`: exact names go into a dict, globs into one
compiled alternation that matches in linear time, and each regex rule is matched on its own
(its numbered groups and backreferences are its own). Lookups are cached (bounded by count and
by name length), so a site's usual handful of cookie names costs one dict lookup each per
request.

Precedence, from first to last:

1. an exact ``name`` rule;
2. a ``pattern`` (glob) or ``regex`` rule, in category display order then file order;
3. for names carrying a ``__Host-`` or ``__Secure-`` prefix with no rule of their own, the same
   steps for the name without the prefix;
4. otherwise the cookie is *undeclared* (``None``).

Names longer than :data:`REGEX_NAME_LIMIT` characters are not matched against regex rules (a
regex can take time that grows steeply with the name): unless an exact name or a glob declares
them, they are undeclared. Names are case-sensitive, as browsers treat them.
"""

from __future__ import annotations

import re

from .policy import CookieRule, Policy

__all__ = ["PREFIXES", "REGEX_NAME_LIMIT", "Classifier", "Match", "backtracking_risk"]

PREFIXES = ("__Host-", "__Secure-")
Match = tuple[str, CookieRule]
#: The longest cookie name (in characters) that regex rules are matched against.
REGEX_NAME_LIMIT = 256
_CACHE_LIMIT = 4096
_CACHE_NAME_MAX = 256  # longer names are classified every time, never kept


class Classifier:
    """Sorts cookie names into the categories of a policy."""

    __slots__ = ("_cache", "_exact", "_glob_match", "_globs", "_regexes")

    def __init__(self, policy: Policy) -> None:
        self._exact: dict[str, Match] = {}
        globs: list[str] = []
        # The glob alternation's group name -> (position among the pattern rules, match).
        self._glob_match: dict[str, tuple[int, Match]] = {}
        # (position among the pattern rules, compiled regex, match), in that order.
        self._regexes: list[tuple[int, re.Pattern[str], Match]] = []
        position = 0
        for key, cat in policy.ordered():
            for rule in cat.cookies:
                if rule.name is not None:
                    self._exact.setdefault(rule.name, (key, rule))
                    continue
                position += 1
                if rule.pattern is not None:
                    group = f"_g{position}"
                    self._glob_match[group] = (position, (key, rule))
                    globs.append(f"(?P<{group}>{rule.compiled().pattern})")
                else:
                    self._regexes.append((position, rule.compiled(), (key, rule)))
        # Globs have no groups of their own, and each alternative is linear: so is the whole.
        self._globs = re.compile("|".join(globs), re.DOTALL) if globs else None
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
        if len(name) <= _CACHE_NAME_MAX:  # real names are short; others are not worth keeping
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
        position = 1 << 62  # that of the first glob that matches
        if self._globs is not None:
            m = self._globs.fullmatch(name)
            if m is not None and m.lastgroup is not None:
                position, found = self._glob_match[m.lastgroup]
        if self._regexes and len(name) <= REGEX_NAME_LIMIT:
            for at, rx, match in self._regexes:
                if at > position:
                    break
                if rx.fullmatch(name):
                    return match
        return found


# What can make a regex backtrack badly: nested repetition, or several unbounded repetitions of
# characters that overlap. A heuristic over the pattern's text, for warnings only.
_BROAD_ESCAPES = frozenset("SWDw")
_RISKY_BROAD = 3


def backtracking_risk(pattern: str) -> str | None:
    """Why matching ``pattern`` can take time that grows steeply with the name's length
    (exponentially, or as a high power of it), or ``None`` when nothing suggests it.

    Found: a repeated group that itself holds a repetition or an alternation (``(a+)+``,
    ``(a|ab)*``), and three or more unbounded repetitions of broad atoms (``.``, ``\\S``,
    ``\\w``, ``[^...]``), as in ``.*_.*_.*_id``.
    """
    # Per open group: [holds a repetition, holds an alternation].
    stack: list[list[bool]] = [[False, False]]
    last: tuple[str, bool] | None = None  # the atom a quantifier would repeat: (kind, risky)
    broad = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            last = ("broad" if pattern[i + 1 : i + 2] in _BROAD_ESCAPES else "char", False)
            i += 2
            continue
        if c == "[":
            j = i + 1
            negated = pattern[j : j + 1] == "^"
            j += 1 if negated else 0
            if pattern[j : j + 1] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            last = ("broad" if negated else "char", False)
            i = j + 1
            continue
        if c == "(":
            stack.append([False, False])
            last = None
            i += 1
            if pattern[i : i + 1] == "?":  # (?:, (?P<name>, (?=, (?i) ...: skip to the body
                i += 1
                if pattern[i : i + 1] == "P" and pattern[i + 1 : i + 2] == "<":
                    i = pattern.find(">", i) + 1 or n
                elif pattern[i : i + 1] == "P" and pattern[i + 1 : i + 2] == "=":
                    end = pattern.find(")", i)
                    i = n if end < 0 else end
                elif pattern[i : i + 1] in ("<",) and pattern[i + 1 : i + 2] in ("=", "!"):
                    i += 2
                elif pattern[i : i + 1] in (":", "=", "!", ">"):
                    i += 1
            continue
        if c == ")":
            inner = stack.pop() if len(stack) > 1 else [False, False]
            stack[-1][0] = stack[-1][0] or inner[0]
            last = ("group", inner[0] or inner[1])
            i += 1
            continue
        if c == "|":
            stack[-1][1] = True
            last = None
            i += 1
            continue
        if c in "*+?{":
            bound = re.match(r"\{(\d*)(,?)(\d*)\}", pattern[i:]) if c == "{" else None
            if c == "{" and bound is None:  # a literal "{"
                last = ("char", False)
                i += 1
                continue
            if bound is not None:
                unbounded = bool(bound[2]) and not bound[3]
                repeats = unbounded or int(bound[3] or bound[1] or 0) > 1
                i += len(bound[0])
            else:
                unbounded = repeats = c != "?"
                i += 1
            if pattern[i : i + 1] in ("?", "+"):  # lazy or possessive
                i += 1
            if last is not None:
                if last[0] == "group" and last[1] and repeats:
                    return (
                        "a repeated group holds a repetition or an alternation (nested "
                        "quantifiers): matching can take exponentially long"
                    )
                if unbounded:
                    stack[-1][0] = True
                    if last[0] == "broad":
                        broad += 1
            last = None
            continue
        last = ("broad" if c == "." else "char", False)
        i += 1
    if broad >= _RISKY_BROAD:
        return (
            f"{broad} unbounded repetitions of '.' or other broad classes: matching can take "
            "time that grows as a high power of the name's length"
        )
    return None

"""How visitors read which cookies a rule covers: ``names starting with _ga_`` for a glob or a
simple regex, the rule's ``display`` text when the policy gives one.

A visitor cannot be expected to read ``_ga(_[A-Z0-9]+)?``. Globs and regexes made of literal
characters, character classes, quantifiers and one optional group are described by what their
names start with, end with or contain; any other regex keeps its own text (operators see the
regexes anyway, in ``consent declaration --format markdown|json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .i18n import ui_strings

if TYPE_CHECKING:
    from .policy import CookieRule

__all__ = ["Segment", "describe", "rule_segments", "segments_text"]

#: A piece of a rule's human form: (text, whether it is a cookie name or a part of one).
Segment = tuple[str, bool]

_VAR = None  # a variable part of a name (a class, a quantified atom, a wildcard)
# A parsed name shape: literal strings, _VAR, and optional groups (tuples of the same).
_Item = str | None | tuple["_Item", ...]

_META = set(".^$*+?{}[]\\|()")
_CLASS_ESCAPES = set("dDwWsS")


class _Unsupported(Exception):
    """A regex outside the simple forms described here."""


def _glob_items(glob: str) -> list[_Item]:
    return [_VAR if ch in "*?" else ch for ch in glob]


def _quantifier(regex: str, i: int) -> tuple[bool, int]:
    """Whether a quantifier starts at ``i`` (and where it ends): ``*``, ``+``, ``?``, ``{n}``,
    ``{n,}``, ``{n,m}``, each optionally lazy or possessive. ``(exactly once, end)`` for
    ``{1}``."""
    if i >= len(regex):
        return False, i
    ch = regex[i]
    if ch in "*+?":
        j = i + 1
    elif ch == "{":
        end = regex.find("}", i)
        body = regex[i + 1 : end] if end > 0 else ""
        if not body or not all(c.isdigit() or c == "," for c in body) or body.count(",") > 1:
            return False, i  # a literal "{"
        j = end + 1
        if body == "1":
            return False, j + (1 if j < len(regex) and regex[j] in "?+" else 0)
    else:
        return False, i
    if j < len(regex) and regex[j] in "?+":
        j += 1
    return True, j


def _regex_items(regex: str, i: int = 0, depth: int = 0) -> tuple[list[_Item], int]:
    """Parse ``regex`` from ``i`` up to the end or the ``)`` closing this group."""
    items: list[_Item] = []
    n = len(regex)
    while i < n:
        ch = regex[i]
        if ch == ")":
            if depth == 0:
                raise _Unsupported
            return items, i
        if ch == "|":
            raise _Unsupported  # alternatives: several shapes
        if ch in "^$" and (i == 0 or i == n - 1):  # (the whole name is matched anyway)
            i += 1
            continue
        atom: _Item
        if ch == "(":
            if regex.startswith("(?:", i):
                start = i + 3
            elif regex.startswith("(?", i):
                raise _Unsupported  # flags, lookarounds, named groups
            else:
                start = i + 1
            inner, end = _regex_items(regex, start, depth + 1)
            if end >= n or regex[end] != ")":
                raise _Unsupported
            i = end + 1
            if i < n and regex[i] == "?" and not (i + 1 < n and regex[i + 1] == "?"):
                items.append(tuple(inner))  # an optional group
                i += 1
                continue
            quantified, i = _quantifier(regex, i)
            if quantified:
                items.append(_VAR)
            else:
                items.extend(inner)
            continue
        if ch == "[":
            j = i + 1
            if j < n and regex[j] == "^":
                j += 1
            if j < n and regex[j] == "]":  # a "]" first is one of the class's characters
                j += 1
            while j < n and regex[j] != "]":
                j += 2 if regex[j] == "\\" else 1
            if j >= n:
                raise _Unsupported
            atom, i = _VAR, j + 1
        elif ch == ".":
            atom, i = _VAR, i + 1
        elif ch == "\\":
            if i + 1 >= n:
                raise _Unsupported
            nxt = regex[i + 1]
            if nxt in _CLASS_ESCAPES:
                atom = _VAR
            elif nxt.isalnum():
                raise _Unsupported  # \b, \A, back-references, \n ...
            else:
                atom = nxt
            i += 2
        elif ch in _META:
            raise _Unsupported  # a quantifier with nothing before it
        else:
            atom, i = ch, i + 1
        quantified, i = _quantifier(regex, i)
        items.append(_VAR if quantified else atom)
    if depth:
        raise _Unsupported  # an unclosed group
    return items, i


def _runs(items: list[_Item]) -> list[str | None]:
    """Consecutive literal characters joined; variable parts and optional groups as None."""
    out: list[str | None] = []
    for item in items:
        if isinstance(item, str):
            if out and isinstance(out[-1], str):
                out[-1] += item
            else:
                out.append(item)
        elif not out or out[-1] is not None:
            out.append(None)
    return out


def describe(kind: str, text: str) -> tuple[str, dict[str, str]] | None:
    """The human form of a glob (``kind == "pattern"``) or a regex: a translation key of
    :func:`consent.i18n.ui_strings` and the name parts it quotes, or ``None`` when the rule is
    not one of the simple forms."""
    if kind == "pattern":
        items = _glob_items(text)
    else:
        try:
            items, _ = _regex_items(text)
        except _Unsupported:
            return None
    if (
        len(items) >= 2
        and isinstance(items[-1], tuple)
        and all(isinstance(x, str) for x in items[:-1])
    ):
        # "name" then an optional "(suffix...)": that name, and names starting with the
        # name and the suffix's literal start (_ga(_[A-Z0-9]+)? -> _ga and names starting _ga_).
        name = "".join(x for x in items[:-1] if isinstance(x, str))
        inner = _runs(list(items[-1]))
        if len(inner) >= 2 and isinstance(inner[0], str) and all(x is None for x in inner[1:]):
            return "rule_name_and_starting", {"name": name, "prefix": name + inner[0]}
    runs = _runs(items)
    if not runs:
        return None
    if len(runs) == 1:
        return ("rule_name", {"name": runs[0]}) if runs[0] is not None else None
    first, last = runs[0], runs[-1]
    if first is not None and last is not None:
        return "rule_starting_ending", {"prefix": first, "suffix": last}
    if first is not None:
        return "rule_starting", {"prefix": first}
    if last is not None:
        return "rule_ending", {"suffix": last}
    middle = [r for r in runs if r is not None]
    return ("rule_containing", {"part": middle[0]}) if middle else None


def _fill(template: str, parts: dict[str, str]) -> list[Segment]:
    out: list[Segment] = []
    rest = template
    while rest:
        start = rest.find("{")
        end = rest.find("}", start)
        if start < 0 or end < 0 or rest[start + 1 : end] not in parts:
            out.append((rest, False))
            break
        if start:
            out.append((rest[:start], False))
        out.append((parts[rest[start + 1 : end]], True))
        rest = rest[end + 1 :]
    return out


def rule_segments(
    rule: CookieRule, language: str | None, words: Mapping[str, str] | None = None
) -> list[Segment]:
    """What a visitor reads in the declaration's name column for ``rule``, in ``language``:
    its ``display`` text, its name, the human form of its glob or regex, or else the glob or
    regex itself followed by "(pattern)". ``words`` are the interface words to phrase it with
    (a site's, :meth:`consent.policy.Policy.ui_strings`); the bundled ones by default."""
    display = rule.text(language).display
    if display:
        return [(display, False)]
    if rule.kind == "name":
        return [(rule.label, True)]
    t = ui_strings(language or "en") if words is None else words
    found = describe(rule.kind, rule.label)
    if found is None:
        return [(rule.label, True), (f" ({t['cookie_pattern']})", False)]
    key, parts = found
    if key == "rule_name":  # a regex of one name only
        return [(parts["name"], True)]
    return _fill(t[key], parts)


def segments_text(segments: list[Segment]) -> str:
    return "".join(text for text, _ in segments)

"""The interface words of the banner and of the pages the server renders, per language.

They come from the bundled translation files (``banner/i18n/<lang>.json``) and, over those,
from the site's own files (``<policy>/banner/<lang>.json``), so a site shows one wording
whether or not the visitor runs JavaScript.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from urllib.parse import parse_qsl

__all__ = [
    "available_languages",
    "bundled_keys",
    "merge_words",
    "pick_language",
    "ui_strings",
]


@cache
def available_languages() -> frozenset[str]:
    """The languages the package brings words for."""
    root = resources.files("consent") / "banner" / "i18n"
    return frozenset(item.name[:-5] for item in root.iterdir() if item.name.endswith(".json"))


@cache
def _bundled(language: str) -> dict[str, str]:
    root = resources.files("consent") / "banner" / "i18n"
    if language not in available_languages():
        return {}
    found: dict[str, str] = json.loads((root / f"{language}.json").read_text(encoding="utf-8"))
    return found


def bundled_keys() -> frozenset[str]:
    """Every key of the bundled English file: the words a complete language has."""
    return frozenset(_bundled("en"))


@cache
def ui_strings(language: str) -> dict[str, str]:
    """The bundled strings for ``language``, completed from English for any key it lacks."""
    return merge_words(language, {})


def merge_words(language: str, site: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The words for ``language``: bundled English, the site's English, the bundled
    ``language``, the site's ``language``, each over the one before (so a key a language
    lacks comes from English, the site's English wording included)."""
    strings = dict(_bundled("en"))
    strings.update(site.get("en", {}))
    if language != "en":
        strings.update(_bundled(language))
        strings.update(site.get(language, {}))
    return strings


def _primary(tag: str) -> str:
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return primary if primary.isascii() and primary.isalpha() and len(primary) <= 3 else ""


def pick_language(
    query_string: bytes,
    accept_language: str | None,
    default: str,
    known: frozenset[str] = frozenset(),
    offered: frozenset[str] | None = None,
) -> str:
    """``?lang=`` first, then the browser's ``Accept-Language`` (first listed), then the site's
    default language. Only a language there is a text for counts: the bundled translations, and
    ``known`` (the policy's translations); anything else would be recorded on a receipt as the
    language the visitor read while they read the default. ``offered`` (the site's
    ``[banner] languages``, when set) replaces both: only those languages are chosen."""
    have = (available_languages() | known) if offered is None else offered
    for key, value in parse_qsl(query_string.decode("latin-1")):
        if key == "lang" and _primary(value) in have:
            return _primary(value)
    if accept_language:
        for part in accept_language.split(",")[:8]:
            lang = _primary(part.split(";")[0])
            if lang in have:
                return lang
    return _primary(default) or "en"

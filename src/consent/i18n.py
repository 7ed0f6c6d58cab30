"""Interface strings for what the server renders itself (no-JavaScript form, declaration, receipt page).

They come from the same translation files the banner uses (``banner/i18n/<lang>.json``), so a site
shows one wording whether or not the visitor runs JavaScript.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from urllib.parse import parse_qsl

__all__ = ["available_languages", "pick_language", "ui_strings"]


@cache
def available_languages() -> frozenset[str]:
    root = resources.files("consent") / "banner" / "i18n"
    return frozenset(item.name[:-5] for item in root.iterdir() if item.name.endswith(".json"))


@cache
def ui_strings(language: str) -> dict[str, str]:
    """The strings for ``language``, completed from English for any key it lacks."""
    root = resources.files("consent") / "banner" / "i18n"
    strings: dict[str, str] = json.loads((root / "en.json").read_text(encoding="utf-8"))
    if language != "en" and language in available_languages():
        strings.update(json.loads((root / f"{language}.json").read_text(encoding="utf-8")))
    return strings


def _primary(tag: str) -> str:
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return primary if primary.isascii() and primary.isalpha() and len(primary) <= 3 else ""


def pick_language(
    query_string: bytes,
    accept_language: str | None,
    default: str,
    known: frozenset[str] = frozenset(),
) -> str:
    """``?lang=`` first, then the browser's ``Accept-Language`` (first listed), then the site's
    default language. Only a language there is a text for counts: the bundled translations, and
    ``known`` (the policy's translations); anything else would be recorded on a receipt as the
    language the visitor read while they read the default."""
    have = available_languages() | known
    for key, value in parse_qsl(query_string.decode("latin-1")):
        if key == "lang" and _primary(value) in have:
            return _primary(value)
    if accept_language:
        for part in accept_language.split(",")[:8]:
            lang = _primary(part.split(";")[0])
            if lang in have:
                return lang
    return _primary(default) or "en"

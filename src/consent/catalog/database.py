"""The Open Cookie Database: its rows, read on first use, and lookups by cookie or storage-key name.

A lookup tries the exact name first, then the longest prefix row (``_ga_`` for ``_ga_ABC123``),
then the same for a name without its ``__Host-`` or ``__Secure-`` prefix. When the rows that
answer disagree on the category (``token`` is Marketing for Adform, Functional for Xandr) the
answer is *ambiguous*: every row is shown, none is picked.

The database's quirks handled on reading: names are trimmed (one ends in a tab) and lose soft
hyphens; a name ending in ``*`` (``SSPR_*``) or in a ``%...%`` placeholder is a prefix row
whatever its "Wildcard match" column says; rows repeated with the same platform and category
count once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

__all__ = [
    "CATEGORY_KEYS",
    "FUNCTIONAL_NOTE",
    "SOURCE",
    "Catalog",
    "Entry",
    "Suggestion",
    "default_catalog",
    "lookup",
]

#: What the shipped data is called in every suggestion.
SOURCE = "Open Cookie Database"
#: The database's categories as the policy's category keys. Functional, Security and Necessary
#: all mean "strictly necessary" in the database's own definitions.
CATEGORY_KEYS: Mapping[str, str] = {
    "Functional": "necessary",
    "Security": "necessary",
    "Necessary": "necessary",
    "Analytics": "analytics",
    "Marketing": "marketing",
    "Personalization": "preferences",
}
#: Said wherever a Functional row would put a name into ``necessary``.
FUNCTIONAL_NOTE = (
    "the catalog's Functional rows include identifiers that are not strictly necessary: "
    "check it before declaring it necessary"
)
_FILE = "open-cookie-database.csv"
_HOST_PREFIXES = ("__Host-", "__Secure-")
_PLACEHOLDER = re.compile(r"%[A-Za-z_]+%$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the database."""

    id: str
    platform: str
    #: The database's own category word (``Functional``, ``Analytics``, ...).
    category: str
    #: The policy key it maps to (see :data:`CATEGORY_KEYS`).
    key: str
    #: The cookie or storage-key name, or the prefix of a prefix row.
    name: str
    prefix: bool
    domain: str
    description: str
    retention: str
    controller: str
    privacy_url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "catalog_category": self.category,
            "category": self.key,
            "name": self.name,
            "prefix": self.prefix,
            "domain": self.domain,
            "description": self.description,
            "retention": self.retention,
            "controller": self.controller,
            "privacy_url": self.privacy_url,
        }


@dataclass(frozen=True, slots=True)
class Suggestion:
    """What the database says about a name: the rows that answer, and how they matched."""

    entries: tuple[Entry, ...]
    match: Literal["exact", "prefix"]

    @property
    def pattern(self) -> str:
        """The database's name that matched (the prefix itself for a prefix match)."""
        return self.entries[0].name

    @property
    def ambiguous(self) -> bool:
        """The rows disagree on the policy category."""
        return len({e.key for e in self.entries}) > 1

    @property
    def category(self) -> str | None:
        """The policy key, or ``None`` when the rows disagree."""
        return None if self.ambiguous else self.entries[0].key

    @property
    def catalog_category(self) -> str:
        """The database's own category word(s), as it wrote them."""
        return " / ".join(dict.fromkeys(e.category for e in self.entries))

    @property
    def vendor(self) -> str:
        return ", ".join(dict.fromkeys(e.platform for e in self.entries if e.platform))

    @property
    def description(self) -> str:
        return self.entries[0].description

    @property
    def retention(self) -> str:
        return self.entries[0].retention

    def summary(self) -> str:
        """One line: ``Google Analytics, Analytics -> analytics, 2 years: ID used to ...``."""
        if self.ambiguous:
            rows = "; ".join(f"{e.platform or '?'} ({e.category})" for e in self.entries)
            return f"ambiguous: the {SOURCE} lists it under conflicting categories: {rows}"
        match = f" (prefix {self.pattern!r})" if self.match == "prefix" else ""
        retention = f", {self.retention}" if self.retention else ""
        return (
            f"{self.vendor or '?'}, {self.catalog_category} -> {self.category}{retention}"
            f"{match}: {self.description}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "catalog_category": self.catalog_category,
            "vendor": self.vendor,
            "description": self.description,
            "retention": self.retention,
            "source": SOURCE,
            "match": self.match,
            "pattern": self.pattern,
            "ambiguous": self.ambiguous,
            "entries": [e.to_json() for e in self.entries],
        }


class Catalog:
    """The rows, indexed for lookups: exact names in a dict, prefix rows bucketed by their
    first characters (a name is compared with the few prefixes that begin like it)."""

    __slots__ = ("_bucket", "_bucket_rows", "_exact", "entries")

    def __init__(self, entries: Iterable[Entry]) -> None:
        kept: dict[tuple[str, bool, str, str], Entry] = {}
        for entry in entries:
            kept.setdefault((entry.name, entry.prefix, entry.platform, entry.category), entry)
        self.entries: tuple[Entry, ...] = tuple(kept.values())
        exact: dict[str, list[Entry]] = {}
        prefixes: dict[str, list[Entry]] = {}
        for entry in self.entries:
            (prefixes if entry.prefix else exact).setdefault(entry.name, []).append(entry)
        self._exact = {name: Suggestion(tuple(rows), "exact") for name, rows in exact.items()}
        # The bucket key is as long as the shortest prefix, so every prefix has one.
        self._bucket = min((len(p) for p in prefixes), default=1)
        buckets: dict[str, list[tuple[str, Suggestion]]] = {}
        for name in sorted(prefixes, key=len, reverse=True):  # longest first
            rows = Suggestion(tuple(prefixes[name]), "prefix")
            buckets.setdefault(name[: self._bucket], []).append((name, rows))
        self._bucket_rows = {k: tuple(v) for k, v in buckets.items()}

    @classmethod
    def from_csv(cls, text: str) -> Catalog:
        """Read the database's CSV (its column names, as published)."""
        return cls(_entries(text))

    def lookup(self, name: str) -> Suggestion | None:
        """Exact name, then the longest prefix row; then the same without a ``__Host-`` or
        ``__Secure-`` prefix. ``None`` when the database does not know the name."""
        found = self._find(name)
        if found is None and name.startswith(_HOST_PREFIXES):
            found = self._find(name.split("-", 1)[1])
        return found

    def lookup_by_scan(self, name: str) -> Suggestion | None:
        """The same answer as :meth:`lookup`, found by reading every row (the reference the
        index is tested and measured against)."""
        for candidate in (name, name.split("-", 1)[1] if name.startswith(_HOST_PREFIXES) else None):
            if candidate is None:
                continue
            exact = [e for e in self.entries if not e.prefix and e.name == candidate]
            if exact:
                return Suggestion(tuple(exact), "exact")
            longest = max(
                (len(e.name) for e in self.entries if e.prefix and candidate.startswith(e.name)),
                default=0,
            )
            if longest:
                rows = [e for e in self.entries if e.prefix and e.name == candidate[:longest]]
                return Suggestion(tuple(rows), "prefix")
        return None

    def _find(self, name: str) -> Suggestion | None:
        found = self._exact.get(name)
        if found is not None:
            return found
        for prefix, suggestion in self._bucket_rows.get(name[: self._bucket], ()):
            if name.startswith(prefix):
                return suggestion
        return None


def _entries(text: str) -> Iterable[Entry]:
    for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff"))):
        name = (row.get("Cookie / Data Key name") or "").replace("\u00ad", "").strip()
        prefix = (row.get("Wildcard match") or "").strip() == "1"
        if name.endswith("*"):
            name, prefix = name.rstrip("*"), True
        placeholder = _PLACEHOLDER.search(name)
        if placeholder is not None:
            name, prefix = name[: placeholder.start()], True
        category = (row.get("Category") or "").strip()
        key = CATEGORY_KEYS.get(category)
        if not name or key is None:
            continue
        yield Entry(
            id=(row.get("ID") or "").strip(),
            platform=(row.get("Platform") or "").strip(),
            category=category,
            key=key,
            name=name,
            prefix=prefix,
            domain=(row.get("Domain") or "").strip(),
            description=" ".join((row.get("Description") or "").split()),
            retention=(row.get("Retention period") or "").strip(),
            controller=(row.get("Data Controller") or "").strip(),
            privacy_url=(row.get("User Privacy & GDPR Rights Portals") or "").strip(),
        )


@cache
def default_catalog() -> Catalog:
    """The database shipped with the package, read on the first call."""
    text = (resources.files(__package__) / _FILE).read_text(encoding="utf-8")
    return Catalog.from_csv(text)


def lookup(name: str) -> Suggestion | None:
    """:meth:`Catalog.lookup` in the shipped database."""
    return default_catalog().lookup(name)

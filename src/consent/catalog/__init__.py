"""The known-cookie catalog: the Open Cookie Database shipped with the package, read on first use.

``lookup(name)`` says what the database knows about a cookie or storage-key name (exact name
first, then the longest prefix row), with its category mapped onto the policy's keys. Nothing on
the request path imports this package when it is imported itself; the middleware asks it only
when it writes the log line of an undeclared cookie.
"""

from __future__ import annotations

from .database import CATEGORY_KEYS, SOURCE, Catalog, Entry, Suggestion, default_catalog, lookup

__all__ = [
    "CATEGORY_KEYS",
    "SOURCE",
    "Catalog",
    "Entry",
    "Suggestion",
    "default_catalog",
    "lookup",
]

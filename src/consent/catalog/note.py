"""The catalog's word on an undeclared cookie, for the middleware's log line.

:func:`log_note` is handed to the logger as an argument: the catalog is asked (and, the first
time, read) only when the line is written, once per name, never on a request that writes none.
"""

from __future__ import annotations

from .database import SOURCE, lookup

__all__ = ["log_note"]


class _Note:
    __slots__ = ("_name", "_text")

    def __init__(self, name: str) -> None:
        self._name = name
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            try:
                self._text = _describe(self._name)
            except Exception:  # a log line must be written whatever the catalog does
                self._text = ""
        return self._text


def _describe(name: str) -> str:
    found = lookup(name)
    if found is None:
        return f"; the {SOURCE} does not know it"
    if found.ambiguous:
        rows = ", ".join(f"{e.platform or '?'} ({e.category})" for e in found.entries)
        return f"; the {SOURCE} lists it under conflicting categories: {rows}"
    retention = f", {found.retention}" if found.retention else ""
    prefix = f" (prefix {found.pattern!r})" if found.match == "prefix" else ""
    return (
        f"; the {SOURCE} knows it: {found.vendor or 'no platform named'}, "
        f"{found.catalog_category} -> {found.category}{retention}{prefix}"
    )


def log_note(name: str) -> object:
    """What the catalog says about ``name``, as text when the log line is formatted."""
    return _Note(name)

"""The statistics columns checked against each receipt's signed body, during a verification.

The walk of the log reads each receipt with its statistics row (``iter_values(stats=True)``,
one query) and compares the two on the body text, the way :class:`~consent.audit.fast._Fast`
checks the other columns: a sealed body is canonical JSON, so ``"method":"banner"`` occurs in
it exactly when its method is ``banner``. What it cannot settle that way (no statistics row, a
value that differs, a row that took the full way) it leaves to the database, which derives
the columns from the body again (:func:`consent.store.statistics_check.sqlite_mismatches`) and words the
findings. Statistics rows without their receipt are looked for only when there are more of
them than the receipts that were found with one.
"""

from __future__ import annotations

import json
from typing import Any

from ..receipts import ChainHead
from ..store import ReceiptStore, StoreUnavailable
from ..store.statistics_check import (
    Only,
    file_categories,
    file_mismatches,
    url_categories,
    url_mismatches,
)
from .fast import _json_str
from .findings import Finding
from .rows import Values

__all__ = ["StatsCheck", "stats_check", "stats_findings"]

_MAX_SUSPECTS = 20_000  # more rows than this to look at again: the database checks them all
_MAX_CACHED = 4096


class StatsCheck:
    """The statistics rows met during a walk: how many receipts had one (``matched``) and
    which receipts' rows the database must look at (``suspects``, or ``everything``)."""

    def __init__(self, categories: dict[str, int]) -> None:
        self.categories = categories  # each key's bit (consent_stats_categories)
        self.masks = {key: 1 << (bit - 1) for key, bit in categories.items()}
        self.matched = 0
        self.suspects: list[int] = []
        self.everything = False
        # The statistics values of a row (granted, refused, method, language, gpc, revision):
        # the texts of a body that hold them (learned from the first body with them).
        self._texts: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self._at = [0] * 6  # where each text was found in the last body

    def checked(self, values: Values) -> None:
        """A row of ``iter_values(stats=True)`` that passed :meth:`_Fast.check` (its body is
        sealed, its receipt id, subject, event and timestamp are the body's)."""
        subject = values[2]
        if subject == "":
            return  # a chain record: a statistics row of its seq is counted as an orphan
        if values[10] is None:
            self.suspect(values[0])
            return
        self.matched += 1
        if not (
            values[10] == values[3]
            and values[11] == subject
            and values[12] == values[4]
            and self._holds(values[5], values[13:19])
        ):
            self.suspect(values[0])

    def unchecked(self, values: Values) -> None:
        """A row that takes the full way: the database compares its statistics row."""
        if values[2] == "":
            return
        if values[10] is not None:
            self.matched += 1
        if type(values[0]) is int:
            self.suspect(values[0])
        else:
            self.everything = True

    def suspect(self, seq: int) -> None:
        if len(self.suspects) < _MAX_SUSPECTS:
            self.suspects.append(seq)
        else:
            self.everything = True

    def only(self) -> Only:
        """What the database has left to check."""
        return Only(None if self.everything else self.suspects, self.matched)

    def _holds(self, body: str, stored: tuple[Any, ...]) -> bool:
        """Whether the sealed ``body`` says ``stored`` (granted, refused, method, language,
        gpc, revision): each field's text is found in it, where it was in the last body or
        anywhere (a top-level key occurs once in a canonical body, and in no nested object)."""
        texts = self._texts.get(stored)
        if texts is None:
            return self._learn(body, stored)
        at = self._at
        for which, text in enumerate(texts):
            if not body.startswith(text, at[which]):
                found = body.find(text)
                if found < 0:
                    return self._learn(body, stored)
                at[which] = found
        return True

    def _learn(self, body: str, stored: tuple[Any, ...]) -> bool:
        """:meth:`_holds` the slower way, reading the arrays of keys; remembers the texts."""
        granted, refused, method, language, gpc, revision = stored
        if type(gpc) is not int or gpc not in (0, 1):
            return False
        texts = ['"gpc":true' if gpc else '"gpc":false']
        for name, value in (("method", method), ("language", language), ("revision", revision)):
            if type(value) is not str:
                return False
            texts.append(f'"{name}":{_json_str(value)}')
        for name, bits in (("granted", granted), ("refused", refused)):
            text = self._array(body, name)
            if text is None or self._bits(text) != bits:
                return False
            texts.append(text)
        if not all(text in body for text in texts[:4]):
            return False
        if len(self._texts) >= _MAX_CACHED:
            self._texts.clear()
        self._texts[stored] = tuple(texts)
        return True

    @staticmethod
    def _array(body: str, name: str) -> str | None:
        """The text of the top-level array ``name`` (``"name":[...]``), or None."""
        opening = f'"{name}":['
        start = body.find(opening)
        if start < 0:
            return None
        end = body.find("]", start)  # a "]" inside a key ends no array: loads() then fails
        return None if end < 0 else body[start : end + 1]

    def _bits(self, text: str) -> int:
        """The bit set of the category keys in ``"name":[...]`` (-1: not strings only)."""
        try:
            keys = json.loads(text[text.index(":") + 1 :])
        except ValueError:
            return -1
        bits = 0
        for key in keys:
            if type(key) is not str:
                return -1
            bits |= self.masks.get(key, 0)
        return bits


def stats_check(store: ReceiptStore) -> StatsCheck | None:
    """A check of the statistics columns of ``store`` for the walk of its log; None for a
    store without them (made by an earlier version and not migrated yet, or kept in memory).
    Read after the chain state, it knows every category of the receipts up to its head."""
    try:
        categories = _read(store, file_categories, url_categories)
    except Exception as exc:  # sqlite3 or psycopg
        raise StoreUnavailable(f"reading the statistics columns: {exc}") from exc
    return None if categories is None else StatsCheck(categories)


def _read(store: ReceiptStore, from_file: Any, from_url: Any, *args: Any) -> Any:
    """``from_file(path, *args)`` for a SQLite store (the file the store itself reads),
    ``from_url(url, *args)`` for PostgreSQL, None for any other store."""
    path = getattr(store, "path", None)
    url = getattr(store, "url", "")
    if isinstance(path, str):
        return from_file(path, *args)
    if url.partition("://")[0].lower() in ("postgresql", "postgres"):
        return from_url(url, *args)
    return None


def stats_findings(
    store: ReceiptStore, head: ChainHead | None, walked: StatsCheck | None = None
) -> list[Finding]:
    """A finding per receipt whose statistics columns (:mod:`consent.store.statistics`) differ
    from its signed body, up to the signed head, and per statistics row without its receipt;
    none for a store without the columns. ``walked``: what the walk of the log found (only
    the rows it could not settle are looked at again); None: every row is.
    """
    max_seq = head.seq if head is not None else None
    only = walked.only() if walked is not None else None
    try:
        found = _read(store, file_mismatches, url_mismatches, max_seq, only) or []
    except Exception as exc:  # sqlite3 or psycopg: the walk before this read the store just now
        raise StoreUnavailable(f"reading the statistics columns: {exc}") from exc
    return [
        Finding(reason, seq, receipt_id or None, "column:stats")
        for seq, receipt_id, reason in found
    ]

"""The statistics columns checked against each receipt's signed body, during a verification."""

from __future__ import annotations

from ..receipts import ChainHead
from ..stats.schema import file_mismatches, url_mismatches
from ..store import ReceiptStore, StoreUnavailable
from .findings import Finding

__all__ = ["stats_findings"]


def stats_findings(store: ReceiptStore, head: ChainHead | None) -> list[Finding]:
    """A finding per receipt whose statistics columns (:mod:`consent.stats.schema`) differ
    from its signed body, up to the signed head; none for a store without the columns (made
    by an earlier version and not migrated yet, or kept in memory).

    A SQLite store is read from the file the store itself reads (``store.path``), as the walk
    of the rows was; a PostgreSQL store from its URL, as its own connections are opened.
    """
    max_seq = head.seq if head is not None else None
    path = getattr(store, "path", None)
    url = getattr(store, "url", "")
    try:
        if isinstance(path, str):
            found = file_mismatches(path, max_seq)
        elif url.partition("://")[0].lower() in ("postgresql", "postgres"):
            found = url_mismatches(url, max_seq)
        else:
            return []
    except Exception as exc:  # sqlite3 or psycopg: the walk before this read the store just now
        raise StoreUnavailable(f"reading the statistics columns: {exc}") from exc
    return [
        Finding(reason, seq, receipt_id or None, "column:stats")
        for seq, receipt_id, reason in found
    ]

"""The statistics columns checked against the log, in the database (``consent verify``).

Receipts whose statistics row is missing or differs from what the signed body says, statistics
rows without their receipt, and decisions whose ``next_ts`` is not the time of the visitor's
next decision: :func:`sqlite_mismatches` and :func:`postgres_mismatches` find them, on a
connection, or :func:`file_mismatches` and :func:`url_mismatches` on a store. The columns are
derived from the body again with the SQL the triggers fill them with
(:mod:`consent.store.statistics`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from .statistics import (
    PG_HAS_TRIGGERS,
    STATS_NAMES,
    next_decisions,
    pg_derived,
    sqlite_derived,
    sqlite_fields,
    sqlite_has_triggers,
    sqlite_is_receipt,
)

__all__ = [
    "Only",
    "file_categories",
    "file_mismatches",
    "postgres_mismatches",
    "sqlite_mismatches",
    "stats_rows",
    "url_categories",
    "url_mismatches",
]


def _difference(names: list[str], derived: Any, stored: Any) -> str:
    if stored[0] is None:
        return "no statistics row (consent_stats) for this receipt"
    differ = [name for name, want, have in zip(names, derived, stored, strict=True) if want != have]
    return "statistics columns differ from the signed body: " + ", ".join(differ)


class Only:
    """What a mismatch query checks (up to ``max_seq``), after a verification has compared
    most rows itself: the receipts ``seqs`` (None: all), and statistics rows without their
    receipt when there are more statistics rows than the ``matched`` receipts it found with
    one (None: always)."""

    def __init__(self, seqs: list[int] | None = None, matched: int | None = None) -> None:
        self.seqs = seqs
        self.matched = matched

    def clauses(self, max_seq: int | None) -> list[str]:
        """``AND`` clauses (on ``r.seq``) for each query: one, or one per part of ``seqs``."""
        limit = "" if max_seq is None else f" AND r.seq <= {int(max_seq)}"
        if self.seqs is None:
            return [limit]
        ordered = sorted(set(self.seqs))
        return [
            f"{limit} AND r.seq IN ({', '.join(str(int(s)) for s in ordered[i : i + 500])})"
            for i in range(0, len(ordered), 500)
        ]


def _mismatches(
    conn: Any, queries: list[str], max_seq: int | None, only: Only
) -> Iterator[tuple[int, str, str]]:
    """The findings of the mismatch ``queries`` (rows of receipt id, the derived columns, the
    stored ones), then every statistics row without its receipt; SQLite and PostgreSQL alike."""
    n = len(STATS_NAMES)
    for query in queries:
        for found in conn.execute(query):
            want, have = found[1 : 1 + n], found[1 + n :]
            yield int(want[0]), str(found[0]), _difference(STATS_NAMES, want, have)
    # Every statistics row belongs to a receipt found with it: nothing else to look for.
    whole = only.matched is not None and stats_rows(conn, max_seq) == only.matched
    if _has_next(conn):  # not before a store made by an earlier version is migrated
        yield from _next_mismatches(conn, max_seq, whole)
    if whole:
        return
    orphan_limit = "" if max_seq is None else f" AND s.seq <= {int(max_seq)}"
    for (seq,) in conn.execute(
        "SELECT s.seq FROM consent_stats AS s LEFT JOIN consent_receipts AS r ON r.seq = s.seq"
        f" WHERE (r.seq IS NULL OR r.subject_id = ''){orphan_limit} ORDER BY s.seq"
    ):
        yield int(seq), "", "a statistics row without its receipt"


def _next_mismatches(conn: Any, max_seq: int | None, whole: bool) -> Iterator[tuple[int, str, str]]:
    """The decisions whose ``next_ts`` is not the time of the visitor's next decision (the
    visitor's rows after ``max_seq`` read too: a decision appended since may follow one
    before it). Unless the statistics rows are known to be ``whole`` (each with its receipt),
    those without a receipt are left out."""
    where = "" if whole else " WHERE seq IN (SELECT seq FROM consent_receipts)"
    limit = "" if max_seq is None else f" AND w.seq <= {int(max_seq)}"
    differs = "IS NOT" if isinstance(conn, sqlite3.Connection) else "IS DISTINCT FROM"
    for seq, receipt_id in conn.execute(
        f"SELECT w.seq, r.receipt_id FROM {next_decisions(where)} AS w"
        " LEFT JOIN consent_receipts AS r ON r.seq = w.seq"
        f" WHERE w.next_ts {differs} w.nxt{limit} ORDER BY w.seq"
    ):
        yield int(seq), str(receipt_id or ""), _NEXT_DIFFERS


def _has_next(conn: Any) -> bool:
    """Whether the statistics columns have ``next_ts`` (SQLite and PostgreSQL)."""
    if isinstance(conn, sqlite3.Connection):
        query = "SELECT COUNT(*) FROM pragma_table_info('consent_stats') WHERE name = 'next_ts'"
    else:
        query = (
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = 'consent_stats' AND column_name = 'next_ts'"
        )
    return int(conn.execute(query).fetchone()[0]) == 1


_NEXT_DIFFERS = "statistics column next_ts is not the time of this visitor's next decision"


def stats_rows(conn: Any, max_seq: int | None) -> int:
    """How many statistics rows there are up to ``max_seq`` (SQLite and PostgreSQL)."""
    limit = "" if max_seq is None else f" WHERE seq <= {int(max_seq)}"
    found = conn.execute(f"SELECT COUNT(*) FROM consent_stats{limit}").fetchone()
    return int(found[0])


def sqlite_mismatches(
    conn: sqlite3.Connection, max_seq: int | None, only: Only | None = None
) -> Iterator[tuple[int, str, str]]:
    """(seq, receipt_id, what differs) for every receipt whose statistics row is missing or
    differs from what its body says, and every statistics row without its receipt."""
    only = only or Only()
    derived = ", ".join(f"{e} AS d{i}" for i, e in enumerate(sqlite_derived()))
    stored = ", ".join(f"s.{name}" for name in STATS_NAMES)
    differs = " OR ".join(f"d.d{i} IS NOT s.{name}" for i, name in enumerate(STATS_NAMES))
    queries = []
    for limit in only.clauses(max_seq):
        receipts = f"consent_receipts AS r WHERE {sqlite_is_receipt('r')}{limit}"
        queries.append(
            f"SELECT r.receipt_id, d.*, {stored} FROM"
            f" (SELECT {derived} FROM {sqlite_fields(receipts, 'r.seq', 'r.body')}) AS d"
            " JOIN consent_receipts AS r ON r.seq = d.d0"
            f" LEFT JOIN consent_stats AS s ON s.seq = d.d0 WHERE s.seq IS NULL OR {differs}"
            " ORDER BY d.d0"
        )
    return _mismatches(conn, queries, max_seq, only)


def postgres_mismatches(
    conn: Any, max_seq: int | None, only: Only | None = None
) -> Iterator[tuple[int, str, str]]:
    """:func:`sqlite_mismatches` for PostgreSQL."""
    only = only or Only()
    derived = ", ".join(f"{e} AS d{i}" for i, e in enumerate(pg_derived("p.seq", "p.b")))
    stored = ", ".join(f"s.{name}" for name in STATS_NAMES)
    differs = " OR ".join(f"d.d{i} IS DISTINCT FROM s.{name}" for i, name in enumerate(STATS_NAMES))
    # Each body parsed once (MATERIALIZED: not once per expression using it).
    queries = [
        "WITH p AS MATERIALIZED (SELECT r.seq, r.receipt_id, consent_stats_json(r.body) AS b"
        f" FROM consent_receipts AS r WHERE r.subject_id <> ''{limit})"
        f" SELECT d.*, {stored} FROM (SELECT p.receipt_id, {derived} FROM p"
        " WHERE jsonb_typeof(p.b) = 'object') AS d"
        f" LEFT JOIN consent_stats AS s ON s.seq = d.d0 WHERE s.seq IS NULL OR {differs}"
        " ORDER BY d.d0"
        for limit in only.clauses(max_seq)
    ]
    return _mismatches(conn, queries, max_seq, only)


def _categories(conn: Any) -> dict[str, int]:
    return {
        str(k): int(b) for b, k in conn.execute("SELECT bit, key FROM consent_stats_categories")
    }


def file_categories(path: str) -> dict[str, int] | None:
    """The bit of each category key of the SQLite store at ``path``; None for a store
    without statistics columns yet (made by an earlier version and not migrated)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return _categories(conn) if sqlite_has_triggers(conn) else None
    finally:
        conn.close()


def url_categories(url: str) -> dict[str, int] | None:
    """:func:`file_categories` for the PostgreSQL store at ``url``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        found = pg.execute(PG_HAS_TRIGGERS).fetchone()
        if found is None or int(found[0]) != 3:
            return None
        return _categories(pg)


def file_mismatches(
    path: str, max_seq: int | None, only: Only | None = None
) -> list[tuple[int, str, str]]:
    """:func:`sqlite_mismatches` for the SQLite file at ``path``, read only; nothing for a
    store without statistics columns yet (made by an earlier version and not migrated)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        if not sqlite_has_triggers(conn):
            return []
        return list(sqlite_mismatches(conn, max_seq, only))
    finally:
        conn.close()


def url_mismatches(
    url: str, max_seq: int | None, only: Only | None = None
) -> list[tuple[int, str, str]]:
    """:func:`postgres_mismatches` for the PostgreSQL store at ``url``; nothing for a store
    without statistics columns yet."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        found = pg.execute(PG_HAS_TRIGGERS).fetchone()
        if found is None or int(found[0]) != 3:
            return []
        return list(postgres_mismatches(pg, max_seq, only))

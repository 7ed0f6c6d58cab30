"""The receipt log's tables in SQLite and PostgreSQL: one definition (each database's integer
types filled in), the statements both backends write with, and the tables created in a new
store or added to a store of an earlier version.

=====================  ================================================================
``consent_receipts``   one row per signed record, ``seq`` its place in the chain
``consent_chain``      one row: the signed chain head and the signed purge checkpoint
``consent_policies``   the policy archive: each revision's texts by their SHA-256
=====================  ================================================================

The statistics tables (``consent_stats``) are :mod:`consent.store.statistics`'s; a new store gets
them with its own tables.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from .statistics import create_sqlite as create_stats_columns
from .statistics import postgres_statements as stats_statements

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "CHAIN_COLUMNS",
    "CHAIN_LOCK",
    "COLUMNS",
    "POSTGRES_TABLES",
    "SCHEMA_VERSION",
    "SQLITE_TABLES",
    "create_postgres_tables",
    "create_sqlite_tables",
    "sqlite_version",
    "upsert_checkpoint",
    "upsert_head",
]

SCHEMA_VERSION = 2
"""1: receipts and the chain row; 2: the policy archive (``consent_policies``). A SQLite file
keeps it as its ``user_version``."""

# pg_advisory_xact_lock key serialising writers of the receipt chain ("cons" "ent\0").
CHAIN_LOCK = 0x636F6E73656E7400


def _tables(big: str, small: str) -> tuple[str, ...]:
    """The tables and their indexes, with ``big`` for seqs, times and counts, and ``small``
    for the chain row's id."""
    return (
        f"""
    CREATE TABLE IF NOT EXISTS consent_receipts (
        seq         {big:<7} PRIMARY KEY,
        receipt_id  TEXT    NOT NULL UNIQUE,
        subject_id  TEXT    NOT NULL,
        ts          {big:<7} NOT NULL,
        event       TEXT    NOT NULL,
        body        TEXT    NOT NULL,
        kid         TEXT    NOT NULL,
        signature   TEXT    NOT NULL,
        prev_hash   TEXT    NOT NULL,
        hash        TEXT    NOT NULL
    )
    """,
        "CREATE INDEX IF NOT EXISTS consent_receipts_subject ON consent_receipts (subject_id, seq)",
        "CREATE INDEX IF NOT EXISTS consent_receipts_ts ON consent_receipts (ts)",
        f"""
    CREATE TABLE IF NOT EXISTS consent_chain (
        id              {small} PRIMARY KEY CHECK (id = 1),
        head_seq        {big},
        head_hash       TEXT,
        head_kid        TEXT,
        head_signature  TEXT,
        cp_seq          {big},
        cp_hash         TEXT,
        cp_count        {big},
        cp_before       {big},
        cp_time         {big},
        cp_kid          TEXT,
        cp_signature    TEXT
    )
    """,
        f"""
    CREATE TABLE IF NOT EXISTS consent_policies (
        digest      TEXT    PRIMARY KEY,
        revision    TEXT    NOT NULL,
        ts          {big:<7} NOT NULL,
        body        TEXT    NOT NULL
    )
    """,
        "CREATE INDEX IF NOT EXISTS consent_policies_revision ON consent_policies (revision)",
    )


# (``seq INTEGER PRIMARY KEY`` is SQLite's rowid itself.)
SQLITE_TABLES = _tables("INTEGER", "INTEGER")
POSTGRES_TABLES = _tables("BIGINT", "SMALLINT")

COLUMNS = "seq, receipt_id, subject_id, ts, event, body, kid, signature, prev_hash, hash"
CHAIN_COLUMNS = (
    "head_seq, head_hash, head_kid, head_signature, "
    "cp_seq, cp_hash, cp_count, cp_before, cp_time, cp_kid, cp_signature"
)


def upsert_head(param: str) -> str:
    """The statement that moves the signed chain head (seq, hash, kid, signature), with
    ``param`` as the driver's parameter mark (``?``, ``%s``)."""
    return (
        "INSERT INTO consent_chain (id, head_seq, head_hash, head_kid, head_signature)"
        f" VALUES (1, {param}, {param}, {param}, {param}) ON CONFLICT (id) DO UPDATE SET"
        " head_seq = excluded.head_seq, head_hash = excluded.head_hash,"
        " head_kid = excluded.head_kid, head_signature = excluded.head_signature"
    )


def upsert_checkpoint(param: str) -> str:
    """The statement that keeps a purge's signed checkpoint (seq, hash, count, before, time,
    kid, signature), with ``param`` as the driver's parameter mark."""
    marks = ", ".join([param] * 7)
    return (
        "INSERT INTO consent_chain (id, cp_seq, cp_hash, cp_count, cp_before, cp_time, cp_kid,"
        f" cp_signature) VALUES (1, {marks}) ON CONFLICT (id) DO UPDATE SET"
        " cp_seq = excluded.cp_seq, cp_hash = excluded.cp_hash, cp_count = excluded.cp_count,"
        " cp_before = excluded.cp_before, cp_time = excluded.cp_time, cp_kid = excluded.cp_kid,"
        " cp_signature = excluded.cp_signature"
    )


# ------------------------------------------------------------------------------ SQLite


def sqlite_version(conn: sqlite3.Connection) -> int:
    """The file's ``user_version``: :data:`SCHEMA_VERSION` once the store created its tables."""
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error:
        return 0


def create_sqlite_tables(conn: sqlite3.Connection) -> None:
    """Bring a file below :data:`SCHEMA_VERSION` to it, inside the caller's write transaction:
    the tables it lacks; a new file also gets the statistics columns."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version < SCHEMA_VERSION:
        for statement in SQLITE_TABLES:
            conn.execute(statement)
        if version == 0:
            # A new file gets the statistics columns now; an earlier version's store gets
            # them, filled from its bodies, from the first `consent stats`, so that opening a
            # large log for recording never waits on that fill.
            create_stats_columns(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# ------------------------------------------------------------------------------ PostgreSQL


async def create_postgres_tables(conn: psycopg.AsyncConnection[Any]) -> None:
    """Create the tables unless they exist, inside the caller's transaction. When they do,
    nothing is created: the app's role then needs no right to create or own them (see
    docs/operations.md, Privileges)."""
    cur = await conn.execute(
        "SELECT to_regclass('consent_receipts') IS NOT NULL"
        " AND to_regclass('consent_chain') IS NOT NULL"
        " AND to_regclass('consent_policies') IS NOT NULL,"
        " to_regclass('consent_receipts') IS NOT NULL"
    )
    found = await cur.fetchone()
    if not (found and found[0]):
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
        for statement in POSTGRES_TABLES:
            await conn.execute(statement)
        if not (found and found[1]):
            # New tables get the statistics columns now; an earlier version's get them,
            # filled from their bodies, from the first `consent stats`.
            for statement in stats_statements():
                await conn.execute(statement)

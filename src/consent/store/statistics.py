"""The statistics columns: one row per receipt in ``consent_stats``, kept by the database itself.

What statistics need (the granted and refused categories as bit sets, the method, language,
GPC flag, revision and event) is read from each receipt's signed body by triggers on
``consent_receipts``, in the statement that inserts (updates, deletes) the receipt. Every writer
fills them, whatever its version, and aggregates run on small fixed-width rows instead of
parsing JSON bodies. Bit ``n`` of ``granted``/``refused`` is the category whose ``bit`` in
``consent_stats_categories`` is ``n + 1`` (numbered in the order first seen; up to 64 keys).

``next_ts`` comes from the log rather than from one body: the time of the same visitor's next
decision (NULL while there is none). The trigger that appends a decision sets it on the
visitor's decision before, so statistics per visitor know which decision was a visitor's last
in a day, week or month from the row alone (:mod:`consent.stats.query`) instead of sorting the
log by visitor.

:func:`migrate_sqlite` / :func:`migrate_postgres` create the tables and triggers and fill them
for the receipts already in the log (a store made by an earlier version); they do nothing when
the triggers exist. :mod:`consent.store.statistics_check` finds rows whose statistics columns
are not what the log says (``consent verify`` reports them).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "DAY",
    "DECISION_EVENTS",
    "PG_DAY",
    "PG_HAS_TRIGGERS",
    "STATS_COLUMNS",
    "STATS_NAMES",
    "create_postgres",
    "create_sqlite",
    "migrate_postgres",
    "migrate_sqlite",
    "next_decisions",
    "pg_derived",
    "postgres_statements",
    "sqlite_derived",
    "sqlite_fields",
    "sqlite_has_triggers",
    "sqlite_is_receipt",
    "with_stats_columns",
]

STATS_COLUMNS = "seq, ts, subject_id, event, granted, refused, method, language, gpc, revision"

#: The events that are decisions: a "Load this once" receipt (event ``once``) consents to one
#: embed on one page view and changes no choice; statistics count the others.
DECISION_EVENTS = ("given", "refused", "updated", "withdrawn")
_DECISION = "(" + ", ".join(f"'{event}'" for event in DECISION_EVENTS) + ")"

# The triggers on consent_receipts that keep the statistics rows (both databases).
_TRIGGERS = ("consent_stats_insert", "consent_stats_update", "consent_stats_delete")
_TRIGGER_NAMES = "(" + ", ".join(f"'{name}'" for name in _TRIGGERS) + ")"

# The UTC day of a receipt (unix seconds), as the index below and the queries write it
# (PostgreSQL: mod(), as "%" marks a query parameter for psycopg).
DAY = "(ts - ts % 86400)"
PG_DAY = "(ts - mod(ts, 86400))"

# Every column statistics read, grouped the way they count: by day, then revision and choice.
# An aggregate reads this index alone, whose pages lie together, instead of the table's rows
# spread among the receipts' pages, and groups the rows in the order it reads them, instead of
# sorting a million rows first (docs/performance.md). The day leads, so --since/--until read
# only the days they cover.
_COVERING_INDEX = (
    "CREATE INDEX IF NOT EXISTS consent_stats_days ON consent_stats"
    f" ({DAY}, revision, granted, refused, gpc, event, language, method, ts, next_ts)"
)
_PG_COVERING_INDEX = _COVERING_INDEX.replace(DAY, PG_DAY)
# The indexes of the versions before (dropped once the one above exists).
_EARLIER_INDEXES = (
    "DROP INDEX IF EXISTS consent_stats_ts",
    "DROP INDEX IF EXISTS consent_stats_day",
)

# ----------------------------------------------------------------------------------- SQLite

_SQLITE_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS consent_stats_categories (
        bit INTEGER PRIMARY KEY,
        key TEXT    NOT NULL UNIQUE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS consent_stats (
        seq        INTEGER PRIMARY KEY,
        ts         INTEGER NOT NULL,
        subject_id TEXT    NOT NULL,
        event      TEXT    NOT NULL,
        granted    INTEGER NOT NULL,
        refused    INTEGER NOT NULL,
        method     TEXT    NOT NULL,
        language   TEXT    NOT NULL,
        gpc        INTEGER NOT NULL,
        revision   TEXT    NOT NULL,
        next_ts    INTEGER
    )
    """,
)


def _sqlite_bits(array: str) -> str:
    """The bit set of the category keys in the JSON array text ``array``."""
    return (
        f"(SELECT COALESCE(SUM(DISTINCT 1 << (c.bit - 1)), 0) FROM json_each({array}) AS j"
        " JOIN consent_stats_categories AS c ON c.key = j.value)"
    )


# The body's fields that statistics need, read with one json_extract: SQLite parses the body
# once (each json_extract parses it again) into a small array, read from then on.
_SQLITE_FIELDS = (
    "timestamp",
    "subject_id",
    "event",
    "granted",
    "refused",
    "method",
    "language",
    "gpc",
    "revision",
)
_SQLITE_PATHS = ", ".join(f"'$.{name}'" for name in _SQLITE_FIELDS)


def sqlite_fields(receipts: str, seq: str, body: str) -> str:
    """A subquery of (seq, a): ``a`` the array of the fields of each body of ``receipts`` (a
    FROM clause, with its WHERE). ``LIMIT -1 OFFSET 0`` keeps SQLite from copying the
    extraction into every expression that reads ``a``."""
    return (
        f"(SELECT {seq} AS seq, json_extract({body}, {_SQLITE_PATHS}) AS a FROM {receipts}"
        " LIMIT -1 OFFSET 0)"
    )


def _field(name: str) -> str:
    return f"json_extract(a, '$[{_SQLITE_FIELDS.index(name)}]')"


def _array(name: str) -> str:
    index = _SQLITE_FIELDS.index(name)
    return f"CASE WHEN json_type(a, '$[{index}]') = 'array' THEN json_extract(a, '$[{index}]') END"


def sqlite_derived() -> list[str]:
    """The statistics values, as STATS_COLUMNS, from ``seq`` and ``a`` of :func:`sqlite_fields`."""
    return [
        "seq",
        f"COALESCE({_field('timestamp')}, -1)",
        f"COALESCE({_field('subject_id')}, '')",
        f"COALESCE({_field('event')}, '')",
        _sqlite_bits(_array("granted")),
        _sqlite_bits(_array("refused")),
        f"COALESCE({_field('method')}, '')",
        f"COALESCE({_field('language')}, '')",
        f"COALESCE({_field('gpc')}, 0)",
        f"COALESCE({_field('revision')}, '')",
    ]


def _sqlite_keys(body: str) -> str:
    """Tables ``g`` and ``k``: the category keys granted or refused in ``body`` (one parse)."""
    return (
        f"json_each(json_extract({body}, '$.granted', '$.refused')) AS g, json_each(g.value) AS k"
    )


_NEW_KEYS = "g.type = 'array' AND k.type = 'text'"


def sqlite_is_receipt(r: str) -> str:
    # Chain records (switch, incident) have no subject; a body that is not JSON is a finding
    # of verification already and gets no statistics row.
    return f"{r}.subject_id <> '' AND json_valid({r}.body)"


def _sqlite_fill(source: str) -> tuple[str, str]:
    """The two statements filling statistics for the ``new`` row, selected by ``source``
    (``(SELECT 1)``, or with a WHERE)."""
    keys = (
        "INSERT OR IGNORE INTO consent_stats_categories (key)"
        f" SELECT k.value FROM {source} AS one, {_sqlite_keys('new.body')} WHERE {_NEW_KEYS}"
    )
    values = ", ".join(sqlite_derived())
    row = (
        f"INSERT OR REPLACE INTO consent_stats ({STATS_COLUMNS}) SELECT {values}"
        f" FROM {sqlite_fields(source, 'new.seq', 'new.body')}"
    )
    return keys, row


def next_decisions(where: str) -> str:
    """A subquery (seq, next_ts, nxt) of the statistics rows selected by ``where`` (which keeps
    every row of a visitor or none): ``nxt`` the time of the visitor's next decision after a
    decision (NULL for the last, and for a row that is no decision), as ``next_ts`` should be."""
    return (
        f"(SELECT seq, next_ts, CASE WHEN event IN {_DECISION} THEN LEAD(ts) OVER"
        f" (PARTITION BY subject_id, event IN {_DECISION} ORDER BY seq) END AS nxt"
        f" FROM consent_stats{where})"
    )


def _refresh_next(where: str, differs: str = "IS NOT") -> str:
    """The statement setting ``next_ts`` right on the rows of the visitors ``where`` selects;
    ``differs``: the comparison that holds NULL apart (``IS DISTINCT FROM`` on PostgreSQL)."""
    return (
        f"UPDATE consent_stats SET next_ts = w.nxt FROM {next_decisions(where)} AS w"
        f" WHERE consent_stats.seq = w.seq AND consent_stats.next_ts {differs} w.nxt"
    )


_PG_DIFFERS = "IS DISTINCT FROM"


def _decision_before(row: str, seq: str) -> str:
    """A subquery: the seq of the decision of ``row``'s visitor (a statistics row with
    ``subject_id``) last appended before ``seq``, found backwards through the receipts' index
    by visitor."""
    return (
        "SELECT r.seq FROM consent_receipts AS r JOIN consent_stats AS p ON p.seq = r.seq"
        f" WHERE r.subject_id = {row}.subject_id AND p.subject_id = {row}.subject_id"
        f" AND r.seq < {seq} AND p.event IN {_DECISION} ORDER BY r.seq DESC LIMIT 1"
    )


def _link_next(added: str) -> str:
    """The statement an append runs after filling the statistics rows of the receipts
    ``added`` (a FROM item with their ``seq``): each decision's time becomes ``next_ts`` of
    the same visitor's decision before it (SQLite and PostgreSQL)."""
    return (
        "UPDATE consent_stats SET next_ts = v.ts FROM"
        f" (SELECT n.ts, ({_decision_before('n', 'n.seq')}) AS before FROM consent_stats AS n"
        f" JOIN {added} AS a ON a.seq = n.seq WHERE n.event IN {_DECISION}) AS v"
        " WHERE consent_stats.seq = v.before"
    )


def _unlink_next() -> str:
    """For the receipt ``old`` a delete removes (SQLite, before its statistics row goes): the
    visitor's decision before it now leads to the one after it. A purge deletes the oldest
    receipts first, whose decisions before are gone already: nothing to find."""
    return (
        "UPDATE consent_stats SET next_ts = d.next_ts FROM (SELECT next_ts, subject_id"
        f" FROM consent_stats WHERE seq = old.seq AND event IN {_DECISION}) AS d"
        f" WHERE consent_stats.seq = ({_decision_before('d', 'old.seq')})"
    )


def _sqlite_triggers() -> tuple[str, ...]:
    keys, row = _sqlite_fill("(SELECT 1)")
    update_keys, update_row = _sqlite_fill(f"(SELECT 1 WHERE {sqlite_is_receipt('new')})")
    # An edited receipt (the store never edits one): its visitors' next decisions again.
    visitors = (
        " WHERE seq IN (SELECT seq FROM consent_receipts"
        " WHERE subject_id IN (old.subject_id, new.subject_id))"
    )
    return (
        # Bodies the store writes are JSON: the insert does not check (a second parse).
        "CREATE TRIGGER IF NOT EXISTS consent_stats_insert AFTER INSERT ON consent_receipts"
        f" WHEN new.subject_id <> '' BEGIN {keys}; {row};"
        f" {_link_next('(SELECT new.seq AS seq)')}; END",
        "CREATE TRIGGER IF NOT EXISTS consent_stats_update AFTER UPDATE ON consent_receipts"
        f" BEGIN DELETE FROM consent_stats WHERE seq = old.seq; {update_keys}; {update_row};"
        f" {_refresh_next(visitors)}; END",
        "CREATE TRIGGER IF NOT EXISTS consent_stats_delete AFTER DELETE ON consent_receipts"
        f" BEGIN {_unlink_next()}; DELETE FROM consent_stats WHERE seq = old.seq; END",
    )


def _sqlite_backfill() -> tuple[str, str]:
    receipts = f"consent_receipts AS r WHERE {sqlite_is_receipt('r')}"
    keys = (
        "INSERT OR IGNORE INTO consent_stats_categories (key)"
        f" SELECT k.value FROM consent_receipts AS r, {_sqlite_keys('r.body')}"
        f" WHERE {sqlite_is_receipt('r')} AND {_NEW_KEYS}"
        " GROUP BY k.value ORDER BY MIN(r.seq), k.value"
    )
    values = ", ".join(sqlite_derived())
    rows = (
        f"INSERT OR REPLACE INTO consent_stats ({STATS_COLUMNS}) SELECT {values}"
        f" FROM {sqlite_fields(receipts, 'r.seq', 'r.body')}"
    )
    return keys, rows


def sqlite_has_triggers(conn: sqlite3.Connection) -> bool:
    (n,) = conn.execute(
        f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name IN {_TRIGGER_NAMES}"
    ).fetchone()
    return int(n) == len(_TRIGGERS)


def create_sqlite(conn: sqlite3.Connection) -> None:
    """Create the statistics tables and triggers (inside the caller's write transaction),
    filling them for the receipts already in ``consent_receipts``; nothing when the triggers
    exist (a store whose schema moves to a later version keeps its statistics rows)."""
    if sqlite_has_triggers(conn):
        return
    for statement in _SQLITE_TABLES:
        conn.execute(statement)
    for statement in _sqlite_backfill():
        conn.execute(statement)
    _sqlite_finish(conn)


def _sqlite_finish(conn: sqlite3.Connection) -> None:
    """``next_ts`` of every row, the index, this version's triggers (those of an earlier one
    replaced)."""
    conn.execute(_refresh_next(""))
    conn.execute(_COVERING_INDEX)
    for statement in _EARLIER_INDEXES:
        conn.execute(statement)
    for name in _TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for statement in _sqlite_triggers():
        conn.execute(statement)


def _sqlite_current(conn: sqlite3.Connection) -> bool:
    """Whether the statistics tables, triggers and index are this version's."""
    if not sqlite_has_triggers(conn):
        return False
    found = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        " AND name IN ('consent_stats_days', 'consent_stats_day', 'consent_stats_ts')"
    ).fetchall()
    # (an earlier release's `consent stats` run since adds its own index again)
    return [name for (name,) in found] == ["consent_stats_days"]


def migrate_sqlite(conn: sqlite3.Connection) -> bool:
    """Add the statistics columns to a store made by an earlier version (or what this
    version adds to them: ``next_ts`` and its index, to statistics columns an earlier version
    made), in one write transaction (other writers wait). False when there was nothing to do."""
    if _sqlite_current(conn):
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _sqlite_current(conn):
            conn.execute("ROLLBACK")
            return False
        if sqlite_has_triggers(conn):
            columns = {row[1] for row in conn.execute("PRAGMA table_info(consent_stats)")}
            if "next_ts" not in columns:
                conn.execute("ALTER TABLE consent_stats ADD COLUMN next_ts INTEGER")
            _sqlite_finish(conn)
        else:
            create_sqlite(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


STATS_NAMES = [c.strip() for c in STATS_COLUMNS.split(",")]


def with_stats_columns(columns: str, where: str) -> str:
    """The query of ``iter_values(stats=True)`` (SQLite and PostgreSQL): ``columns`` of the
    receipts selected by ``where``, each followed by its statistics row (NULLs when it has
    none), in seq order."""
    outer = ", ".join(f"r.{name.strip()}" for name in columns.split(","))
    stats = ", ".join(f"s.{name}" for name in STATS_NAMES[1:])
    return (
        f"SELECT {outer}, {stats} FROM (SELECT {columns} FROM consent_receipts{where}) AS r"
        " LEFT JOIN consent_stats AS s ON s.seq = r.seq ORDER BY r.seq"
    )


# ------------------------------------------------------------------------------- PostgreSQL

# Writers of the chain hold this advisory lock (consent.store.postgres.CHAIN_LOCK): categories
# get their bits in the order appends commit, and the migration waits for appends in progress.
CHAIN_LOCK = 0x636F6E73656E7400

_PG_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS consent_stats_categories (
        bit SMALLINT PRIMARY KEY,
        key TEXT     NOT NULL UNIQUE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS consent_stats (
        seq        BIGINT   PRIMARY KEY,
        ts         BIGINT   NOT NULL,
        subject_id TEXT     NOT NULL,
        event      TEXT     NOT NULL,
        granted    BIGINT   NOT NULL,
        refused    BIGINT   NOT NULL,
        method     TEXT     NOT NULL,
        language   TEXT     NOT NULL,
        gpc        SMALLINT NOT NULL,
        revision   TEXT     NOT NULL,
        next_ts    BIGINT
    )
    """,
    # What this version adds to the statistics columns an earlier version made.
    "ALTER TABLE consent_stats ADD COLUMN IF NOT EXISTS next_ts BIGINT",
    # A body that is not JSON gets no statistics row (verification reports the body).
    """
    CREATE OR REPLACE FUNCTION consent_stats_json(body text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        RETURN body::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END $$
    """,
)


def _pg_array(b: str, field: str) -> str:
    return f"(CASE WHEN jsonb_typeof({b}->'{field}') = 'array' THEN {b}->'{field}' ELSE '[]'::jsonb END)"


def _pg_text(b: str, field: str) -> str:
    return f"(CASE WHEN jsonb_typeof({b}->'{field}') = 'string' THEN {b}->>'{field}' ELSE '' END)"


def _pg_bits(b: str, field: str) -> str:
    return (
        "(SELECT COALESCE(bit_or(1::bigint << (c.bit - 1)), 0)"
        f" FROM jsonb_array_elements({_pg_array(b, field)}) AS j(value)"
        " JOIN consent_stats_categories AS c ON to_jsonb(c.key) = j.value)"
    )


def pg_derived(seq: str, b: str) -> list[str]:
    """The statistics values of a receipt from its body ``b`` (jsonb), as STATS_COLUMNS."""
    return [
        seq,
        f"(CASE WHEN jsonb_typeof({b}->'timestamp') = 'number'"
        f" THEN ({b}->>'timestamp')::numeric::bigint ELSE -1 END)",
        _pg_text(b, "subject_id"),
        _pg_text(b, "event"),
        _pg_bits(b, "granted"),
        _pg_bits(b, "refused"),
        _pg_text(b, "method"),
        _pg_text(b, "language"),
        f"(CASE WHEN {b}->'gpc' = 'true'::jsonb THEN 1 ELSE 0 END)",
        _pg_text(b, "revision"),
    ]


def _pg_bodies(source: str) -> str:
    """The receipts of ``source`` with their bodies as jsonb (``seq``, ``b``)."""
    return (
        f"(SELECT seq, b FROM (SELECT seq, consent_stats_json(body) AS b FROM {source}"
        " WHERE subject_id <> '') AS parsed WHERE jsonb_typeof(b) = 'object') AS bodies"
    )


def _pg_fill(source: str) -> str:
    """Statements (for a function body) filling statistics for the receipts in ``source``."""
    arrays = f"{_pg_array('b', 'granted')} || {_pg_array('b', 'refused')}"
    update = ", ".join(f"{name} = excluded.{name}" for name in STATS_NAMES[1:])
    new_keys = (
        "SELECT k.value #>> '{}' AS key, MIN(seq) AS first"
        f" FROM {_pg_bodies(source)}, LATERAL jsonb_array_elements({arrays}) AS k(value)"
        " WHERE jsonb_typeof(k.value) = 'string' GROUP BY 1"
    )
    return (
        "INSERT INTO consent_stats_categories (bit, key)"
        " SELECT (SELECT COALESCE(MAX(bit), 0) FROM consent_stats_categories)"
        f" + row_number() OVER (ORDER BY first, key), key FROM ({new_keys}) AS found"
        " WHERE NOT EXISTS (SELECT 1 FROM consent_stats_categories AS c WHERE c.key = found.key);"
        f" INSERT INTO consent_stats ({STATS_COLUMNS})"
        f" SELECT {', '.join(pg_derived('seq', 'b'))} FROM {_pg_bodies(source)}"
        f" ON CONFLICT (seq) DO UPDATE SET {update};"
    )


def _pg_functions() -> tuple[str, ...]:
    def function(name: str, body: str) -> str:
        return (
            # As the tables' owner: the app's role needs no rights on the statistics tables
            # (docs/operations.md, Privileges); the search path is the creator's.
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
            " SECURITY DEFINER SET search_path FROM CURRENT AS $$"
            f" BEGIN {body} RETURN NULL; END $$"
        )

    gone = "DELETE FROM consent_stats AS s USING gone WHERE s.seq = gone.seq;"
    # An edited receipt (the store never edits one): its visitors' next decisions again.
    visitors = (
        " WHERE seq IN (SELECT seq FROM consent_receipts WHERE subject_id IN"
        " (SELECT subject_id FROM gone UNION SELECT subject_id FROM added))"
    )
    # Deleted receipts: the decisions left of their visitors lead to the next one left.
    left = (
        " WHERE seq IN (SELECT seq FROM consent_receipts WHERE subject_id IN"
        " (SELECT subject_id FROM gone))"
    )
    return (
        function("consent_stats_inserted", f"{_pg_fill('added')} {_link_next('added')};"),
        function(
            "consent_stats_updated",
            f"{gone} {_pg_fill('added')} {_refresh_next(visitors, _PG_DIFFERS)};",
        ),
        function("consent_stats_deleted", f"{gone} {_refresh_next(left, _PG_DIFFERS)};"),
    )


_PG_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER consent_stats_insert AFTER INSERT ON consent_receipts"
    " REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION consent_stats_inserted()",
    "CREATE OR REPLACE TRIGGER consent_stats_update AFTER UPDATE ON consent_receipts"
    " REFERENCING OLD TABLE AS gone NEW TABLE AS added"
    " FOR EACH STATEMENT EXECUTE FUNCTION consent_stats_updated()",
    "CREATE OR REPLACE TRIGGER consent_stats_delete AFTER DELETE ON consent_receipts"
    " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION consent_stats_deleted()",
)

PG_HAS_TRIGGERS = (
    "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = to_regclass('consent_receipts')"
    f" AND tgname IN {_TRIGGER_NAMES}"
)


def postgres_statements() -> list[str]:
    """The statements creating the statistics tables, functions and triggers, filling them for
    the receipts already in the log; run in one transaction holding the chain lock."""
    return [
        *_PG_TABLES,
        *_pg_functions(),
        "CREATE OR REPLACE FUNCTION consent_stats_backfill() RETURNS void LANGUAGE plpgsql AS $$"
        f" BEGIN {_pg_fill('consent_receipts')} END $$",
        "SELECT consent_stats_backfill()",
        "DROP FUNCTION consent_stats_backfill()",
        _refresh_next("", _PG_DIFFERS),
        _PG_COVERING_INDEX,
        *_EARLIER_INDEXES,
        *_PG_TRIGGERS,
    ]


def create_postgres(conn: Any) -> None:
    """Run :func:`postgres_statements` on a psycopg (sync) connection, in its transaction."""
    for statement in postgres_statements():
        conn.execute(statement)


_PG_CURRENT = (
    f"SELECT ({PG_HAS_TRIGGERS}) = 3, to_regclass('consent_stats_days') IS NOT NULL"
    " AND to_regclass('consent_stats_day') IS NULL AND to_regclass('consent_stats_ts') IS NULL"
)


def migrate_postgres(conn: Any) -> bool:
    """:func:`migrate_sqlite` for PostgreSQL (a psycopg sync connection, not in a transaction)."""
    triggers, index = conn.execute(_PG_CURRENT).fetchone()
    if triggers and index:
        return False
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
        triggers, index = conn.execute(_PG_CURRENT).fetchone()
        if triggers and index:
            return False
        if triggers:
            # Statistics columns an earlier version made: this version's column, functions,
            # next_ts filled, the index.
            for statement in (*_PG_TABLES, *_pg_functions(), _refresh_next("", _PG_DIFFERS)):
                conn.execute(statement)
            conn.execute(_PG_COVERING_INDEX)
            for statement in _EARLIER_INDEXES:
                conn.execute(statement)
        else:
            create_postgres(conn)
    return True

"""Consent statistics: per time bucket, decisions and the share granting each category,
aggregated by the database from the statistics columns (:mod:`consent.store.statistics`).

Two ways of counting (``per``):

* ``decision``: every receipt in the bucket counts once. A visitor who changes their mind three
  times counts three times: what the banner and the settings dialog were asked to record.
* ``visitor``: each subject's latest receipt in the bucket counts once: what visitors ended up
  choosing in that bucket. A visitor active in two buckets counts in both. A decision is the
  latest in its bucket when the visitor's next decision (``next_ts``, kept by the store as each
  decision is appended) falls in another bucket, after ``--until``, or does not exist.

A category's share is the number of decisions granting it over the number of decisions in
which it was offered (granted or refused on the receipt), so a category added by a new
revision is measured from then on, not diluted by decisions that never showed it.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ..store.sqlite import path_from_url
from ..store.statistics import DAY, DECISION_EVENTS, PG_DAY, migrate_postgres, migrate_sqlite

__all__ = [
    "EVENTS",
    "Bucket",
    "By",
    "Latest",
    "Per",
    "Revision",
    "Split",
    "Statistics",
    "bucket_start",
    "collect",
    "collect_sqlite",
    "latest",
]

By = Literal["day", "week", "month"]
Per = Literal["decision", "visitor"]
Split = Literal["language", "method", "revision"]

EVENTS = DECISION_EVENTS
_DECISIONS = "event IN (" + ", ".join(f"'{event}'" for event in EVENTS) + ")"
_DAY = 86_400
_MONDAY = 4 * _DAY  # 1970-01-05, the first Monday after the epoch


def bucket_start(ts: int, by: By) -> int:
    """The start (unix seconds, UTC) of the day, ISO week (from Monday) or month holding ``ts``."""
    if by == "day":
        return ts - ts % _DAY
    if by == "week":
        return ts - (ts - _MONDAY) % (7 * _DAY)
    moment = datetime.fromtimestamp(ts, UTC)
    return calendar.timegm((moment.year, moment.month, 1, 0, 0, 0))


def bucket_end(start: int, by: By) -> int:
    """The start of the bucket after the one starting at ``start``."""
    if by == "day":
        return start + _DAY
    if by == "week":
        return start + 7 * _DAY
    moment = datetime.fromtimestamp(start, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0))


@dataclass
class Bucket:
    """The counts of one time bucket (and one value of the split, when there is one)."""

    start: int
    end: int
    split: str | None
    decisions: int = 0
    accept_all: int = 0  # every category offered was granted
    reject_all: int = 0  # none was granted
    custom: int = 0  # some were
    gpc: int = 0  # the browser sent Sec-GPC: 1
    events: dict[str, int] = field(default_factory=dict)
    granted: dict[str, int] = field(default_factory=dict)  # per category: decisions granting it
    offered: dict[str, int] = field(default_factory=dict)  # per category: decisions showing it

    def share(self, category: str) -> float | None:
        """Granted / offered for ``category`` (None when it was not offered in the bucket)."""
        offered = self.offered.get(category, 0)
        return self.granted.get(category, 0) / offered if offered else None

    def fraction(self, count: int) -> float | None:
        return count / self.decisions if self.decisions else None

    def add(self, other: Bucket) -> None:
        self.decisions += other.decisions
        self.accept_all += other.accept_all
        self.reject_all += other.reject_all
        self.custom += other.custom
        self.gpc += other.gpc
        for mine, theirs in (
            (self.events, other.events),
            (self.granted, other.granted),
            (self.offered, other.offered),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value


@dataclass(frozen=True)
class Revision:
    """A policy revision found on receipts: when it was first and last recorded, how often."""

    revision: str
    first: int
    last: int
    decisions: int


@dataclass
class Statistics:
    """What ``consent stats`` reports."""

    by: By
    per: Per
    split: Split | None
    since: int | None
    until: int | None
    categories: list[str]
    buckets: list[Bucket]
    revisions: list[Revision]

    def total(self) -> Bucket:
        """All buckets together (per visitor: a visitor active in two buckets counts twice)."""
        whole = Bucket(
            self.buckets[0].start if self.buckets else 0,
            self.buckets[-1].end if self.buckets else 0,
            None,
        )
        for bucket in self.buckets:
            whole.add(bucket)
        return whole


# ------------------------------------------------------------------------------------- SQL


def _range(since: int | None, until: int | None, mark: str, day: str) -> tuple[str, list[Any]]:
    # The days first: SQLite then reads the covering index (consent_stats_days) alone, and only
    # the days in the range, instead of choosing the table's rows, spread among the receipts'
    # pages. Then the exact bounds.
    # Only decisions count: a "Load this once" receipt (event once) consents to one embed on
    # one page view and changes no choice.
    start = since if since is not None else -1
    clauses = [f"{day} >= {mark}", f"ts >= {mark}", _DECISIONS]
    params: list[Any] = [start - start % _DAY - _DAY, start]
    if until is not None:
        clauses += [f"{day} <= {mark}", f"ts < {mark}"]
        params += [until - until % _DAY + _DAY, until]
    return " WHERE " + " AND ".join(clauses), params


def _groups(day: str, split: Split | None) -> str:
    """Per decision, the groups of the covering index, read in its order (no sort): each
    day's receipts by revision and choice, and by language and method when a split needs
    them."""
    groups = f"{day}, revision, granted, refused, gpc, event"
    if split == "language":
        return f"{groups}, language"
    if split == "method":
        return f"{groups}, language, method"
    return groups


def _fold(
    buckets: dict[tuple[int, str | None], Bucket],
    key: tuple[int, str | None],
    by: By,
    bits: Sequence[tuple[int, str]],
    choice: Sequence[Any],
    n: int,
) -> Bucket:
    """Add ``n`` decisions of one ``choice`` (granted, refused, gpc, event) to the bucket
    ``key``: what an aggregate over those decisions would sum, here over a few groups."""
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = Bucket(key[0], bucket_end(key[0], by), key[1])
    granted, refused, gpc, event = (int(choice[0]), int(choice[1]), int(choice[2]), choice[3])
    bucket.decisions += n
    if granted == 0:
        bucket.reject_all += n
    elif refused == 0:
        bucket.accept_all += n
    else:
        bucket.custom += n
    bucket.gpc += gpc * n
    event = str(event)
    if event in EVENTS:
        bucket.events[event] = bucket.events.get(event, 0) + n
    offered = granted | refused
    for bit, category in bits:
        if (offered >> (bit - 1)) & 1:
            bucket.offered[category] = bucket.offered.get(category, 0) + n
            bucket.granted[category] = (
                bucket.granted.get(category, 0) + ((granted >> (bit - 1)) & 1) * n
            )
    return bucket


class _Backend:
    """The SQL that differs between SQLite and PostgreSQL."""

    mark = "?"
    day = DAY

    def __init__(self, execute: Any) -> None:
        self.execute = execute

    @staticmethod
    def mod(a: str, b: int) -> str:
        return f"({a}) % {b}"

    @staticmethod
    def month(ts: str) -> tuple[str, str]:
        start = f"strftime('%s', {ts}, 'unixepoch', 'start of month'"
        return f"CAST({start}) AS INTEGER)", f"CAST({start}, '+1 month') AS INTEGER)"

    def bucket(self, by: By, ts: str) -> tuple[str, str]:
        """The start and end of the bucket holding ``ts``, as SQL."""
        if by == "month":
            return self.month(ts)
        length, offset = (_DAY, 0) if by == "day" else (7 * _DAY, _MONDAY)
        shifted = f"{ts} - {offset}" if offset else ts
        start = f"({ts} - {self.mod(shifted, length)})"
        return start, f"({start} + {length})"


class _PgBackend(_Backend):
    mark = "%s"
    day = PG_DAY

    @staticmethod
    def mod(a: str, b: int) -> str:  # ("%" marks a query parameter for psycopg)
        return f"mod({a}, {b})"

    @staticmethod
    def month(ts: str) -> tuple[str, str]:
        start = f"date_trunc('month', to_timestamp({ts}) AT TIME ZONE 'UTC')"
        return (
            f"extract(epoch FROM {start})::bigint",
            f"extract(epoch FROM {start} + interval '1 month')::bigint",
        )


def _last_in_bucket(backend: _Backend, by: By, since: int | None, until: int | None) -> str:
    """Whether a row is its visitor's last decision in its bucket within ``since`` and
    ``until``: the visitor's next decision (``next_ts``) is in another bucket, outside the
    range, or there is none."""
    start, end = backend.bucket(by, "ts")
    outside = "" if until is None else f" OR next_ts >= {int(until)}"
    if since is not None:  # (a decision recorded after this one with an earlier time)
        outside += f" OR next_ts < {int(since)}"
    return f"next_ts IS NULL{outside} OR next_ts >= {end} OR next_ts < {start}"


def _collect(
    backend: _Backend,
    *,
    since: int | None,
    until: int | None,
    by: By,
    per: Per,
    split: Split | None,
) -> Statistics:
    execute = backend.execute
    bits = [
        (int(b), str(k))
        for b, k in execute("SELECT bit, key FROM consent_stats_categories ORDER BY bit", [])
    ]
    where, params = _range(since, until, backend.mark, backend.day)
    buckets: dict[tuple[int, str | None], Bucket] = {}
    revisions: dict[str, list[int]] = {}
    # Days and choices in the database, in the order of the index; the shares, weeks and
    # months added up here (counts of receipts add up, over some thousand groups). Per
    # visitor, the rows that are a visitor's last decision in their bucket are counted
    # alongside, in the same pass; the revisions count every decision either way.
    groups = _groups(backend.day, split)
    counted = "COUNT(*)"
    if per == "visitor":
        counted = f"SUM(CASE WHEN {_last_in_bucket(backend, by, since, until)} THEN 1 ELSE 0 END)"
    query = (
        f"SELECT {groups}, COUNT(*), MIN(ts), MAX(ts), {counted}"
        f" FROM consent_stats{where} GROUP BY {groups}"
    )
    at = {"language": 6, "method": 7, "revision": 1}.get(split or "")
    for found in execute(query, params):
        every, first, last, n = (int(v) for v in found[-4:])
        sp = None if at is None else str(found[at])
        if n:
            _fold(buckets, (bucket_start(int(found[0]), by), sp), by, bits, found[2:6], n)
        seen = revisions.setdefault(str(found[1]), [first, last, 0])
        seen[0], seen[1] = min(seen[0], first), max(seen[1], last)
        seen[2] += every
    ordered = sorted(buckets.values(), key=lambda b: (b.start, b.split or ""))
    used = {key for bucket in ordered for key in bucket.offered}
    return Statistics(
        by=by,
        per=per,
        split=split,
        since=since,
        until=until,
        categories=[key for _, key in bits if key in used],
        buckets=ordered,
        revisions=sorted(
            (Revision(rev, f, la, n) for rev, (f, la, n) in revisions.items()),
            key=lambda r: (r.first, r.revision),
        ),
    )


def collect_sqlite(
    conn: sqlite3.Connection,
    *,
    since: int | None = None,
    until: int | None = None,
    by: By = "day",
    per: Per = "decision",
    split: Split | None = None,
) -> Statistics:
    """Statistics from an SQLite connection whose store has the statistics columns."""
    return _collect(
        _Backend(lambda sql, params: conn.execute(sql, params)),
        since=since,
        until=until,
        by=by,
        per=per,
        split=split,
    )


@contextlib.contextmanager
def _open(url: str, migrate: bool) -> Iterator[_Backend]:
    """A backend on the store at ``url``; with ``migrate``, the statistics columns added first
    to a store made by an earlier version. Raises StoreUnavailable when it cannot be read."""
    from ..store import StoreUnavailable
    from ..store.base import redact_url

    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        path = path_from_url(url)
        if not os.path.exists(path):  # the message every other command gives
            raise StoreUnavailable(f"no receipt database at {path}")
        mode = "rw" if migrate else "ro"
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode={mode}", uri=True, isolation_level=None, timeout=30
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite receipt store {path}: {exc}") from exc
        try:
            if migrate:
                migrate_sqlite(conn)
            yield _Backend(lambda sql, params: conn.execute(sql, params))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite receipt store {path}: {exc}") from exc
        finally:
            conn.close()
        return
    if scheme in ("postgresql", "postgres"):
        import psycopg

        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as pg:
                if migrate:
                    migrate_postgres(pg)
                yield _PgBackend(lambda sql, params: pg.execute(sql, params).fetchall())
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL receipt store {redact_url(url)}: {exc}") from exc
        return
    raise ValueError(
        f"statistics need an sqlite:/// or postgresql:// store, not {redact_url(url)!r}"
    )


def collect(
    url: str,
    *,
    since: int | None = None,
    until: int | None = None,
    by: By = "day",
    per: Per = "decision",
    split: Split | None = None,
    migrate: bool = True,
) -> Statistics:
    """Statistics of the store at ``url`` (``sqlite:`` or ``postgresql:``). With ``migrate``, a
    store made by an earlier version first gets its statistics columns (filled once, from the
    signed bodies). Raises :class:`consent.store.StoreUnavailable` when it cannot be read."""
    with _open(url, migrate) as backend:
        return _collect(backend, since=since, until=until, by=by, per=per, split=split)


@dataclass(frozen=True)
class Latest:
    """One recent receipt as the statistics columns keep it (no address, no user agent)."""

    seq: int
    receipt_id: str
    timestamp: int
    event: str
    granted: list[str]
    refused: list[str]
    method: str
    language: str
    gpc: bool
    revision: str


def latest(url: str, limit: int = 20, *, migrate: bool = True) -> list[Latest]:
    """The ``limit`` receipts appended last, newest first."""
    with _open(url, migrate) as backend:
        keys = dict(
            (int(b), str(k))
            for b, k in backend.execute("SELECT bit, key FROM consent_stats_categories", [])
        )
        found = backend.execute(
            "SELECT s.seq, r.receipt_id, s.ts, s.event, s.granted, s.refused, s.method,"
            " s.language, s.gpc, s.revision FROM consent_stats AS s"
            f" JOIN consent_receipts AS r ON r.seq = s.seq ORDER BY s.seq DESC LIMIT {int(limit)}",
            [],
        )

        def names(bits: int) -> list[str]:
            return [key for bit, key in sorted(keys.items()) if (int(bits) >> (bit - 1)) & 1]

        return [
            Latest(
                int(seq),
                str(rid),
                int(ts),
                str(event),
                names(g),
                names(r),
                str(m),
                str(lang),
                bool(gpc),
                str(rev),
            )
            for seq, rid, ts, event, g, r, m, lang, gpc, rev in found
        ]

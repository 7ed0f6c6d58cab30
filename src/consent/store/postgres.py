"""``postgresql://...``: one receipt chain shared by every app instance.

* psycopg 3: an async connection pool for the web side, plain connections for the command line.
* Every append takes a transaction-level advisory lock before it reads the chain position, so
  all writers, in any process on any host, extend one chain; the receipt row and the signed
  chain head are committed together.
* Appends that arrive while a transaction is running are committed together by the next one
  (group commit): one WAL flush and one hold of the chain lock for many receipts.
* When the server goes away, ``append`` raises :class:`StoreUnavailable` after at most
  ``timeout`` seconds; the pool is rebuilt on the next call, so recording resumes as soon as
  the server is back.
* The same bound holds when the server stops answering without closing the connection (a
  frozen host, a network that drops packets): every operation on a connection, the pool's
  liveness check included, has ``timeout`` seconds, after which the connection's socket is
  shut down, which fails whatever waits on it at once. An append whose ``COMMIT`` was sent
  and not answered may have been committed: it fails with ``maybe_recorded`` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from ..receipts import ChainHead, Receipt, ReceiptSigner, StoredReceipt
from .base import (
    HISTORY_LIMIT,
    ArchivedPolicy,
    GroupCommit,
    PendingAppend,
    ReceiptRow,
    StoreBase,
    StoreUnavailable,
    range_filter,
    redact_url,
    row_values,
    settle,
)
from .chain import (
    ChainState,
    ChainWriter,
    Values,
    chain_state_from_row,
    checkpoint_after,
    policy_extension,
)
from .schema import CHAIN_COLUMNS as _CHAIN_COLUMNS
from .schema import CHAIN_LOCK, create_postgres_tables, upsert_checkpoint, upsert_head
from .schema import COLUMNS as _COLUMNS
from .statistics import with_stats_columns

__all__ = ["PostgresStore"]

logger = logging.getLogger("consent.store")

# Seconds during which calls fail at once after the server could not be reached.
RETRY_INTERVAL = 1.0

_SELECT_CHAIN = f"SELECT {_CHAIN_COLUMNS} FROM consent_chain WHERE id = 1"
_SELECT_NEWEST = "SELECT seq, hash FROM consent_receipts ORDER BY seq DESC LIMIT 1"
# The chain row (or NULLs) and the newest row (or NULLs), in one statement.
_SELECT_POSITION = (
    f"SELECT {_CHAIN_COLUMNS}, newest.*"
    " FROM (SELECT 1) AS one LEFT JOIN consent_chain ON consent_chain.id = 1"
    f" LEFT JOIN (SELECT {_COLUMNS} FROM consent_receipts ORDER BY seq DESC LIMIT 1) AS newest"
    " ON true"
)
# An append's first round trip (simple protocol, no parameters): open the transaction, wait
# for the chain lock, then read the position. Each statement takes its own snapshot (READ
# COMMITTED), so the position is read after the lock is held and includes the appends of
# whoever held it before.
_BEGIN_AND_POSITION = f"BEGIN; SELECT pg_advisory_xact_lock({CHAIN_LOCK}); {_SELECT_POSITION}"
_ROW_PARAMS = "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
_INSERT_ROWS = f"INSERT INTO consent_receipts ({_COLUMNS}) VALUES "
_UPSERT_HEAD = upsert_head("%s")
# Rows per INSERT statement (10 parameters each; the protocol allows 65,535).
_INSERT_CHUNK = 100


@functools.lru_cache(maxsize=2 * _INSERT_CHUNK)
def _insert_sql(count: int, with_head: bool) -> str:
    """``INSERT`` of ``count`` receipt rows in one statement; ``with_head``: the chain head
    is moved by the same statement (its four parameters follow the rows')."""
    rows = _INSERT_ROWS + ",".join([_ROW_PARAMS] * count)
    return f"WITH appended AS ({rows}) {_UPSERT_HEAD}" if with_head else rows


_UPSERT_CHECKPOINT = upsert_checkpoint("%s")


def _row(values: Any) -> ReceiptRow:
    seq, receipt_id, subject_id, ts, event, body, kid, signature, prev_hash, hash_ = values
    return ReceiptRow(
        seq=int(seq),
        receipt_id=str(receipt_id),
        subject_id=str(subject_id),
        timestamp=int(ts),
        event=str(event),
        body=str(body),
        kid=str(kid),
        signature=str(signature),
        prev_hash=str(prev_hash),
        hash=str(hash_),
    )


def _newest(found: Any) -> tuple[int, str] | None:
    return None if found is None else (int(found[0]), str(found[1]))


def _head_params(head: ChainHead) -> tuple[Any, ...]:
    return head.seq, head.hash, head.kid, head.signature


def _position(found: Any) -> tuple[ChainState, ReceiptRow | None]:
    """The signed chain state and the newest row, from a row of ``_SELECT_POSITION``."""
    chain, newest = found[:11], found[11:]
    return chain_state_from_row(chain), (None if newest[0] is None else _row(newest))


async def _insert(conn: psycopg.AsyncConnection[Any], rows: list[Values], head: ChainHead) -> None:
    """Insert ``rows`` and move the chain head, ``_INSERT_CHUNK`` rows per statement (the
    head with the last one)."""
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        params = [value for values in chunk for value in values]
        last = start + _INSERT_CHUNK >= len(rows)
        if last:
            params += _head_params(head)
        await conn.execute(_insert_sql(len(chunk), last), params)


def _sever(conn: psycopg.AsyncConnection[Any]) -> None:
    """Shut a connection's socket down (both directions): whatever waits on it wakes at once
    and libpq reports the connection broken. Its descriptor stays open for psycopg to close.
    (Where a socket is not a file descriptor that ``os.dup`` can copy, as on Windows, this does
    nothing, and a server that does not answer is waited for as psycopg waits.)"""
    with (
        contextlib.suppress(OSError, ValueError, psycopg.Error),
        socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock,
    ):
        sock.shutdown(socket.SHUT_RDWR)


class _Deadline:
    """Severs ``conn`` unless the ``with`` block ends within ``seconds``: a bound on one
    operation that holds when the server stops answering without closing the connection,
    where psycopg itself would wait for the kernel to give up (if it ever does)."""

    __slots__ = ("_handle", "expired")

    def __init__(self, conn: psycopg.AsyncConnection[Any], seconds: float) -> None:
        self.expired = False
        self._handle = asyncio.get_running_loop().call_later(seconds, self._expire, conn)

    def _expire(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.expired = True
        _sever(conn)

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.cancel()


class PostgresStore(GroupCommit, StoreBase):
    """Receipts in PostgreSQL (``postgresql://`` or ``postgres://`` URL, libpq syntax)."""

    def __init__(
        self,
        url: str,
        signer: ReceiptSigner | None,
        *,
        timeout: float = 5.0,
        pool_size: int = 10,
    ) -> None:
        super().__init__(url, signer)
        self._timeout = timeout
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._pool_lock: asyncio.Lock | None = None
        self._init_group_commit()
        self._batch_task: asyncio.Task[None] | None = None  # the batch being written
        self._chain: ChainWriter | None = None  # used by one batch at a time
        # After a failed connection attempt, calls fail fast for a moment instead of queueing
        # up behind one another, each waiting out its own timeout.
        self._retry_after = 0.0
        self._last_failure = ""  # why the last attempt to connect failed
        # Defaults for what the URL does not set itself.
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ValueError(f"invalid PostgreSQL URL {redact_url(url)!r}: {exc}") from None
        defaults = {"connect_timeout": max(1, round(timeout)), "application_name": "asgi-consent"}
        self._connect_kwargs: dict[str, Any] = {k: v for k, v in defaults.items() if k not in given}

    def _unavailable(self, exc: BaseException | str) -> StoreUnavailable:
        return StoreUnavailable(f"PostgreSQL receipt store {redact_url(self.url)}: {exc}")

    # -- the pool ------------------------------------------------------------------------
    async def _get_pool(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is not None:
                return self._pool
            if time.monotonic() < self._retry_after:
                # Not tried again yet: say why the last attempt failed, which may not be the
                # server (a missing privilege, a TLS setting).
                raise psycopg.OperationalError(f"{self._last_failure} (retrying shortly)")
            pool: AsyncConnectionPool | None = None
            try:
                # One direct connection first: it fails at once when the server refuses
                # connections (a pool would keep retrying until its timeout), and it creates
                # the tables.
                conn = await psycopg.AsyncConnection.connect(self.url, **self._connect_kwargs)
                try:
                    with _Deadline(conn, self._timeout):
                        await self._create_schema(conn)
                finally:
                    await conn.close()
                pool = AsyncConnectionPool(
                    self.url,
                    # Autocommit: a transaction costs no round trip beyond its statements,
                    # and the liveness check no switching of the mode back and forth.
                    kwargs={**self._connect_kwargs, "autocommit": True},
                    min_size=1,
                    max_size=self._pool_size,
                    open=False,
                    timeout=self._timeout,
                    check=self._check_connection,
                    name="asgi-consent",
                )
                await pool.open(wait=True, timeout=self._timeout)
            except BaseException as exc:
                self._retry_after = time.monotonic() + RETRY_INTERVAL
                self._last_failure = str(exc).strip() or type(exc).__name__
                if pool is not None:
                    await pool.close(timeout=0)
                raise
            self._pool = pool
            return pool

    async def _discard_pool(self, pool: AsyncConnectionPool) -> None:
        """Forget a pool that failed; the next call builds a fresh one."""
        if self._pool is pool:
            self._pool = None
            with contextlib.suppress(Exception):
                await pool.close(timeout=0)

    async def _create_schema(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Create the tables unless they exist (:func:`.schema.create_postgres_tables`); warn
        when the server does not wait for the disk before it answers a commit."""
        async with conn.transaction():
            await create_postgres_tables(conn)
            cur = await conn.execute("SHOW synchronous_commit")
            setting = await cur.fetchone()
        if setting is not None and str(setting[0]).lower() == "off":
            logger.warning(
                "PostgreSQL receipt store %s: synchronous_commit is off, so a receipt may be "
                "lost in a crash after the visitor was told it was recorded",
                redact_url(self.url),
            )

    async def _check_connection(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The pool's liveness check of a connection it hands out (one empty query; the
        pool's connections are in autocommit mode), bounded like every other operation."""
        with _Deadline(conn, self._timeout):
            await conn.execute("")

    async def _with_conn(self, fn: Any) -> Any:
        """Run ``fn(conn)`` on a pooled connection, within ``timeout`` seconds, mapping
        failures to StoreUnavailable."""
        try:
            pool = await self._get_pool()
        except (psycopg.Error, OSError) as exc:
            raise self._unavailable(exc) from exc
        deadline: _Deadline | None = None
        try:
            async with pool.connection() as conn:
                with _Deadline(conn, self._timeout) as deadline:
                    return await fn(conn)
        except psycopg.IntegrityError as exc:
            raise ValueError(f"receipt rejected by the store: {exc}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            await self._discard_pool(pool)
            if deadline is not None and deadline.expired:
                raise self._unavailable(f"no answer within {self._timeout:g} s") from exc
            raise self._unavailable(exc) from exc
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    # -- web side -------------------------------------------------------------------------
    async def open(self) -> bool:
        try:
            await self._get_pool()
        except (psycopg.Error, OSError) as exc:
            logger.warning(
                "%s; receipts cannot be recorded until it is reachable", self._unavailable(exc)
            )
            return False
        return True

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def append(self, receipt: Receipt) -> StoredReceipt:
        """Group commit (:class:`GroupCommit`): appends that arrive while a transaction is
        running wait, and the next transaction, written by a task of its own, records all of
        them (one WAL flush instead of one each, and one hold of the chain lock). Nobody
        returns before their receipt is committed."""
        return await self._append_in_batch(receipt, self._require_signer())

    def _write_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[PendingAppend], signer: ReceiptSigner
    ) -> None:
        self._batch_task = loop.create_task(self._run_batch(loop, batch, signer))

    async def _run_batch(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[PendingAppend],
        signer: ReceiptSigner,
    ) -> None:
        try:
            await self._commit_batch(batch, signer)
        except BaseException:  # cancelled (the server is stopping): nobody is told "recorded"
            for entry in batch:
                settle(
                    entry.result,
                    # Possibly while COMMIT was on its way.
                    StoreUnavailable(
                        "PostgreSQL receipt store: the commit was cancelled", maybe_recorded=True
                    ),
                )
            raise
        finally:
            self._batch_task = None
            self._batch_done(loop, signer)

    async def _commit_batch(
        self,
        batch: list[PendingAppend],
        signer: ReceiptSigner,
    ) -> None:
        committing = False  # COMMIT sent: a failure from then on leaves the outcome unknown
        if self._chain is None:
            self._chain = ChainWriter(signer, redact_url(self.url))
        chain = self._chain

        async def write(conn: psycopg.AsyncConnection[Any]) -> list[StoredReceipt]:
            nonlocal committing
            # Three round trips: BEGIN with the lock and the position, the rows with the new
            # chain head (one statement for up to _INSERT_CHUNK rows), COMMIT. The pool's
            # connections are in autocommit mode, so nothing else is sent.
            try:
                cur = await conn.execute(_BEGIN_AND_POSITION)
                while cur.nextset():
                    pass
                found = await cur.fetchone()
                assert found is not None
                extension = chain.extend(*_position(found), [e.receipt for e in batch])
                await _insert(conn, extension.rows, extension.head)
                committing = True
                await conn.execute("COMMIT")
            except BaseException:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
            chain.written(extension)
            return extension.stored

        try:
            results: list[StoredReceipt] = await self._with_conn(write)
        except ValueError as exc:
            if len(batch) == 1:
                settle(batch[0].result, exc)
                return
            # One receipt rejected (a duplicate id): record the others one by one.
            for entry in batch:
                await self._commit_batch([entry], signer)
            return
        except Exception as exc:
            error = exc
            if committing and isinstance(exc, StoreUnavailable):
                error = StoreUnavailable(str(exc), maybe_recorded=True)
                error.__cause__ = exc.__cause__
            for entry in batch:
                settle(entry.result, error)
            return
        for entry, stored in zip(batch, results, strict=True):
            if not entry.result.done():
                entry.result.set_result(stored)

    async def archive_policy(self, entry: ArchivedPolicy) -> bool:
        signer = self._require_signer()

        async def write(conn: psycopg.AsyncConnection[Any]) -> bool:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
                held = await conn.execute(
                    "SELECT 1 FROM consent_policies WHERE digest = %s", (entry.digest,)
                )
                if await held.fetchone() is not None:
                    return False
                any_held = await conn.execute("SELECT 1 FROM consent_policies LIMIT 1")
                began = await any_held.fetchone() is None
                found = await (await conn.execute(_SELECT_POSITION)).fetchone()
                assert found is not None
                extension = policy_extension(
                    signer,
                    redact_url(self.url),
                    *_position(found),
                    revision=entry.revision,
                    digest=entry.digest,
                    began=began,
                )
                await _insert(conn, extension.rows, extension.head)
                await conn.execute(
                    "INSERT INTO consent_policies (digest, revision, ts, body)"
                    " VALUES (%s, %s, %s, %s)",
                    (entry.digest, entry.revision, entry.timestamp, entry.body),
                )
            return True

        written: bool = await self._with_conn(write)
        return written

    async def _select_one(self, sql: str, params: tuple[Any, ...]) -> StoredReceipt | None:
        async def read(conn: psycopg.AsyncConnection[Any]) -> ReceiptRow | None:
            found = await (await conn.execute(sql, params)).fetchone()  # autocommit
            return None if found is None else _row(found)

        row: ReceiptRow | None = await self._with_conn(read)
        return None if row is None else row.readable()

    async def latest_for_subject(self, subject_id: str) -> StoredReceipt | None:
        return await self._select_one(
            f"SELECT {_COLUMNS} FROM consent_receipts WHERE subject_id = %s"
            " ORDER BY seq DESC LIMIT 1",
            (subject_id,),
        )

    async def get(self, receipt_id: str) -> StoredReceipt | None:
        return await self._select_one(
            f"SELECT {_COLUMNS} FROM consent_receipts WHERE receipt_id = %s", (receipt_id,)
        )

    async def history_for_subject(
        self, subject_id: str, limit: int = HISTORY_LIMIT
    ) -> list[StoredReceipt]:
        async def read(conn: psycopg.AsyncConnection[Any]) -> list[ReceiptRow]:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM consent_receipts WHERE subject_id = %s"
                " ORDER BY seq DESC LIMIT %s",
                (subject_id, limit),
            )
            return [_row(values) for values in await cursor.fetchall()]

        rows: list[ReceiptRow] = await self._with_conn(read)
        return [row.readable() for row in rows]

    # -- command-line side ------------------------------------------------------------------
    @contextlib.contextmanager
    def _sync_conn(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = psycopg.connect(self.url, **self._connect_kwargs)
        except (psycopg.Error, OSError) as exc:
            raise self._unavailable(exc) from exc
        try:
            yield conn
        except psycopg.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc
        finally:
            conn.close()

    def iter_values(
        self,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        *,
        max_seq: int | None = None,
        min_seq: int | None = None,
        stats: bool = False,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows as psycopg returns them, in batches (see ``StoreBase.iter_values``)."""
        where, params = range_filter("%s", since, until, event, max_seq, min_seq)
        query = f"SELECT {_COLUMNS} FROM consent_receipts{where} ORDER BY seq"
        if stats:
            query = with_stats_columns(_COLUMNS, where)
        # A server-side cursor: rows arrive in batches, memory stays flat.
        with (
            self._sync_conn() as conn,
            conn.transaction(),
            conn.cursor(name="consent_export") as cursor,
        ):
            cursor.itersize = 500
            cursor.execute(query, params)
            while batch := cursor.fetchmany(500):
                yield batch

    row_from_values = staticmethod(_row)

    def iter_subject(self, subject_id: str) -> Iterator[ReceiptRow]:
        with self._sync_conn() as conn:
            cursor = conn.execute(
                f"SELECT {_COLUMNS} FROM consent_receipts WHERE subject_id = %s ORDER BY seq",
                (subject_id,),
            )
            while batch := cursor.fetchmany(500):
                yield from map(_row, batch)

    def chain_state(self) -> ChainState:
        with self._sync_conn() as conn:
            return chain_state_from_row(conn.execute(_SELECT_CHAIN).fetchone())

    def count(self) -> int:
        with self._sync_conn() as conn:
            found = conn.execute(
                "SELECT COUNT(*) FROM consent_receipts WHERE subject_id <> ''"
            ).fetchone()
            return 0 if found is None else int(found[0])

    def iter_policies(self) -> Iterator[ArchivedPolicy]:
        with self._sync_conn() as conn:
            held = conn.execute("SELECT to_regclass('consent_policies') IS NOT NULL").fetchone()
            if not (held and held[0]):
                return  # created before the archive, and not opened by a site since
            found = conn.execute("SELECT digest, revision, ts, body FROM consent_policies")
            for digest, revision, ts, body in found.fetchall():
                yield ArchivedPolicy(str(digest), str(revision), int(ts), str(body))

    def purge(self, before: int) -> int:
        signer = self._require_signer()
        with self._sync_conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            found = conn.execute(
                "SELECT MIN(seq) FROM consent_receipts WHERE ts >= %s", (before,)
            ).fetchone()
            cut = None if found is None else found[0]
            if cut is None:
                last = _newest(conn.execute(_SELECT_NEWEST).fetchone())
            else:
                last = _newest(
                    conn.execute(
                        "SELECT seq, hash FROM consent_receipts WHERE seq < %s"
                        " ORDER BY seq DESC LIMIT 1",
                        (cut,),
                    ).fetchone()
                )
            if last is None:
                return 0
            deleted = conn.execute(
                "DELETE FROM consent_receipts WHERE seq <= %s", (last[0],)
            ).rowcount
            state = chain_state_from_row(conn.execute(_SELECT_CHAIN).fetchone())
            checkpoint = checkpoint_after(state, last, deleted, before, signer)
            conn.execute(
                _UPSERT_CHECKPOINT,
                (
                    checkpoint.seq,
                    checkpoint.hash,
                    checkpoint.count,
                    checkpoint.before,
                    checkpoint.time,
                    checkpoint.kid,
                    checkpoint.signature,
                ),
            )
        return int(deleted)

    def append_record(
        self, make: Callable[[ChainState, ReceiptRow | None], tuple[ReceiptRow, ChainHead]]
    ) -> ReceiptRow:
        with self._sync_conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            found = conn.execute(_SELECT_POSITION).fetchone()
            assert found is not None
            record, head = make(*_position(found))
            conn.execute(_insert_sql(1, True), [*row_values(record), *_head_params(head)])
        return record

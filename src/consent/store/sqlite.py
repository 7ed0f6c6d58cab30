"""``sqlite:///path.db``: the default store, one file, safe for several worker processes.

* WAL journal and ``synchronous=FULL``: a receipt is on disk before ``append`` returns. (The
  web side's writer commits with ``synchronous=NORMAL`` and then syncs the WAL file itself,
  after releasing the write lock, before any of the batch's appends returns: the same sync,
  while the next writer goes ahead. See :meth:`SQLiteStore._commit_locked`.)
* Every append runs in ``BEGIN IMMEDIATE``: the write lock is taken before the chain position
  is read, so processes writing the same file (uvicorn/gunicorn workers) keep one valid chain.
* Appends that arrive while another one is being committed are committed together by the
  next transaction (group commit): one sync to disk for many receipts.
* The web side runs sqlite3 in a worker thread; the command line uses its own connections.
* A file that cannot be written (read-only, missing directory, full disk) makes ``append``
  raise :class:`StoreUnavailable`; the connection is dropped and the next call tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

from ..receipts import ChainHead, Receipt, ReceiptSigner, StoredReceipt
from .base import (
    HISTORY_LIMIT,
    VALUES_BATCH,
    ArchivedPolicy,
    GroupCommit,
    PendingAppend,
    ReceiptRow,
    StoreBase,
    StoreDamaged,
    StoreUnavailable,
    range_filter,
    row_values,
    settle,
)
from .chain import (
    ChainState,
    ChainWriter,
    Extension,
    chain_state_from_row,
    checkpoint_after,
    policy_extension,
)
from .schema import CHAIN_COLUMNS as _CHAIN_COLUMNS
from .schema import COLUMNS as _COLUMNS
from .schema import (
    SCHEMA_VERSION,
    create_sqlite_tables,
    sqlite_version,
    upsert_checkpoint,
    upsert_head,
)
from .statistics import with_stats_columns

__all__ = ["SQLiteStore", "path_from_url"]

logger = logging.getLogger("consent.store")

T = TypeVar("T")


def path_from_url(url: str) -> str:
    """``sqlite:///rel/path.db`` -> ``rel/path.db``; ``sqlite:////abs/path.db`` -> ``/abs/path.db``."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not sep:
        raise ValueError(f"not a sqlite URL: {url!r}")
    if not rest.startswith("/"):
        raise ValueError(
            f"invalid sqlite URL {url!r}: use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    path = rest[1:].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ValueError(f"invalid sqlite URL {url!r}: a file path is needed (use memory://)")
    return path


_ROW_FIELDS = tuple(ReceiptRow.__dataclass_fields__)
_ROW_TYPES = (int, str, str, int, str, str, str, str, str, str)


def _row(values: tuple[Any, ...]) -> ReceiptRow:
    if tuple(map(type, values)) == _ROW_TYPES:
        # The usual case (what the store wrote): no conversion needed, so skip the dataclass
        # __init__ (an export or verification builds millions of rows).
        row = object.__new__(ReceiptRow)
        row.__dict__.update(zip(_ROW_FIELDS, values, strict=True))
        return row
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


def _chain_state(conn: sqlite3.Connection) -> ChainState:
    return chain_state_from_row(
        conn.execute(f"SELECT {_CHAIN_COLUMNS} FROM consent_chain WHERE id = 1").fetchone()
    )


def _newest(conn: sqlite3.Connection) -> tuple[int, str] | None:
    found = conn.execute("SELECT seq, hash FROM consent_receipts ORDER BY seq DESC LIMIT 1")
    values = found.fetchone()
    return None if values is None else (int(values[0]), str(values[1]))


# The chain row (or NULLs) and the newest row (or NULLs), in one statement.
_POSITION = (
    f"SELECT {_CHAIN_COLUMNS}, newest.*"
    " FROM (SELECT 1) LEFT JOIN consent_chain ON consent_chain.id = 1"
    f" LEFT JOIN (SELECT {_COLUMNS} FROM consent_receipts ORDER BY seq DESC LIMIT 1) AS newest"
)


def _position(conn: sqlite3.Connection) -> tuple[ChainState, ReceiptRow | None]:
    """The signed chain state and the newest row, as the chain's writer needs them."""
    found = conn.execute(_POSITION).fetchone()
    chain, newest = found[:11], found[11:]
    return chain_state_from_row(chain), (None if newest[0] is None else _row(newest))


_INSERT = f"INSERT INTO consent_receipts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
_UPSERT_HEAD = upsert_head("?")
_UPSERT_CHECKPOINT = upsert_checkpoint("?")


def _insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], head: ChainHead) -> None:
    conn.executemany(_INSERT, rows)
    conn.execute(_UPSERT_HEAD, (head.seq, head.hash, head.kid, head.signature))


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _archive(
    entry: ArchivedPolicy, signer: ReceiptSigner, where: str, conn: sqlite3.Connection
) -> bool:
    """Keep ``entry`` with its signed record, unless a text of its digest is held."""
    with _write_transaction(conn):
        held = conn.execute("SELECT 1 FROM consent_policies WHERE digest = ?", (entry.digest,))
        if held.fetchone() is not None:
            return False
        began = conn.execute("SELECT 1 FROM consent_policies LIMIT 1").fetchone() is None
        extension = policy_extension(
            signer,
            where,
            *_position(conn),
            revision=entry.revision,
            digest=entry.digest,
            began=began,
        )
        _insert(conn, extension.rows, extension.head)
        conn.execute(
            "INSERT INTO consent_policies (digest, revision, ts, body) VALUES (?, ?, ?, ?)",
            (entry.digest, entry.revision, entry.timestamp, entry.body),
        )
    return True


def _can_defer_sync(conn: sqlite3.Connection) -> bool:
    """Switch a web-side connection to ``synchronous=NORMAL`` when its store can sync the WAL
    file itself after each commit (a WAL journal, and ``os.fdatasync``); else it stays FULL."""
    if not hasattr(os, "fdatasync") or fcntl is None:
        return False
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        return False
    conn.execute("PRAGMA synchronous = NORMAL")
    return True


def _write(receipts: list[Receipt], writer: ChainWriter, conn: sqlite3.Connection) -> Extension:
    """Seal and insert ``receipts`` after the end of the log, in one transaction; move the
    head once (:class:`ChainWriter` checks the end first)."""
    with _write_transaction(conn):
        extension = writer.extend(*_position(conn), receipts)
        _insert(conn, extension.rows, extension.head)
    writer.written(extension)
    return extension


class SQLiteStore(GroupCommit, StoreBase):
    """Receipts in one SQLite file."""

    shared_reads = True

    def __init__(self, url: str, signer: ReceiptSigner | None, *, timeout: float = 5.0) -> None:
        super().__init__(url, signer)
        self.path = path_from_url(url)
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        # (st_dev, st_ino) of the file the connection has open; once a database existed, a
        # reconnect never creates a new empty one (that would silently start a second log).
        self._ident: tuple[int, int] | None = None
        self._existed = False
        self._lock = threading.Lock()
        # <file>-lock, on which the appending processes queue (see _queue_for_writing)
        self._queue_fd: int | None = None
        # <file>-wal, synced after each commit when the connection defers its sync (see
        # _commit_locked); None until the first such commit
        self._wal_fd: int | None = None
        self._defer_sync = False  # the web side's connection commits with synchronous=NORMAL
        self._init_group_commit()  # touched by the event loop only
        # The thread that commits appends (one per store, started by the first append).
        self._writer: ThreadPoolExecutor | None = None
        self._chain: ChainWriter | None = None  # used by the writer thread only

    # -- connections --------------------------------------------------------------------
    def _connect(self, *, create: bool) -> sqlite3.Connection:
        path = Path(self.path)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise StoreUnavailable(f"no receipt database at {self.path}")
        conn = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if create and version < SCHEMA_VERSION:
                self._create_schema_retrying(conn)
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_schema_retrying(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL while another process opens it can report "locked"
        # at once, without waiting on the busy timeout: retry until the timeout.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                self._create_schema(conn)
                return
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if "locked" not in message and "busy" not in message:
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            logger.warning("SQLite receipt store %s: WAL journal unavailable", self.path)
        with _write_transaction(conn):
            create_sqlite_tables(conn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the web side's connection, (re)connecting as needed."""
        with self._lock:
            return self._call_locked(fn)

    def _call_locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._conn is None:
                self._conn = self._connect(create=not self._existed)
                self._ident = self._file_identity()
                self._existed = True
                self._defer_sync = _can_defer_sync(self._conn)
            elif self._file_identity() != self._ident:
                # Moved, replaced or deleted under a running server: writing on would put
                # receipts into a file nobody finds. Refuse until the file is back.
                self._drop()
                raise StoreUnavailable(
                    f"SQLite receipt store {self.path}: the database file was moved, replaced or deleted"
                )
            return fn(self._conn)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"receipt rejected by the store: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            self._drop()
            raise StoreUnavailable(f"SQLite receipt store {self.path}: {exc}") from exc

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._wal_fd is not None:  # the next connection may have another WAL file
            with contextlib.suppress(OSError):
                os.close(self._wal_fd)
            self._wal_fd = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(functools.partial(self._call, fn))

    @contextlib.contextmanager
    def _sync_conn(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection for the command line (never creates the file)."""
        try:
            conn = self._connect(create=False)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"SQLite receipt store {self.path}: {exc}") from exc
        try:
            yield conn
        except sqlite3.IntegrityError:
            raise
        except sqlite3.OperationalError as exc:
            message = f"SQLite receipt store {self.path}: {exc}"
            if str(exc).startswith("no such table") and sqlite_version(conn) >= 1:
                raise StoreDamaged(
                    f"{message}, although the file was created as a receipt store"
                ) from exc
            raise StoreUnavailable(message) from exc
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"SQLite receipt store {self.path}: {exc}") from exc
        finally:
            conn.close()

    # -- web side -----------------------------------------------------------------------
    async def open(self) -> bool:
        try:
            await self._run(lambda conn: None)
        except StoreUnavailable as exc:
            logger.warning("%s; receipts cannot be recorded until it is writable", exc)
            return False
        return True

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=False)  # commits already handed to it still finish
            self._writer = None
        with self._lock:
            self._drop()
            if self._queue_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._queue_fd)
                self._queue_fd = None

    async def append(self, receipt: Receipt) -> StoredReceipt:
        """Group commit (:class:`GroupCommit`): appends that arrive while a transaction is
        being committed wait, and the next transaction (one trip to the writer thread, one
        sync to disk) records all of them. Nobody returns before their receipt is committed."""
        return await self._append_in_batch(receipt, self._require_signer())

    def _write_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[PendingAppend], signer: ReceiptSigner
    ) -> None:
        """Commit ``batch`` in the writer thread; :meth:`_committed` answers it."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="consent-sqlite-writer")
        try:
            done = loop.run_in_executor(self._writer, self._commit_locked, batch, signer)
        except RuntimeError as exc:  # the interpreter is shutting down
            done = loop.create_future()
            done.set_exception(exc)
        done.add_done_callback(functools.partial(self._committed, loop, signer, batch))

    def _committed(
        self,
        loop: asyncio.AbstractEventLoop,
        signer: ReceiptSigner,
        batch: list[PendingAppend],
        done: asyncio.Future[None],
    ) -> None:
        """On the event loop, when a batch is committed (or failed): answer its appends and
        start the next batch, if any append is waiting."""
        failed = None if done.cancelled() else done.exception()
        for entry in batch:
            if entry.stored is not None:
                if not entry.result.done():  # not cancelled meanwhile
                    entry.result.set_result(entry.stored)
            else:  # rejected, or (error None) the writer itself failed
                settle(
                    entry.result,
                    entry.error
                    or StoreUnavailable(f"SQLite receipt store {self.path}: {failed!r}"),
                )
        self._batch_done(loop, signer)

    def _commit_locked(self, batch: list[PendingAppend], signer: ReceiptSigner) -> None:
        """Commit ``batch`` in the writer thread.

        With ``synchronous=FULL`` SQLite syncs the WAL file inside ``COMMIT``, while it holds
        the database's write lock, so the other worker processes wait for the disk too. The
        web side's connection instead commits with ``synchronous=NORMAL`` (the frames are
        written, not synced) and this thread syncs the WAL file itself once the lock is
        released, before any append of the batch is answered: the same sync, while the next
        writer goes ahead. A checkpoint in between syncs the WAL first (SQLite does so before
        copying frames into the database, and syncs the database after), so the frames are
        never only in memory. If the sync fails, the batch's appends fail."""
        with self._lock:
            queued = self._queue_for_writing()
            try:
                self._commit_batch(batch, signer)
            finally:
                if queued:
                    with contextlib.suppress(OSError):
                        fcntl.flock(self._queue_fd, fcntl.LOCK_UN)  # type: ignore[arg-type]
            if self._defer_sync and any(entry.stored is not None for entry in batch):
                try:
                    self._sync_wal()
                except OSError as exc:
                    self._drop()
                    # Committed, so in the log, but not known to be on disk.
                    error = StoreUnavailable(
                        f"SQLite receipt store {self.path}: syncing the WAL failed: {exc}",
                        maybe_recorded=True,
                    )
                    for entry in batch:
                        entry.stored = None
                        entry.fail(error)

    def _sync_wal(self) -> None:
        if self._wal_fd is None:
            # The connection that just committed keeps the WAL file open and in place.
            self._wal_fd = os.open(self.path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        os.fdatasync(self._wal_fd)

    def _queue_for_writing(self) -> bool:
        """Wait for the other processes' appends to this file to finish (holding ``_lock``).

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20... ms between attempts, so a worker
        that finds another one committing (about a millisecond) used to sleep far longer than
        the commit took. Writers of this store first take an ``flock`` on ``<file>-lock``,
        polled every 0.1-1 ms: the next one starts as soon as the previous one is done. Only a
        queue: ``BEGIN IMMEDIATE`` still serialises the writers (and any other program), and
        without the lock file (no fcntl, not creatable) or after the timeout, appends go
        ahead as before."""
        if fcntl is None:
            return False
        if self._queue_fd is None:
            try:
                self._queue_fd = os.open(
                    self.path + "-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
            except OSError:
                return False
        deadline = time.monotonic() + self._timeout
        delay = 0.0001
        while True:
            try:
                fcntl.flock(self._queue_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.001)
            except OSError:
                return False

    def _commit_batch(self, batch: list[PendingAppend], signer: ReceiptSigner) -> None:
        """Commit ``batch`` (holding ``self._lock``); a receipt the database rejects is
        retried alone so that it cannot take the others down with it."""
        if self._chain is None:
            self._chain = ChainWriter(signer, self.path)
        try:
            extension = self._call_locked(
                functools.partial(_write, [e.receipt for e in batch], self._chain)
            )
        except ValueError as exc:
            if len(batch) == 1:
                batch[0].fail(exc)
                return
            for entry in batch:
                self._commit_batch([entry], signer)
            return
        except BaseException as exc:
            for entry in batch:
                entry.fail(exc)
            return
        for entry, result in zip(batch, extension.stored, strict=True):
            entry.stored = result

    async def archive_policy(self, entry: ArchivedPolicy) -> bool:
        signer = self._require_signer()
        return await self._run(functools.partial(_archive, entry, signer, self.path))

    async def latest_for_subject(self, subject_id: str) -> StoredReceipt | None:
        def read(conn: sqlite3.Connection) -> ReceiptRow | None:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM consent_receipts WHERE subject_id = ?"
                " ORDER BY seq DESC LIMIT 1",
                (subject_id,),
            ).fetchone()
            return None if found is None else _row(found)

        row = await self._run(read)
        return None if row is None else row.readable()

    async def get(self, receipt_id: str) -> StoredReceipt | None:
        def read(conn: sqlite3.Connection) -> ReceiptRow | None:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM consent_receipts WHERE receipt_id = ?", (receipt_id,)
            ).fetchone()
            return None if found is None else _row(found)

        row = await self._run(read)
        return None if row is None else row.readable()

    async def history_for_subject(
        self, subject_id: str, limit: int = HISTORY_LIMIT
    ) -> list[StoredReceipt]:
        def read(conn: sqlite3.Connection) -> list[ReceiptRow]:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM consent_receipts WHERE subject_id = ?"
                " ORDER BY seq DESC LIMIT ?",
                (subject_id, limit),
            ).fetchall()
            return [_row(values) for values in found]

        return [row.readable() for row in await self._run(read)]

    # -- command-line side --------------------------------------------------------------
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
        """The rows as sqlite3 returns them, in batches (see ``StoreBase.iter_values``)."""
        where, params = range_filter("?", since, until, event, max_seq, min_seq)
        query = f"SELECT {_COLUMNS} FROM consent_receipts{where} ORDER BY seq"
        if stats:
            query = with_stats_columns(_COLUMNS, where)
        with self._sync_conn() as conn:
            cursor = conn.execute(query, params)
            while batch := cursor.fetchmany(VALUES_BATCH):
                yield batch

    row_from_values = staticmethod(_row)

    def iter_subject(self, subject_id: str) -> Iterator[ReceiptRow]:
        with self._sync_conn() as conn:
            cursor = conn.execute(
                f"SELECT {_COLUMNS} FROM consent_receipts WHERE subject_id = ? ORDER BY seq",
                (subject_id,),
            )
            while batch := cursor.fetchmany(VALUES_BATCH):
                yield from map(_row, batch)

    def chain_state(self) -> ChainState:
        with self._sync_conn() as conn:
            return _chain_state(conn)

    def count(self) -> int:
        with self._sync_conn() as conn:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM consent_receipts WHERE subject_id <> ''"
            ).fetchone()
            return int(n)

    def iter_policies(self) -> Iterator[ArchivedPolicy]:
        with self._sync_conn() as conn:
            held = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'consent_policies'"
            ).fetchone()
            if held is None and sqlite_version(conn) < 2:
                return  # created before the archive, and not opened by a site since
            found = conn.execute("SELECT digest, revision, ts, body FROM consent_policies")
            for digest, revision, ts, body in found.fetchall():
                yield ArchivedPolicy(str(digest), str(revision), int(ts), str(body))

    def purge(self, before: int) -> int:
        signer = self._require_signer()
        with self._sync_conn() as conn:
            # Overwrite deleted content instead of leaving it in free pages.
            conn.execute("PRAGMA secure_delete = ON")
            with _write_transaction(conn):
                (cut,) = conn.execute(
                    "SELECT MIN(seq) FROM consent_receipts WHERE ts >= ?", (before,)
                ).fetchone()
                if cut is None:
                    last = _newest(conn)
                else:
                    found = conn.execute(
                        "SELECT seq, hash FROM consent_receipts WHERE seq < ?"
                        " ORDER BY seq DESC LIMIT 1",
                        (cut,),
                    ).fetchone()
                    last = None if found is None else (int(found[0]), str(found[1]))
                if last is None:
                    return 0
                deleted = conn.execute(
                    "DELETE FROM consent_receipts WHERE seq <= ?", (last[0],)
                ).rowcount
                checkpoint = checkpoint_after(_chain_state(conn), last, deleted, before, signer)
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
        with self._sync_conn() as conn, _write_transaction(conn):
            record, head = make(*_position(conn))
            _insert(conn, [row_values(record)], head)
        return record

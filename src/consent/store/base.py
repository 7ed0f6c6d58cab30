"""What every receipt store provides, and the pieces they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..receipts import GENESIS_HASH, ChainHead, Checkpoint, Receipt, ReceiptSigner, StoredReceipt

__all__ = [
    "BATCH_TURNS",
    "HISTORY_LIMIT",
    "INCIDENT_EVENT",
    "KEYED_EVENT",
    "POLICY_EVENT",
    "RECORD_EVENTS",
    "ArchivedPolicy",
    "ChainBroken",
    "ChainState",
    "GroupCommit",
    "PendingAppend",
    "PurgePlan",
    "ReceiptRow",
    "ReceiptStore",
    "StoreBase",
    "StoreDamaged",
    "StoreUnavailable",
    "redact_url",
    "settle",
]

logger = logging.getLogger("consent.store")


BATCH_TURNS = 4
"""Turns of the event loop between a group commit being answered (or a first append) and the
next batch being written: enough for the answered requests' responses to go out and for the
requests already in progress to reach the store, so that they share one commit (one sync to
disk, one hold of the chain lock) instead of each paying for their own. An idle loop turns in
microseconds. See "Group commit" in docs/performance.md for the figures."""


class StoreUnavailable(Exception):
    """The store cannot durably record (or read) receipts right now.

    Raised by ``append``, ``get`` and ``latest_for_subject`` when the database file is not
    writable, the disk is full, the server is down or does not answer in time, and so on. The
    consent endpoints answer 503; pages keep being served; the next call tries again.

    ``maybe_recorded`` is false when nothing was recorded. It is true when the store failed
    after the receipt was handed to it for commit and cannot say whether it was committed
    (the commit was sent and no answer came, or the commit is in the file but syncing it to
    disk failed): the receipt may be in the log although the visitor is told it could not be
    confirmed. Such receipts are logged by id, at ERROR, so that an operator can tell them
    apart.
    """

    def __init__(self, message: str, *, maybe_recorded: bool = False) -> None:
        super().__init__(message)
        self.maybe_recorded = maybe_recorded


class StoreDamaged(StoreUnavailable):
    """The store was created as a receipt store, and a part of it is missing (a table
    dropped): not a passing outage but damage, which verification reports as a finding."""


class ChainBroken(StoreUnavailable):
    """The end of the log is not what its signed chain head records (receipts or the head
    deleted, the head edited or pointed elsewhere): the store refuses to append, rather than
    sign a new head over the damage. Logged at ERROR with what was found; recording resumes
    once an operator has recorded an incident marker (``consent incident``)."""


@dataclass(frozen=True)
class ReceiptRow:
    """One stored row exactly as found: the indexed columns, the body and the chain fields.

    Verification works on rows rather than parsed receipts so that a row whose columns
    disagree with its signed body, or whose body no longer parses, is reported instead of
    raising.
    """

    seq: int
    receipt_id: str
    subject_id: str
    timestamp: int
    event: str
    body: str
    kid: str
    signature: str
    prev_hash: str
    hash: str

    def readable(self) -> StoredReceipt:
        """:meth:`to_stored` for the web side: an unreadable row is a store fault (503), not
        a crash."""
        try:
            return self.to_stored()
        except ValueError:
            logger.error(
                "stored consent receipt %s (seq %d) is not a valid receipt; run `consent verify`",
                self.receipt_id,
                self.seq,
            )
            raise StoreUnavailable(
                f"stored receipt {self.receipt_id} is unreadable; run `consent verify`"
            ) from None

    def to_stored(self) -> StoredReceipt:
        """Parse the body (raises ValueError when it is not a valid receipt)."""
        return StoredReceipt(
            receipt=Receipt.from_body(self.body),
            seq=self.seq,
            kid=self.kid,
            signature=self.signature,
            prev_hash=self.prev_hash,
            hash=self.hash,
            body=self.body,
        )

    @classmethod
    def from_stored(cls, stored: StoredReceipt) -> ReceiptRow:
        receipt = stored.receipt
        return cls(
            seq=stored.seq,
            receipt_id=receipt.receipt_id,
            subject_id=receipt.subject_id,
            timestamp=receipt.timestamp,
            event=receipt.event,
            body=stored.body,
            kid=stored.kid,
            signature=stored.signature,
            prev_hash=stored.prev_hash,
            hash=stored.hash,
        )


KEYED_EVENT = "chain-keyed"
"""Event of the signed record from which a log's links are keyed (written once, by the first
batch appended to a log of an earlier version)."""
INCIDENT_EVENT = "incident"
"""Event of a signed incident marker (``consent incident``)."""
POLICY_EVENT = "policy"
"""Event of the signed record written with each policy text the store archives (its revision
and digest; the first one also says that archiving began: :mod:`consent.archive`)."""
RECORD_EVENTS = frozenset({KEYED_EVENT, INCIDENT_EVENT, POLICY_EVENT})
"""The events of chain records: rows of the log that are not receipts. Their ``subject_id`` is
empty (a receipt's never is) and their body is signed with the record salt."""


@dataclass(frozen=True)
class ChainState:
    """The signed chain records: the head (last row) and the purge checkpoint, if any."""

    head: ChainHead | None = None
    checkpoint: Checkpoint | None = None

    def start(self) -> tuple[int, str]:
        """``(seq, hash)`` the surviving log links to: the checkpoint, else the genesis."""
        if self.checkpoint is not None:
            return self.checkpoint.seq, self.checkpoint.hash
        return 0, GENESIS_HASH


HISTORY_LIMIT = 1000
"""The most receipts of one visitor that their page and its download show (newest first): far
more decisions than a person makes; a visitor's script cannot make the page unbounded."""


@dataclass(frozen=True)
class PurgePlan:
    """What a purge with a cut-off would delete: ``count`` rows (receipts and chain records),
    from ``first`` to ``last`` (seq), recorded from ``oldest`` to ``newest`` (unix seconds)."""

    before: int
    count: int = 0
    first: int | None = None
    last: int | None = None
    oldest: int | None = None
    newest: int | None = None


_PASSWORD_PARAMETER = re.compile(r"(password\s*=\s*)('[^']*'|[^&\s]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The store URL with any password replaced, for messages and logs: in the user info
    (``user:secret@host``) and as a parameter (``?password=secret``, or ``password=secret``
    in a libpq keyword string)."""
    url = _PASSWORD_PARAMETER.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}"
    return f"{scheme}://{netloc}{slash}{path}"


@runtime_checkable
class ReceiptStore(Protocol):
    """A durable, append-only, hash-chained log of signed consent receipts.

    The web side uses the async methods. The command line uses the sync ones, which open
    their own short-lived connections and need no ``open()``.
    """

    url: str

    # -- web side (async) -------------------------------------------------------------
    async def open(self) -> bool:
        """Prepare the store (create tables). Never raises for an unavailable store: it
        logs, returns False, and the next call tries again."""
        ...

    async def close(self) -> None:
        """Release connections. The store may be opened again."""
        ...

    async def append(self, receipt: Receipt) -> StoredReceipt:
        """Sign, chain and durably commit ``receipt`` before returning it.

        Atomic: on any failure nothing is recorded and StoreUnavailable is raised;
        :class:`ChainBroken` when the log does not end where its signed head says (checked
        before every batch, :class:`consent.store.chain.ChainWriter`).
        """
        ...

    async def latest_for_subject(self, subject_id: str) -> StoredReceipt | None:
        """The visitor's most recent receipt."""
        ...

    async def get(self, receipt_id: str) -> StoredReceipt | None:
        """One receipt by id."""
        ...

    async def history_for_subject(
        self, subject_id: str, limit: int = HISTORY_LIMIT
    ) -> list[StoredReceipt]:
        """The visitor's receipts, newest first, at most ``limit`` of them (the visitor's
        page and its download)."""
        ...

    # -- command-line side (sync) -------------------------------------------------------
    def iter_raw(
        self,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        *,
        max_seq: int | None = None,
    ) -> Iterator[ReceiptRow]:
        """Rows in chain order, streamed in constant memory; ``since <= timestamp < until``."""
        ...

    def iter_rows(
        self,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        *,
        max_seq: int | None = None,
    ) -> Iterator[StoredReceipt]:
        """Like :meth:`iter_raw`, the receipts only (no chain records), parsed (raises
        ValueError on a row that does not parse)."""
        ...

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
        """:meth:`iter_raw` in batches of plain tuples (export and verification read the log
        this way); :meth:`row_from_values` turns one into its :class:`ReceiptRow`.

        ``stats`` (a store with statistics columns, :mod:`consent.store.statistics`): each tuple
        goes on with the receipt's statistics row (its ``STATS_COLUMNS`` after ``seq``; all
        None when it has none), read in the same query; the first ten values are the row's.
        """
        ...

    def row_from_values(self, values: tuple[Any, ...]) -> ReceiptRow:
        """The :class:`ReceiptRow` of a tuple yielded by :meth:`iter_values`."""
        ...

    #: True when another process may read the log from :attr:`url` at the same time (the
    #: audit then shares a large log with a worker process).
    shared_reads: bool

    def iter_subject(self, subject_id: str) -> Iterator[ReceiptRow]:
        """Every row of one subject, in chain order (``consent export --subject``)."""
        ...

    def purge_plan(self, before: int) -> PurgePlan:
        """What :meth:`purge` with ``before`` would delete now, deleting nothing."""
        ...

    def chain_state(self) -> ChainState:
        """The signed head and purge checkpoint."""
        ...

    def count(self) -> int:
        """Number of receipts held (purged ones and chain records excluded)."""
        ...

    def purge(self, before: int) -> int:
        """Delete the oldest receipts, those up to the first one with ``timestamp >= before``.

        Writes a signed checkpoint so the remaining log still verifies. Returns how many
        receipts were deleted.
        """
        ...

    async def archive_policy(self, entry: ArchivedPolicy) -> bool:
        """Unless the store holds a text with ``entry``'s digest: in one write transaction,
        append a signed ``policy`` record (revision, digest, and whether archiving begins
        with it) after the end of the log, checked as an append is, and keep ``entry``.
        Returns whether it was written (a text is written once, never changed)."""
        ...

    def iter_policies(self) -> Iterator[ArchivedPolicy]:
        """Every archived policy text (none for a store created before the archive)."""
        ...

    def append_record(
        self, make: Callable[[ChainState, ReceiptRow | None], tuple[ReceiptRow, ChainHead]]
    ) -> ReceiptRow:
        """In one write transaction, holding the chain lock: read the signed state and the
        newest row, call ``make`` for a chain record and the head after it, write both, and
        return the record (``consent incident``). Needs no ``open()``."""
        ...


class PendingAppend:
    """One append waiting for a group commit. ``result`` is answered on the event loop; a
    store that commits in a thread sets ``stored`` or ``error`` there first."""

    __slots__ = ("error", "receipt", "result", "stored")

    def __init__(self, receipt: Receipt, result: asyncio.Future[StoredReceipt]) -> None:
        self.receipt = receipt
        self.result = result
        self.stored: StoredReceipt | None = None
        self.error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = error


def settle(result: asyncio.Future[StoredReceipt], error: BaseException) -> None:
    """Fail an append's ``result`` unless it is answered already (or its request cancelled)."""
    if not result.done():
        result.set_exception(error)


class GroupCommit:
    """Group commit of a store's appends, on the event loop.

    Appends that arrive while a batch is being written wait. A batch is written
    ``BATCH_TURNS`` turns of the loop after the previous one was answered, or after the first
    append when none runs, so that the requests in progress by then join it. The store's
    :meth:`_write_batch` writes it without the request tasks' help (a thread's future, a task
    of its own), answers each append's ``result`` and calls :meth:`_batch_done`: a cancelled
    request cannot abandon the others' receipts, and none is answered before its own is
    committed. A request cancelled while it waits for the next batch records nothing.
    """

    def _init_group_commit(self) -> None:
        self._pending: list[PendingAppend] = []
        self._committing = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of _committing

    async def _append_in_batch(self, receipt: Receipt, signer: ReceiptSigner) -> StoredReceipt:
        loop = asyncio.get_running_loop()
        entry = PendingAppend(receipt, loop.create_future())
        if self._committing and self._loop is not loop:
            # A batch was left in flight by an event loop that has stopped (a store can be
            # used from one loop after another, as test clients do): start afresh here.
            self._pending = [e for e in self._pending if e.result.get_loop() is loop]
            self._committing = False
        self._pending.append(entry)
        if not self._committing:
            self._committing = True
            self._loop = loop
            loop.call_soon(self._start_batch, loop, signer, BATCH_TURNS)
        try:
            return await entry.result
        except asyncio.CancelledError:
            # Not in a batch yet: not written, and now never will be. (Once in a batch, the
            # receipt is committed with the others.)
            with contextlib.suppress(ValueError):
                self._pending.remove(entry)
            raise

    def _start_batch(
        self, loop: asyncio.AbstractEventLoop, signer: ReceiptSigner, turns: int = 0
    ) -> None:
        """After ``turns`` more turns of the loop, write every pending append as one batch."""
        if turns > 0:
            loop.call_soon(self._start_batch, loop, signer, turns - 1)
            return
        batch, self._pending = self._pending, []
        if not batch:  # all cancelled meanwhile
            self._committing = False
            return
        self._write_batch(loop, batch, signer)

    def _write_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[PendingAppend], signer: ReceiptSigner
    ) -> None:
        raise NotImplementedError

    def _batch_done(self, loop: asyncio.AbstractEventLoop, signer: ReceiptSigner) -> None:
        """The batch is answered: start the next one, if any append is waiting."""
        if self._pending:
            loop.call_soon(self._start_batch, loop, signer, BATCH_TURNS)
        else:
            self._committing = False


class StoreBase:
    """Shared plumbing: the URL, the signer, and ``iter_rows`` on top of ``iter_raw``."""

    url: str
    # True when another process can open the same log from ``url`` and read it with
    # ``iter_values`` (export and verification may then split the work).
    shared_reads = False

    def __init__(self, url: str, signer: ReceiptSigner | None) -> None:
        self.url = url
        self._signer = signer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact_url(self.url)}>"

    def _require_signer(self) -> ReceiptSigner:
        if self._signer is None:
            raise RuntimeError(
                "this receipt store was opened without a signing key; set CONSENT_SECRET_KEY"
            )
        return self._signer

    def iter_raw(
        self,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        *,
        max_seq: int | None = None,
    ) -> Iterator[ReceiptRow]:
        """Rows in chain order; a store gives either this or :meth:`iter_values`, each is
        made from the other."""
        for batch in self.iter_values(since, until, event, max_seq=max_seq):
            yield from map(self.row_from_values, batch)

    def iter_rows(
        self,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        *,
        max_seq: int | None = None,
    ) -> Iterator[StoredReceipt]:
        for row in self.iter_raw(since, until, event, max_seq=max_seq):
            if row.event not in RECORD_EVENTS:
                yield row.to_stored()

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
        """:meth:`iter_raw` in batches of plain tuples, for export and verification; with
        ``min_seq``, only rows from that seq on. ``stats`` needs a store with statistics
        columns (this one has none: ValueError).

        Each tuple holds a row's values in :class:`ReceiptRow` field order, as the database
        returned them; :meth:`row_from_values` turns one into the :class:`ReceiptRow` that
        :meth:`iter_raw` yields for it. Stores override this to skip building row objects.
        """
        if stats:
            raise ValueError(f"{self!r} keeps no statistics columns")
        return values_in_batches(self.iter_raw(since, until, event, max_seq=max_seq), min_seq)

    @staticmethod
    def row_from_values(values: tuple[Any, ...]) -> ReceiptRow:
        """The :class:`ReceiptRow` of a tuple yielded by :meth:`iter_values`."""
        return ReceiptRow(*values)

    def iter_subject(self, subject_id: str) -> Iterator[ReceiptRow]:
        """Every row of one subject, in chain order (stores with an index on the subject
        override this)."""
        for row in self.iter_raw():
            if row.subject_id == subject_id:
                yield row

    def purge_plan(self, before: int) -> PurgePlan:
        """What ``purge(before)`` would delete now: the rows in chain order up to the first
        one recorded at or after ``before`` (a purge removes a prefix of the log, never a row
        from the middle), read without deleting anything."""
        count = 0
        first = last = oldest = newest = None
        for row in self.iter_raw():
            if row.timestamp >= before:
                break
            count += 1
            if first is None:
                first = row.seq
            last = row.seq
            oldest = row.timestamp if oldest is None else min(oldest, row.timestamp)
            newest = row.timestamp if newest is None else max(newest, row.timestamp)
        return PurgePlan(before, count, first, last, oldest, newest)


VALUES_BATCH = 1000
"""Rows per batch of :meth:`StoreBase.iter_values` (a few MB at most)."""


def row_values(row: ReceiptRow) -> tuple[Any, ...]:
    """A row's values in field order (what :meth:`StoreBase.iter_values` yields)."""
    return (
        row.seq,
        row.receipt_id,
        row.subject_id,
        row.timestamp,
        row.event,
        row.body,
        row.kid,
        row.signature,
        row.prev_hash,
        row.hash,
    )


def values_in_batches(
    rows: Iterable[ReceiptRow], min_seq: int | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` as :func:`row_values` tuples in lists of ``VALUES_BATCH``, from ``min_seq`` on."""
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        if min_seq is not None and row.seq < min_seq:
            continue
        batch.append(row_values(row))
        if len(batch) == VALUES_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def range_filter(
    placeholder: str,
    since: int | None,
    until: int | None,
    event: str | None,
    max_seq: int | None,
    min_seq: int | None = None,
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (or ``""``) and parameters selecting receipts for export/verify;
    ``placeholder`` is the driver's parameter mark (``?`` for SQLite, ``%s`` for psycopg)."""
    clauses: list[str] = []
    params: list[Any] = []
    for condition, value in (
        ("ts >= ", since),
        ("ts < ", until),
        ("event = ", event),
        ("seq <= ", max_seq),
        ("seq >= ", min_seq),
    ):
        if value is not None:
            clauses.append(condition + placeholder)
            params.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


@dataclass(frozen=True)
class ArchivedPolicy:
    """One archived policy text (:mod:`consent.archive`): its SHA-256 ``digest`` (its
    address), the ``revision`` it was shown under, when it was archived, and the text."""

    digest: str
    revision: str
    timestamp: int
    body: str

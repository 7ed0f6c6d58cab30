"""Export and verification of a large log shared with a second process (``concurrent.futures``).

On a large log, export and verify hand every other chunk of seq ranges to a
:class:`~concurrent.futures.ProcessPoolExecutor` of one worker, started with ``spawn`` (nothing
is inherited but the store URL and the signer, pickled as its keys), while this process does the others.
The worker opens the store once, then works through its chunks a few ahead of this process:

* verify: it checks a chunk the quick way and returns a summary (:data:`_Summary`), or None
  when a row needs a closer look; this process takes each summary in order, where it links on;
* export: it makes the chunk's lines in UTF-8, keeps them and returns their size
  (:data:`_Made`); this process, which knows where every chunk before it ends, then submits a
  second job that writes them into the output file at that offset (``os.pwrite``, the file
  opened once in the worker), and writes its own chunks at their offsets too. No export data
  goes through the pool's pipe. An output that cannot be written at offsets (not a file,
  opened for appending) gets the worker's chunks back through the pool instead.

Anything unexpected with the worker (no process could be started, an error, a crash) leaves
its chunks to this process, including those it was to write and did not: the outcome never
depends on it.
"""

from __future__ import annotations

import codecs
import multiprocessing
import os
import stat
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from typing import Any, BinaryIO, TextIO, cast

from ..receipts import ReceiptSigner
from ..store import ReceiptStore, open_store
from .columns import StatsCheck
from .fast import _Fast
from .lines import _export_blocks
from .rows import Values, _batches

_PARALLEL_MIN_ROWS = 200_000  # below this, starting a process costs more than it saves
_CHUNK_ROWS = 4096  # seqs per chunk (about 12 MB of export)
# Chunks the worker may have done before this process takes them (export: kept in its
# memory until written, about 12 MB each).
_AHEAD = 4
# Chunks this process does before the worker's first one: about what it gets through while the
# worker starts (a new interpreter importing the package), so that neither waits at the start.
_HEAD_START = 4

# (min_seq, max_seq, done by the worker); None: no limit on that side.
_Plan = list[tuple[int | None, int | None, bool]]
# A chunk checked by the worker: (rows, first row's values, last seq, last hash, last id,
# whether its rows are linked with the key, receipts found with a sound statistics row).
_Summary = tuple[int, "Values | None", int, str, str, bool, int]
# A chunk exported by the worker and kept there: (receipts, size in bytes).
_Made = tuple[int, int]
# The output file as the worker opens it: its path, and its (device, inode) to check it is the same.
_Target = tuple[str, tuple[int, int]]


def _plan(store: ReceiptStore, state: Any, workers: int | None, *, every: int) -> _Plan | None:
    """The chunks of seq ranges up to the head, or None to do everything in this process.
    This process takes the first :data:`_HEAD_START` chunks, then the worker takes all but one
    of every ``every``. The first chunk has no lower limit (rows before the start of the log
    are read too)."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 2)
    head = state.head
    if workers < 2 or head is None or not store.shared_reads:
        return None
    low = state.start()[0] + 1
    if head.seq - low + 1 < _PARALLEL_MIN_ROWS:
        return None
    plan: _Plan = [(None, low + _CHUNK_ROWS - 1, False)]
    first = low + _CHUNK_ROWS
    while first <= head.seq:
        last = min(first + _CHUNK_ROWS - 1, head.seq)
        index = len(plan) - _HEAD_START
        plan.append((first, last, index >= 0 and index % every != every - 1))
        first = last + 1
    return plan


def _check_chunk(
    store: ReceiptStore, fast: _Fast, low: int, high: int, categories: dict[str, int] | None
) -> _Summary | None:
    """The worker's check of one chunk: its summary when every row passes
    :meth:`_Fast.check` with the same kind of link and links to the one before it (and,
    with ``categories``, has the statistics row its body says: :class:`StatsCheck`), else
    None."""
    stats = None if categories is None else StatsCheck(categories)
    batches, _ = _batches(store, max_seq=high, min_seq=low, stats=stats is not None)
    check = fast.check
    first: Values | None = None
    keyed = True
    last_seq, last_hash, last_id = 0, "", ""
    count = 0
    for batch in batches:
        for values in batch:
            seq = values[0]
            if type(seq) is not int:
                return None
            if first is None:
                if not check(values, True):
                    if not check(values, False):
                        return None
                    keyed = False
                first = values
            elif seq != last_seq + 1 or values[8] != last_hash or not check(values, keyed):
                return None
            if stats is not None:
                stats.checked(values)
                if stats.suspects:
                    return None
            last_seq, last_hash, last_id = seq, values[9], values[1]
            count += 1
    return count, first, last_seq, last_hash, last_id, keyed, stats.matched if stats else 0


def _chunk_bytes(
    store: ReceiptStore,
    fast: _Fast,
    since: int | None,
    until: int | None,
    event: str | None,
    low: int | None,
    high: int | None,
) -> tuple[int, list[bytes]]:
    """The export of one chunk: its number of receipts and its blocks of UTF-8 text."""
    count, blocks = 0, []
    for n, block in _export_blocks(store, fast, since, until, event, low, high):
        count += n
        blocks.append(block.encode("utf-8"))
    return count, blocks


def _pwrite(fd: int, blocks: list[bytes], offset: int) -> int:
    """Write ``blocks`` to the file ``fd`` from ``offset`` on; returns where they end."""
    for block in blocks:
        view = memoryview(block)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written
    return offset


# --------------------------------------------------------------------------- in the worker

_opened: tuple[ReceiptStore, _Fast] | None = None


def _open(url: str, signer: ReceiptSigner | None) -> None:
    """The worker's initializer: open the store (once per worker). A failure is kept, not
    raised, so that each chunk fails quietly and is left to the other process."""
    global _opened
    try:
        _opened = (open_store(url, signer), _Fast(signer))
    except Exception:
        _opened = None


def _worker() -> tuple[ReceiptStore, _Fast]:
    if _opened is None:
        raise RuntimeError("the worker could not open the store")
    return _opened


def _verify_chunk(low: int, high: int, categories: dict[str, int] | None) -> _Summary | None:
    store, fast = _worker()
    return _check_chunk(store, fast, low, high, categories)


def _make_chunk(
    low: int, high: int, since: int | None, until: int | None, event: str | None
) -> _Made:
    """Make the export of a chunk and keep it here until this process says where it goes
    (:func:`_write_chunk`)."""
    store, fast = _worker()
    rows, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
    _kept[low] = blocks
    return rows, sum(map(len, blocks))


def _write_chunk(low: int, target: _Target, offset: int) -> None:
    """Write the chunk kept by :func:`_make_chunk` into the output file at ``offset``."""
    _pwrite(_output(target), _kept.pop(low), offset)


def _chunk_data(
    low: int, high: int, since: int | None, until: int | None, event: str | None
) -> tuple[int, bytes]:
    """The export of a chunk, sent back (for an output that cannot be written at offsets)."""
    store, fast = _worker()
    rows, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
    return rows, b"".join(blocks)


_kept: dict[int, list[bytes]] = {}  # chunks made, by their first seq, until written
_written: tuple[_Target, int] | None = None  # the output file and its descriptor here


def _output(target: _Target) -> int:
    """A descriptor of the output file, opened once; raises when the file found at its path
    is not the one this process writes (moved or replaced meanwhile)."""
    global _written
    if _written is None or _written[0] != target:
        path, identity = target
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != identity:
            os.close(fd)
            raise RuntimeError("the output file was moved or replaced")
        if _written is not None:
            os.close(_written[1])
        _written = (target, fd)
    return _written[1]


# --------------------------------------------------------------------------- in this process


class _Worker:
    """The worker process and its chunks: submitted a few ahead, taken in order."""

    def __init__(
        self,
        store: ReceiptStore,
        signer: ReceiptSigner | None,
        plan: _Plan,
        job: Callable[..., Any],
        *args: Any,
    ) -> None:
        self._chunks = deque((low, high) for low, high, remote in plan if remote)
        self._job, self._args = job, args
        self._futures: deque[Future[Any]] = deque()
        self._failed = False
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_open,
            initargs=(store.url, signer),
        )
        for _ in range(_AHEAD):
            self._submit()

    def _submit(self) -> None:
        if not self._chunks:
            return
        low, high = self._chunks.popleft()
        self._futures.append(self.call(self._job, low, high, *self._args))

    def call(self, job: Callable[..., Any], *args: Any) -> Future[Any]:
        """Submit another job; a failed future when no process could be started."""
        if self._pool is not None and not self._failed:
            try:
                return self._pool.submit(job, *args)
            except Exception:  # no process could be started: every chunk is done here
                self._failed = True
        failed: Future[Any] = Future()
        failed.set_exception(RuntimeError("no worker"))
        return failed

    def next(self, *, more: bool = True) -> Any:
        """The worker's result for its next chunk, or None: then do that chunk here (and,
        after a failure, every later one). ``more``: submit its next chunk now (else call
        :meth:`more` once this result is placed)."""
        if self._failed or not self._futures:
            return None
        future = self._futures.popleft()
        try:
            result = future.result()
        except Exception:
            self._failed = True
            return None
        if more:
            self._submit()
        return result

    def more(self) -> None:
        """Submit the worker's next chunk (after ``next(more=False)``)."""
        self._submit()

    def close(self) -> None:
        """Stop the worker once the jobs it has begun are done (the others are cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> _Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _export_parallel(
    store: ReceiptStore,
    out: TextIO,
    fast: _Fast,
    signer: ReceiptSigner | None,
    plan: _Plan,
    since: int | None,
    until: int | None,
    event: str | None,
) -> int | None:
    """Export with the worker, its chunks and this process's in order; returns the number
    of receipts, or None when the log changed meanwhile (start again in one process)."""
    raw = _utf8_buffer(out)
    target = _target(raw) if raw is not None else None
    if raw is None or target is None:
        return _export_returned(store, out, raw, fast, signer, plan, since, until, event)
    path, identity, fd = target
    out.flush()
    offset = raw.tell()
    count = 0
    # The worker's chunks: where each goes, its size, its seqs and the job writing it there.
    placed: list[tuple[int, int, int | None, int | None, Future[None]]] = []
    with _Worker(store, signer, plan, _make_chunk, since, until, event) as worker:
        for low, high, remote in plan:
            made: _Made | None = worker.next(more=False) if remote else None
            if made is not None:
                rows, size = made
                assert low is not None  # (the first chunk is this process's)
                written = worker.call(_write_chunk, low, (path, identity), offset)
                worker.more()
                placed.append((offset, size, low, high, written))
                offset += size
                count += rows
                continue
            for rows, block in _export_blocks(store, fast, since, until, event, low, high):
                offset = _pwrite(fd, [block.encode("utf-8")], offset)
                count += rows
        wait([written for *_, written in placed])
    for at, size, low, high, written in placed:
        if written.cancelled() or written.exception() is not None:
            # The worker stopped before writing it: made here, the same bytes.
            _, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
            if sum(map(len, blocks)) != size:
                return None
            _pwrite(fd, blocks, at)
    raw.seek(offset)  # (the stream learns where the export ends)
    return count


def _export_returned(
    store: ReceiptStore,
    out: TextIO,
    raw: BinaryIO | None,
    fast: _Fast,
    signer: ReceiptSigner | None,
    plan: _Plan,
    since: int | None,
    until: int | None,
    event: str | None,
) -> int:
    """Export with the worker to an output that cannot be written at offsets (not a file,
    appended to, another encoding): the worker's chunks come back through the pool."""
    count = 0
    with _Worker(store, signer, plan, _chunk_data, since, until, event) as worker:
        for low, high, remote in plan:
            done: tuple[int, bytes] | None = worker.next() if remote else None
            if done is not None:
                rows, data = done
                if raw is not None:
                    out.flush()
                    raw.write(data)
                else:
                    out.write(data.decode("utf-8"))
                count += rows
                continue
            for rows, block in _export_blocks(store, fast, since, until, event, low, high):
                out.write(block)
                count += rows
    return count


def _target(raw: BinaryIO) -> tuple[str, tuple[int, int], int] | None:
    """The output's path, identity (device, inode) and descriptor when it is a regular
    file found at its name and written at its position (not in append mode), else None."""
    try:
        fd = raw.fileno()
        info = os.fstat(fd)
        flags = _fd_flags(fd)
        name = getattr(raw, "name", None)
        found = os.stat(name) if isinstance(name, str) else None
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode) or flags is None or flags & os.O_APPEND:
        return None
    identity = (info.st_dev, info.st_ino)
    if not isinstance(name, str) or found is None or (found.st_dev, found.st_ino) != identity:
        return None
    return name, identity, fd


def _fd_flags(fd: int) -> int | None:
    if os.name != "posix":
        return None
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFL)


def _utf8_buffer(out: TextIO) -> BinaryIO | None:
    """The binary stream under ``out`` when text written to it is written as UTF-8 bytes
    unchanged (a UTF-8 text file, line ends not translated), else None."""
    buffer = getattr(out, "buffer", None)
    try:
        encoding = codecs.lookup(out.encoding).name
    except (AttributeError, LookupError, TypeError):
        return None
    if buffer is None or encoding != "utf-8" or os.linesep != "\n":
        return None
    return cast(BinaryIO, buffer)

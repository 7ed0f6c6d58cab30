"""Export and verification of a large log shared with a second process (``concurrent.futures``).

On a large log, export and verify hand every other chunk of seq ranges to a
:class:`~concurrent.futures.ProcessPoolExecutor` of one worker, started with ``spawn`` (nothing
is inherited but the store URL and the signer, pickled as its keys), while this process does the others.
The worker opens the store once, then works through its chunks a few ahead of this process:

* verify: it checks a chunk the quick way and returns a summary (:data:`_Summary`), or None
  when a row needs a closer look; this process takes each summary in order, where it links on;
* export: it writes the chunk's lines in UTF-8 to a temporary file and returns its name
  and size (:data:`_Spool`); this process appends that file to the output in the kernel
  (``os.copy_file_range`` or ``os.sendfile``, no copy through either process), or, when the
  output is not a file, reads it back. No export data goes through the pool's pipe.

Anything unexpected with the worker (no process could be started, an error, a crash) leaves
its chunks to this process: the outcome never depends on it.
"""

from __future__ import annotations

import codecs
import contextlib
import multiprocessing
import os
import stat
import tempfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, BinaryIO, TextIO, cast

from ..receipts import ReceiptSigner
from ..store import ReceiptStore, open_store
from .columns import StatsCheck
from .fast import _Fast
from .lines import _export_blocks
from .rows import Values, _batches

_PARALLEL_MIN_ROWS = 200_000  # below this, starting a process costs more than it saves
_CHUNK_ROWS = 4096  # seqs per chunk (about 12 MB of export)
# Chunks the worker may have done before this process takes them: its files wait on disk,
# not in memory, and with more of them the worker waits less on this process's writes.
_AHEAD = 4
_COPY_MAX = 1 << 30  # bytes per kernel copy call

# (min_seq, max_seq, done by the worker); None: no limit on that side.
_Plan = list[tuple[int | None, int | None, bool]]
# A chunk checked by the worker: (rows, first row's values, last seq, last hash, last id,
# whether its rows are linked with the key, receipts found with a sound statistics row).
_Summary = tuple[int, "Values | None", int, str, str, bool, int]
# A chunk exported by the worker: (rows, temporary file holding its UTF-8 text, its size).
_Spool = tuple[int, str, int]


def _plan(store: ReceiptStore, state: Any, workers: int | None, *, every: int) -> _Plan | None:
    """The chunks of seq ranges up to the head (the worker takes all but one of every
    ``every``), or None to do everything in this process. The first chunk has no lower limit
    (rows before the start of the log are read too)."""
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
        plan.append((first, last, len(plan) % every != 0))
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


def _spool_chunk(
    store: ReceiptStore,
    fast: _Fast,
    since: int | None,
    until: int | None,
    event: str | None,
    low: int | None,
    high: int | None,
) -> _Spool:
    """The export of one chunk, written in UTF-8 to a new temporary file: its number of
    lines, the file's name and its size. The file is removed if anything goes wrong."""
    fd, name = tempfile.mkstemp(prefix="consent-export-", suffix=".part")
    count = size = 0
    try:
        with open(fd, "wb", buffering=0, closefd=True) as spool:
            for n, block in _export_blocks(store, fast, since, until, event, low, high):
                data = block.encode("utf-8")
                view = memoryview(data)
                while view:
                    written = spool.write(view)
                    assert written is not None
                    view = view[written:]
                count += n
                size += len(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return count, name, size


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


def _export_chunk(
    low: int, high: int, since: int | None, until: int | None, event: str | None
) -> _Spool:
    store, fast = _worker()
    return _spool_chunk(store, fast, since, until, event, low, high)


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
        discard: Callable[[Any], None] = lambda result: None,
    ) -> None:
        self._discard = discard
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
        if self._failed or not self._chunks or self._pool is None:
            return
        low, high = self._chunks.popleft()
        try:
            self._futures.append(self._pool.submit(self._job, low, high, *self._args))
        except Exception:  # no process could be started: every chunk is done here
            self._failed = True

    def next(self) -> Any:
        """The worker's result for its next chunk, or None: then do that chunk here (and,
        after a failure, every later one)."""
        if self._failed or not self._futures:
            return None
        future = self._futures.popleft()
        try:
            result = future.result()
        except Exception:
            self._failed = True
            return None
        self._submit()
        return result

    def close(self) -> None:
        """Stop the worker; the results it made that were not taken are given to
        ``discard`` (to remove what they left behind)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        while self._futures:
            future = self._futures.popleft()
            if future.done() and not future.cancelled() and future.exception() is None:
                self._discard(future.result())

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
) -> int:
    """Export with the worker: its chunks (appended from its files) and this process's,
    written in order."""
    raw = _utf8_buffer(out)
    fd = _file_fd(raw) if raw is not None else None
    count = 0
    with _Worker(
        store, signer, plan, _export_chunk, since, until, event, discard=_remove_spool
    ) as worker:
        for low, high, remote in plan:
            done: _Spool | None = worker.next() if remote else None
            if done is not None:
                rows, name, size = done
                try:
                    spool = open(name, "rb", buffering=0)  # noqa: SIM115 (closed below)
                except OSError:  # gone (a cleaner of temporary files): done here instead
                    spool = None
                finally:
                    _remove_spool(done)  # (the open file stays readable)
                if spool is not None:
                    with spool:
                        _append(out, raw, fd, spool, size)
                    count += rows
                    continue
            for rows, block in _export_blocks(store, fast, since, until, event, low, high):
                out.write(block)
                count += rows
    return count


def _remove_spool(done: _Spool | None) -> None:
    if done is not None:
        with contextlib.suppress(OSError):
            os.unlink(done[1])


def _append(out: TextIO, raw: BinaryIO | None, fd: int | None, spool: BinaryIO, size: int) -> None:
    """Write the ``size`` bytes of UTF-8 text in ``spool`` to ``out``: in the kernel when
    ``out`` is a regular file (``fd``), else read back and written."""
    if fd is not None and raw is not None:
        out.flush()
        at = raw.tell()
        os.lseek(fd, at, os.SEEK_SET)
        done = _kernel_copy(spool.fileno(), fd, size)
        raw.seek(at + done)  # (the buffered stream learns where the file now ends)
        if done == size:
            return
        spool.seek(done)
    data = spool.read()
    if raw is not None:
        out.flush()
        raw.write(data)
    else:
        out.write(data.decode("utf-8"))


def _kernel_copy(source: int, target: int, size: int) -> int:
    """Copy up to ``size`` bytes from the start of ``source`` to ``target`` at its
    position, without bringing them into this process; returns how many were copied (less
    than ``size`` when the system cannot: the rest is left to the caller)."""
    done = 0
    copy = getattr(os, "copy_file_range", None)
    while done < size and copy is not None:
        try:
            n = copy(source, target, min(size - done, _COPY_MAX), done)
        except OSError:  # e.g. two file systems it cannot copy between
            break
        if n == 0:
            return done
        done += n
    sendfile = getattr(os, "sendfile", None)
    while done < size and sendfile is not None:
        try:
            n = sendfile(target, source, done, min(size - done, _COPY_MAX))
        except OSError:
            break
        if n == 0:
            break
        done += n
    return done


def _file_fd(raw: BinaryIO) -> int | None:
    """The descriptor under ``raw`` when it is a regular file written at its position (not
    in append mode), else None."""
    try:
        fd = raw.fileno()
        info = os.fstat(fd)
        flags = _fd_flags(fd)
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode) or flags is None or flags & os.O_APPEND:
        return None
    return fd


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

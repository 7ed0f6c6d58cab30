"""Export and verification of a large log shared with a second process (``concurrent.futures``).

On a large log, export and verify hand every other chunk of seq ranges to a
:class:`~concurrent.futures.ProcessPoolExecutor` of one worker, started with ``spawn`` (nothing
is inherited but the store URL and the signer, pickled as its keys), while this process does the others.
The worker opens the store once, then works through its chunks a few ahead of this process:

* verify: it checks a chunk the quick way and returns a summary (:data:`_Summary`), or None
  when a row needs a closer look; this process takes each summary in order, where it links on;
* export: it returns the chunk's lines in UTF-8, which this process writes in their place.

Anything unexpected with the worker (no process could be started, an error, a crash) leaves
its chunks to this process: the outcome never depends on it.
"""

from __future__ import annotations

import codecs
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, BinaryIO, TextIO, cast

from ..receipts import ReceiptSigner
from ..store import ReceiptStore, open_store
from .fast import _Fast
from .lines import _export_blocks
from .rows import Values, _batches

_PARALLEL_MIN_ROWS = 200_000  # below this, starting a process costs more than it saves
_CHUNK_ROWS = 4096  # seqs per chunk (about 12 MB of export)
_AHEAD = 2  # chunks the worker may have done before this process takes them

# (min_seq, max_seq, done by the worker); None: no limit on that side.
_Plan = list[tuple[int | None, int | None, bool]]
# A chunk checked by the worker: (rows, first row's values, last seq, last hash, last id,
# whether its rows are linked with the key).
_Summary = tuple[int, "Values | None", int, str, str, bool]


def _plan(store: ReceiptStore, state: Any, workers: int | None, *, every: int) -> _Plan | None:
    """The chunks of seq ranges up to the head (the worker takes all but one of every
    ``every``), or None to do everything in this process. The first chunk has no lower limit
    (rows before the start of the log are read too)."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 2)
    head = state.head
    if workers < 2 or head is None or not getattr(store, "shared_reads", False):
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


def _check_chunk(store: ReceiptStore, fast: _Fast, low: int, high: int) -> _Summary | None:
    """The worker's check of one chunk: its summary when every row passes
    :meth:`_Fast.check` with the same kind of link and links to the one before it, else
    None."""
    batches, _ = _batches(store, max_seq=high, min_seq=low)
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
            last_seq, last_hash, last_id = seq, values[9], values[1]
            count += 1
    return count, first, last_seq, last_hash, last_id, keyed


def _chunk_bytes(
    store: ReceiptStore,
    fast: _Fast,
    since: int | None,
    until: int | None,
    event: str | None,
    low: int | None,
    high: int | None,
) -> tuple[int, bytes]:
    """The export of one chunk: its number of lines and its text in UTF-8."""
    count, blocks = 0, []
    for n, block in _export_blocks(store, fast, since, until, event, low, high):
        count += n
        blocks.append(block)
    return count, "".join(blocks).encode("utf-8")


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


def _verify_chunk(low: int, high: int) -> _Summary | None:
    store, fast = _worker()
    return _check_chunk(store, fast, low, high)


def _export_chunk(
    low: int, high: int, since: int | None, until: int | None, event: str | None
) -> tuple[int, bytes]:
    store, fast = _worker()
    return _chunk_bytes(store, fast, since, until, event, low, high)


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
) -> int:
    """Export with the worker: its chunks and this process's, written in order."""
    raw = _utf8_buffer(out)
    count = 0
    with _Worker(store, signer, plan, _export_chunk, since, until, event) as worker:
        for low, high, remote in plan:
            done = worker.next() if remote else None
            if done is not None:
                rows, data = done
                if raw is not None:  # as they are, not decoded and encoded again
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

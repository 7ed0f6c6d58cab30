"""Export and verification of a large log shared with a second process.

On a large log, export and verify start a helper process (``python -c``: nothing is
inherited but what it is sent) and give it some chunks of seq ranges. It opens the store
from its URL and works through its chunks in order while this process does the others.
Anything unexpected in the helper (an error, a crash) leaves its chunks to this process:
the outcome never depends on it.

verify: the helper checks its chunks the quick way and sends a summary of each (one JSON
line); this process checks the others, then takes each of the helper's in order where it
links on. export: the helper reports the size of each of its chunks, this process answers
with the file offset to write it at (it knows where every earlier chunk ends), and the
helper writes it there itself (os.pwrite on the same file), so no export data goes
through a pipe.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import queue
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from ..receipts import (
    ReceiptSigner,
)
from ..store import ReceiptStore, open_store
from .fast import _Fast
from .lines import _export_blocks
from .rows import Values, _batches

_PARALLEL_MIN_ROWS = 200_000  # below this, starting a process costs more than it saves
_CHUNK_ROWS = 4096  # seqs per chunk (about 12 MB of export)
_AHEAD = 4  # chunk results the helper may send before this process takes them

# (min_seq, max_seq, done by the helper); None: no limit on that side.
_Plan = list[tuple[int | None, int | None, bool]]
# A chunk checked by the helper: (rows, first row's values, last seq, last hash, last id,
# whether its rows are linked with the key).
_Summary = tuple[int, "Values | None", int, str, str, bool]


def _plan(store: ReceiptStore, state: Any, workers: int | None, *, every: int) -> _Plan | None:
    """The chunks of seq ranges up to the head (the helper takes all but one of every
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
    """The helper's check of one chunk: its summary when every row passes
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
) -> tuple[int, list[bytes]]:
    """The export of one chunk: its number of lines and its blocks of UTF-8 text."""
    count, blocks = 0, []
    for n, block in _export_blocks(store, fast, since, until, event, low, high):
        count += n
        blocks.append(block.encode("utf-8"))
    return count, blocks


def _pwrite(fd: int, blocks: list[bytes], offset: int) -> None:
    for block in blocks:
        view = memoryview(block)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written


def _helper_main() -> None:
    """The helper process: reads its task as one JSON line on stdin, then works through its
    chunks, reporting on stdout (one line each, see the section comment); ``E <message>``
    ends it after an error."""
    out = sys.stdout.buffer
    stdin = sys.stdin.buffer

    def say(line: str) -> None:
        out.write(line.encode() + b"\n")
        out.flush()

    try:
        task = json.loads(stdin.readline())
        keys = task["keys"]
        signer = ReceiptSigner(keys) if keys else None
        store = open_store(task["url"], signer)
        fast = _Fast(signer)
        if task["task"] == "verify":
            for low, high in task["chunks"]:
                say(json.dumps(_check_chunk(store, fast, low, high)))
            return
        fd = task["fd"]
        since, until, event = task["since"], task["until"], task["event"]
        pending: tuple[int, list[bytes]] | None = None
        # One chunk ahead: the next one is made while this process places the last.
        for index, (low, high) in enumerate([*task["chunks"], (None, None)]):
            if low is not None:
                count, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
                say(f"S {count} {sum(map(len, blocks))}")
            if pending is not None:
                offset = stdin.readline()
                if not offset:
                    return  # this process stopped
                _pwrite(fd, pending[1], int(offset))
                say(f"W {pending[0]}")
            pending = (index, blocks) if low is not None else None
        say("D")
    except Exception as exc:
        with contextlib.suppress(Exception):  # else the other side is gone
            say(f"E {type(exc).__name__}: {exc}")


class _Helper:
    """The helper process, and a thread reading what it reports into a short queue."""

    def __init__(
        self,
        store: ReceiptStore,
        signer: ReceiptSigner | None,
        task: str,
        plan: _Plan,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        fd: int | None = None,
    ) -> None:
        chunks = [(low, high) for low, high, remote in plan if remote]
        self.written: set[int] = set()  # export: chunks the helper wrote
        self.done = False  # the helper finished all its chunks
        self._results: queue.Queue[Any] = queue.Queue(maxsize=_AHEAD)
        self._stop = threading.Event()
        self._failed = True  # until it has started
        self._thread: threading.Thread | None = None
        # This very package, wherever it was imported from.
        where = str(Path(__file__).resolve().parent.parent.parent)
        code = f"import sys; sys.path.insert(0, {where!r}); import consent.audit.parallel as a; a._helper_main()"
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=() if fd is None else (fd,),
            )
        except OSError:  # no helper: every chunk is done here
            self._process = None
            return
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        # The keys go through the pipe: not on a command line, not in the environment.
        keys = list(signer._keys.values()) if signer is not None else None
        request: dict[str, Any] = {"task": task, "url": store.url, "keys": keys, "fd": fd}
        request.update(chunks=chunks, since=since, until=until, event=event)
        if self._send(json.dumps(request)):  # else it died at once
            self._failed = False
            self._thread = threading.Thread(target=self._read, args=(task,), daemon=True)
            self._thread.start()

    def _send(self, line: str) -> bool:
        try:
            self._stdin.write(line.encode() + b"\n")
            self._stdin.flush()
        except OSError:
            return False
        return True

    def _read(self, task: str) -> None:
        try:
            for line in self._stdout:
                if task == "verify":
                    if not self._put(json.loads(line)):
                        return
                    continue
                kind, _, rest = line.decode().rstrip("\n").partition(" ")
                if kind == "S":
                    rows, size = map(int, rest.split())
                    if not self._put((rows, size)):
                        return
                elif kind == "W":
                    self.written.add(int(rest))
                elif kind == "D":
                    self.done = True
                    return
                else:
                    break  # an error
        except (OSError, ValueError):
            pass
        self._put(_FAILED)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> Any:
        """What the helper reports for its next chunk, or None: then do that chunk here
        (and, after a failure, every later one)."""
        if self._failed:
            return None
        item = self._results.get()
        if item is _FAILED:
            self._failed = True
            return None
        return item

    def place(self, offset: int) -> None:
        """export: where the helper is to write the chunk it reported last."""
        self._send(str(offset))

    def finish(self) -> None:
        """Wait until the helper has finished (or failed)."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._stdin.close()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self._stop.set()
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            self._stdin.close()
        self._stdout.close()


_FAILED = object()


def _file_target(out: TextIO) -> tuple[int, int] | None:
    """``(fd, offset)`` when ``out`` is a UTF-8 text file that ends where it would be
    written next (so the export can be written at offsets, by two processes), else None."""
    if os.name != "posix":  # (no line-end translation; the fd can be passed to the helper)
        return None
    import fcntl

    try:
        if codecs.lookup(out.encoding).name != "utf-8" or not out.seekable():
            return None
        fd = out.fileno()
        out.flush()
        info = os.fstat(fd)
        offset = out.tell()
        appending = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
    except (AttributeError, OSError, LookupError, TypeError, ValueError):
        return None
    if appending:  # pwrite would append, whatever the offset
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size != offset:
        return None
    return fd, offset


def _export_parallel(
    store: ReceiptStore,
    out: TextIO,
    fast: _Fast,
    signer: ReceiptSigner | None,
    plan: _Plan,
    since: int | None,
    until: int | None,
    event: str | None,
    target: tuple[int, int],
) -> int:
    """Export with a helper, writing at offsets of the file ``target`` (fd, where to start)."""
    fd, offset = target
    count = 0
    placed: list[tuple[int, int, int, int]] = []  # helper's chunk, offset, low, high
    helper = _Helper(store, signer, "export", plan, since, until, event, fd)
    try:
        index = 0
        for low, high, remote in plan:
            if remote:
                item = helper.next()
                if item is not None:
                    rows, size = item
                    assert low is not None
                    assert high is not None
                    helper.place(offset)
                    placed.append((index, offset, low, high))
                    index += 1
                    offset += size
                    count += rows
                    continue
                index += 1
            rows, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
            _pwrite(fd, blocks, offset)
            offset += sum(map(len, blocks))
            count += rows
        helper.finish()
    finally:
        helper.close()  # (ended, or stopped here: it writes nothing more)
    for chunk, at, low, high in placed:
        if chunk not in helper.written:  # the helper stopped before writing it
            _, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
            _pwrite(fd, blocks, at)
    out.seek(0, os.SEEK_END)
    return count

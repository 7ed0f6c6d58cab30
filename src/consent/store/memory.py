"""``memory://``: an in-process store with the same semantics, for tests.

``memory://`` gives a fresh, private store. ``memory://NAME`` gives the store of that name,
shared by every ``open_store`` call in the process (so a test can read what a middleware
recorded). Nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from ..receipts import ChainHead, Receipt, ReceiptSigner, StoredReceipt
from .base import HISTORY_LIMIT, ArchivedPolicy, ReceiptRow, StoreBase
from .chain import ChainState, ChainWriter, Values, checkpoint_after, policy_extension

__all__ = ["MemoryStore"]


class _Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[ReceiptRow] = []
        self.ids: set[str] = set()
        self.state = ChainState()
        self.policies: dict[str, ArchivedPolicy] = {}


_NAMED: dict[str, _Log] = {}
_NAMED_LOCK = threading.Lock()


class MemoryStore(StoreBase):
    """Receipts in a Python list; for tests and demos only."""

    def __init__(self, url: str, signer: ReceiptSigner | None) -> None:
        super().__init__(url, signer)
        name = url.partition("://")[2].strip("/")
        if name:
            with _NAMED_LOCK:
                self._log = _NAMED.setdefault(name, _Log())
        else:
            self._log = _Log()
        self._chain = ChainWriter(signer, url) if signer is not None else None

    async def open(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def append(self, receipt: Receipt) -> StoredReceipt:
        self._require_signer()
        assert self._chain is not None
        log = self._log
        with log.lock:
            if receipt.receipt_id in log.ids:
                raise ValueError(f"duplicate receipt id {receipt.receipt_id}")
            newest = log.rows[-1] if log.rows else None
            extension = self._chain.extend(log.state, newest, [receipt])
            self._add(extension.rows, extension.head)
            self._chain.written(extension)
        return extension.stored[0]

    async def archive_policy(self, entry: ArchivedPolicy) -> bool:
        signer = self._require_signer()
        log = self._log
        with log.lock:
            if entry.digest in log.policies:
                return False
            extension = policy_extension(
                signer,
                self.url,
                log.state,
                log.rows[-1] if log.rows else None,
                revision=entry.revision,
                digest=entry.digest,
                began=not log.policies,
            )
            self._add(extension.rows, extension.head)
            log.policies[entry.digest] = entry
        return True

    def iter_policies(self) -> Iterator[ArchivedPolicy]:
        with self._log.lock:
            held = list(self._log.policies.values())
        yield from held

    def _add(self, rows: list[Values], head: ChainHead) -> None:
        log = self._log
        for values in rows:
            row = ReceiptRow(*values)
            log.rows.append(row)
            log.ids.add(row.receipt_id)
        log.state = replace(log.state, head=head)

    def append_record(
        self, make: Callable[[ChainState, ReceiptRow | None], tuple[ReceiptRow, ChainHead]]
    ) -> ReceiptRow:
        log = self._log
        with log.lock:
            record, head = make(log.state, log.rows[-1] if log.rows else None)
            log.rows.append(record)
            log.ids.add(record.receipt_id)
            log.state = replace(log.state, head=head)
        return record

    async def latest_for_subject(self, subject_id: str) -> StoredReceipt | None:
        with self._log.lock:
            for row in reversed(self._log.rows):
                if row.subject_id == subject_id:
                    return row.readable()
        return None

    async def get(self, receipt_id: str) -> StoredReceipt | None:
        with self._log.lock:
            for row in self._log.rows:
                if row.receipt_id == receipt_id:
                    return row.readable()
        return None

    async def history_for_subject(
        self, subject_id: str, limit: int = HISTORY_LIMIT
    ) -> list[StoredReceipt]:
        with self._log.lock:
            rows = [row for row in reversed(self._log.rows) if row.subject_id == subject_id]
        return [row.readable() for row in rows[:limit]]

    def iter_raw(
        self,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        *,
        max_seq: int | None = None,
    ) -> Iterator[ReceiptRow]:
        with self._log.lock:
            rows = list(self._log.rows)
        for row in rows:
            if since is not None and row.timestamp < since:
                continue
            if until is not None and row.timestamp >= until:
                continue
            if event is not None and row.event != event:
                continue
            if max_seq is not None and row.seq > max_seq:
                continue
            yield row

    def chain_state(self) -> ChainState:
        with self._log.lock:
            return self._log.state

    def count(self) -> int:
        with self._log.lock:
            return sum(1 for row in self._log.rows if row.subject_id)

    def purge(self, before: int) -> int:
        signer = self._require_signer()
        log = self._log
        with log.lock:
            cut = next((i for i, row in enumerate(log.rows) if row.timestamp >= before), None)
            n = len(log.rows) if cut is None else cut
            if n == 0:
                return 0
            last = log.rows[n - 1]
            checkpoint = checkpoint_after(log.state, (last.seq, last.hash), n, before, signer)
            del log.rows[:n]
            log.state = replace(log.state, checkpoint=checkpoint)
        return n

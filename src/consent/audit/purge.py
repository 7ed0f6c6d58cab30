"""Deleting receipts older than a retention cut-off (``consent purge``)."""

from __future__ import annotations

from ..store import ReceiptStore
from .times import _as_time


def purge(store: ReceiptStore, before: int | str) -> int:
    """Delete receipts recorded before ``before`` (see ``ReceiptStore.purge``)."""
    cut = _as_time(before)
    assert cut is not None
    return store.purge(cut)

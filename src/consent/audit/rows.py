"""Reading a store's rows in batches of value tuples, the way the audit walks the log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..store import ReceiptStore
from ..store.base import ReceiptRow, values_in_batches

Values = tuple[Any, ...]
"""A row's values in :class:`ReceiptRow` field order, as the store returned them."""


def _batches(
    store: ReceiptStore,
    since: int | None = None,
    until: int | None = None,
    event: str | None = None,
    *,
    max_seq: int | None = None,
    min_seq: int | None = None,
) -> tuple[Iterator[list[Values]], Callable[[Values], ReceiptRow]]:
    """The store's rows in batches of value tuples, and how to turn one into a ReceiptRow."""
    iter_values = getattr(store, "iter_values", None)
    row_from = getattr(store, "row_from_values", None)
    if iter_values is not None and row_from is not None:
        if min_seq is None:
            return iter_values(since, until, event, max_seq=max_seq), row_from
        return iter_values(since, until, event, max_seq=max_seq, min_seq=min_seq), row_from

    rows = store.iter_raw(since, until, event, max_seq=max_seq)
    return values_in_batches(rows, min_seq), lambda values: ReceiptRow(*values)

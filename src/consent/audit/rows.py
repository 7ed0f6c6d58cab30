"""Reading a store's rows in batches of value tuples, the way the audit walks the log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..store import ReceiptStore
from ..store.base import ReceiptRow

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
    stats: bool = False,
) -> tuple[Iterator[list[Values]], Callable[[Values], ReceiptRow]]:
    """The store's rows in batches of value tuples (with ``stats``, each followed by its
    statistics row), and how to turn one (its first ten values) into a ReceiptRow."""
    batches = store.iter_values(since, until, event, max_seq=max_seq, min_seq=min_seq, stats=stats)
    return batches, store.row_from_values

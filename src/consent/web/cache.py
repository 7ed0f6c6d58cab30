"""A dict bounded by the number of entries and by what they hold, the oldest out first."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict[K, V]):
    """A dict (lookups are plain dict lookups) filled through :meth:`put`, which keeps it to at
    most ``max_entries`` entries and ``max_cost`` of ``cost(key, value)`` in all by dropping
    the oldest entries first.

    The order is kept in a deque beside the dict: a dict alone would first step over the
    slots its earlier deletions left empty to find its oldest entry (an ``OrderedDict`` costs
    every lookup a little instead). Safe to share between threads: a lost race only drops an
    entry early or keeps one late.
    """

    __slots__ = ("_cost", "_order", "_total", "max_cost", "max_entries")

    def __init__(self, max_entries: int, max_cost: int, cost: Callable[[K, V], int]) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_cost = max_cost
        self._cost = cost
        self._order: deque[K] = deque()  # the keys, oldest first
        self._total = 0  # what the entries hold, by ``cost``

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key``, dropping the oldest entries to make room."""
        order, cost = self._order, self._cost
        size = cost(key, value)
        while order and (len(order) >= self.max_entries or self._total + size > self.max_cost):
            with contextlib.suppress(KeyError, IndexError):  # another thread's, meanwhile
                old = order.popleft()
                self._total -= cost(old, self.pop(old))
        if not order:
            self._total = 0
        if key not in self:  # (another thread's, meanwhile)
            order.append(key)
            self._total += size
        self[key] = value

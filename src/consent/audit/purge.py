"""Deleting receipts older than a retention cut-off (``consent purge``): the cut-off given, or
the one ``[receipts] retention_days`` of a policy sets."""

from __future__ import annotations

import time

from ..store import ReceiptStore
from ..times import _as_time


def purge(store: ReceiptStore, before: int | str) -> int:
    """Delete receipts recorded before ``before`` (see ``ReceiptStore.purge``)."""
    cut = _as_time(before)
    assert cut is not None
    return store.purge(cut)


def retention_cutoff(directory: str, now: float | None = None) -> tuple[int, str]:
    """The cut-off ``[receipts] retention_days`` of the policy in ``directory`` sets: that
    many days before ``now`` (raises ValueError for a policy that does not load)."""
    from ..policy import PolicyError, load_policy  # the policy's models only when asked

    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        raise ValueError(f"{directory}: invalid cookie policy: {'; '.join(exc.errors)}") from None
    days = policy.site.receipts.retention_days
    moment = time.time() if now is None else now
    return int(moment) - days * 86_400, f"retention_days = {days} in {directory}/site.toml"

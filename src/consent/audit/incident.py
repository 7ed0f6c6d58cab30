"""Recording a signed incident marker after damage, so that recording resumes (``consent incident``)."""

from __future__ import annotations

from ..receipts import (
    ChainHead,
    ReceiptSigner,
)
from ..store import ReceiptStore, StoreUnavailable
from ..store.base import ReceiptRow
from ..store.chain import (
    MAX_COVERED_RUNS,
    ChainState,
    Covered,
    damage,
    incident_record,
)
from .findings import Incident
from .verify import _walk_store


class NothingToRecord(Exception):
    """``consent incident`` on a log that verifies: there is no break to record."""


def record_incident(
    store: ReceiptStore,
    signer: ReceiptSigner,
    *,
    reason: str,
    by: str | None = None,
    workers: int | None = None,
) -> Incident:
    """Verify the log, then append a signed incident marker covering what was found: the
    state of its end (a missing or mismatched head) and every finding of the rows before it.
    Recording resumes after it, and verification reports it, with what it covers, from then
    on.

    Raises NothingToRecord when the log verifies, ValueError when the damage is too scattered
    for one marker (restore a backup instead).
    """
    for _ in range(3):
        chain, state, _, _ = _walk_store(store, signer, workers, columns=False)
        if state.head is not None and not signer.knows(state.head.kid):
            raise ValueError(
                f"the chain head is signed with a key that is not configured (kid "
                f"{state.head.kid}): add that key to CONSENT_SECRET_KEY, after the signing key, "
                "rather than record an incident"
            )
        covered = chain.pending.covered()
        if chain.pending.overflow or len(covered.runs) > MAX_COVERED_RUNS:
            raise ValueError(
                f"{chain.pending.count} findings in more than {MAX_COVERED_RUNS} places: too much "
                "damage to record and continue after; restore the store from a backup"
            )

        def make(
            now: ChainState,
            newest: ReceiptRow | None,
            covered: Covered = covered,
            before: ChainState = state,
        ) -> tuple[ReceiptRow, ChainHead]:
            if now.checkpoint != before.checkpoint:
                raise _Changed
            if damage(now, newest, signer) is None and covered.count == 0:
                raise NothingToRecord
            return incident_record(now, newest, signer, reason=reason, by=by, covered=covered)

        try:
            record = store.append_record(make)
        except _Changed:
            continue
        incident = Incident.from_row(record)
        assert incident is not None
        return incident
    raise StoreUnavailable("the log was purged while the incident was being prepared; run it again")


class _Changed(Exception):
    pass

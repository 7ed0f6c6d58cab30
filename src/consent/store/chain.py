"""The receipt chain, written once for every store: how rows are linked, what must hold before
more are written and where they go, and the signed records the chain carries.

Every row links to the one before it with a **keyed** link, made with the key that signs the
row (so key rotation keeps working: the first key signs and links, every key verifies)::

    hash = HMAC-SHA256(link key of kid, seq "\\n" prev_hash "\\n" kid "\\n" signature), in hex

The signature covers the body, so the link covers the row's content, its number and its place.
Without the key nobody can renumber or re-link rows. Logs written by earlier versions link with
``sha256(prev_hash, body, kid, signature)`` (:func:`consent.receipts.chain_hash`), which anyone
can compute; they keep verifying, and the first batch this version appends to such a log begins
with a signed **switch record** (event ``chain-keyed``), after which every link is keyed.

Before it appends, the writer checks the stored chain head: its signature, and that it is the
newest row. When it is not (rows or head deleted, the head pointed elsewhere), it raises
:class:`~consent.store.base.ChainBroken` (decisions are answered 503) instead of signing a new
head over the damage. An operator resumes on purpose by recording a signed **incident marker**
(event ``incident``, ``consent incident``), which says what was found and which findings of
the log before it it covers; recording continues after it.

Backends only read and write rows and the chain row; everything that decides or signs is here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..receipts import (
    ChainHead,
    Checkpoint,
    Receipt,
    ReceiptSigner,
    StoredReceipt,
    canonical_json,
    chain_hash,
    format_time,
    new_receipt_id,
)
from .base import (
    INCIDENT_EVENT,
    KEYED_EVENT,
    POLICY_EVENT,
    RECORD_EVENTS,
    ChainBroken,
    ChainState,
    ReceiptRow,
    row_values,
)

__all__ = [
    "INCIDENT_EVENT",
    "KEYED_EVENT",
    "MAX_COVERED_RUNS",
    "POLICY_EVENT",
    "RECORD_EVENTS",
    "ChainState",
    "ChainWriter",
    "Covered",
    "Extension",
    "Values",
    "chain_state_from_row",
    "checkpoint_after",
    "damage",
    "incident_record",
    "link",
    "link_all",
    "link_hash",
    "link_kind",
    "policy_extension",
    "record_fields",
    "record_problem",
    "seal",
    "seal_record",
    "span",
    "stored_values",
]

logger = logging.getLogger("consent.store")

Values = tuple[Any, ...]
"""A row's values in :class:`ReceiptRow` field order (the order of the table's columns)."""

LinkKind = Literal["keyed", "unkeyed"]


# --------------------------------------------------------------------------- links


def link_hash(
    signer: ReceiptSigner, seq: Any, prev_hash: Any, kid: Any, signature: Any
) -> str | None:
    """The keyed link of a row: HMAC-SHA256 under the link key of ``kid`` over
    ``seq \\n prev_hash \\n kid \\n signature``, in hex; None when ``kid`` is not a key of
    ``signer``."""
    if type(kid) is not str:
        return None
    return signer.link_digest(f"{seq}\n{prev_hash}\n{kid}\n{signature}", kid)


def link_kind(signer: ReceiptSigner, row: ReceiptRow) -> LinkKind | None:
    """``"keyed"`` when the row's hash is its keyed link, ``"unkeyed"`` when it is the link
    of earlier versions, None when it is neither (the row's chain fields were edited, or it
    was renumbered or moved)."""
    if link_hash(signer, row.seq, row.prev_hash, row.kid, row.signature) == row.hash:
        return "keyed"
    if chain_hash(row.prev_hash, row.body, row.kid, row.signature) == row.hash:
        return "unkeyed"
    return None


def _link(signer: ReceiptSigner, seq: int, prev_hash: str, kid: str, signature: str) -> str:
    digest = link_hash(signer, seq, prev_hash, kid, signature)
    assert digest is not None  # the signing key is always the signer's own
    return digest


def seal(receipt: Receipt, *, seq: int, prev_hash: str, signer: ReceiptSigner) -> StoredReceipt:
    """Sign ``receipt`` and link it after ``prev_hash`` as number ``seq`` (keyed)."""
    body = canonical_json(receipt)
    kid, signature = signer.sign(body)
    # Every field is built right here from checked values: no need to validate again.
    return StoredReceipt.model_construct(
        receipt=receipt,
        seq=seq,
        kid=kid,
        signature=signature,
        prev_hash=prev_hash,
        hash=_link(signer, seq, prev_hash, kid, signature),
        body=body,
    )


def link(
    receipt: Receipt, signer: ReceiptSigner, last: tuple[int, str]
) -> tuple[StoredReceipt, ChainHead]:
    """Seal ``receipt`` after ``last`` = ``(seq, hash)``; returns the row and the new head."""
    stored = seal(receipt, seq=last[0] + 1, prev_hash=last[1], signer=signer)
    return stored, ChainHead.make(stored.seq, stored.hash, signer)


def link_all(
    receipts: Sequence[Receipt], signer: ReceiptSigner, last: tuple[int, str]
) -> tuple[list[StoredReceipt], ChainHead]:
    """Seal ``receipts`` one after the other after ``last``; returns the rows and the head
    after the last one (signed once: only the final head is ever written)."""
    if not receipts:
        raise ValueError("nothing to link")
    seq, prev_hash = last
    out: list[StoredReceipt] = []
    for receipt in receipts:
        seq += 1
        stored = seal(receipt, seq=seq, prev_hash=prev_hash, signer=signer)
        prev_hash = stored.hash
        out.append(stored)
    return out, ChainHead.make(seq, prev_hash, signer)


def stored_values(stored: StoredReceipt) -> Values:
    """The values of a sealed receipt's row, in column order."""
    receipt = stored.receipt
    return (
        stored.seq,
        receipt.receipt_id,
        receipt.subject_id,
        receipt.timestamp,
        receipt.event,
        stored.body,
        stored.kid,
        stored.signature,
        stored.prev_hash,
        stored.hash,
    )


def span(first: int, last: int) -> str:
    """``"5"`` or ``"5..7"``."""
    return str(first) if first == last else f"{first}..{last}"


# --------------------------------------------------------------------------- the signed state


def chain_state_from_row(found: Any) -> ChainState:
    """The chain head and purge checkpoint from the ``consent_chain`` row (or ``None``)."""
    if found is None:
        return ChainState()
    h_seq, h_hash, h_kid, h_sig, c_seq, c_hash, c_count, c_before, c_time, c_kid, c_sig = found
    head = None
    if h_seq is not None:
        head = ChainHead(seq=int(h_seq), hash=str(h_hash), kid=str(h_kid), signature=str(h_sig))
    checkpoint = None
    if c_seq is not None:
        checkpoint = Checkpoint(
            seq=int(c_seq),
            hash=str(c_hash),
            count=int(c_count),
            before=int(c_before),
            time=int(c_time),
            kid=str(c_kid),
            signature=str(c_sig),
        )
    return ChainState(head=head, checkpoint=checkpoint)


def checkpoint_after(
    state: ChainState, last: tuple[int, str], deleted: int, before: int, signer: ReceiptSigner
) -> Checkpoint:
    """The purge checkpoint once the rows up to ``last`` = ``(seq, hash)`` are deleted
    (``deleted`` of them now, added to those purged before)."""
    previous = state.checkpoint.count if state.checkpoint else 0
    return Checkpoint.make(
        seq=last[0],
        hash=last[1],
        count=previous + deleted,
        before=before,
        time=int(time.time()),
        signer=signer,
    )


def damage(state: ChainState, newest: ReceiptRow | None, signer: ReceiptSigner) -> str | None:
    """What is wrong with the end of the log, or None: the head is signed and records the
    newest row (or, with no rows, where the log starts)."""
    head, checkpoint = state.head, state.checkpoint
    if head is None:
        if newest is None and checkpoint is None:
            return None  # a new log
        if newest is not None:
            return f"the signed chain head is missing; the log ends at seq {newest.seq}"
        assert checkpoint is not None
        return (
            "the signed chain head is missing; the log holds no receipt after the purge "
            f"checkpoint (seq {checkpoint.seq})"
        )
    if not signer.knows(head.kid):
        return (
            f"the chain head is signed with a key that is not configured (kid {head.kid}): "
            "keep retired keys in CONSENT_SECRET_KEY, after the signing key"
        )
    if not head.verify(signer):
        return f"the chain head signature does not verify (head edited; it claims seq {head.seq})"
    if newest is None:
        start = state.start()[0]
        if (head.seq, head.hash) == state.start():
            return None
        return (
            f"the signed chain head records seq {head.seq} but the log holds no receipt after "
            f"seq {start}: seq {span(start + 1, head.seq)} missing"
        )
    if newest.seq < head.seq:
        missing = head.seq - newest.seq
        return (
            f"the signed chain head records seq {head.seq} but the log ends at seq {newest.seq}: "
            f"seq {span(newest.seq + 1, head.seq)} missing ({missing} newest receipts deleted)"
        )
    if newest.seq > head.seq:
        return (
            f"the log holds receipts after the signed chain head (seq {head.seq}); "
            f"it ends at seq {newest.seq}"
        )
    if newest.hash != head.hash:
        return (
            f"the newest receipt (seq {newest.seq}) is not the one the signed chain head "
            "records (its hash differs)"
        )
    return None


# --------------------------------------------------------------------------- records


def seal_record(
    event: str,
    fields: Mapping[str, Any],
    *,
    seq: int,
    prev_hash: str,
    signer: ReceiptSigner,
    timestamp: int | None = None,
) -> ReceiptRow:
    """A signed chain record (``event`` one of :data:`RECORD_EVENTS`) as row number ``seq``
    after ``prev_hash``.

    Its body is canonical JSON (sorted keys) with the columns a receipt row has (``event``,
    ``receipt_id``, an empty ``subject_id``, ``timestamp`` and ``time``) and ``fields``;
    it is signed with the record salt and linked like any row.
    """
    when = int(time.time()) if timestamp is None else timestamp
    record_id = new_receipt_id()
    data = {
        **fields,
        "event": event,
        "receipt_id": record_id,
        "subject_id": "",
        "timestamp": when,
        "time": format_time(when),
    }
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    kid, signature = signer.sign_record(body)
    return ReceiptRow(
        seq=seq,
        receipt_id=record_id,
        subject_id="",
        timestamp=when,
        event=event,
        body=body,
        kid=kid,
        signature=signature,
        prev_hash=prev_hash,
        hash=_link(signer, seq, prev_hash, kid, signature),
    )


def record_fields(row: ReceiptRow) -> dict[str, Any] | None:
    """The body of a chain record as a dict, or None when it is not a JSON object."""
    try:
        data = json.loads(row.body)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record_problem(row: ReceiptRow, signer: ReceiptSigner) -> tuple[str, str] | None:
    """``(code, reason)`` of what is wrong with a chain record's signature, body or columns
    (its link is checked as every row's), or None."""
    if not signer.knows(row.kid):
        return "key", f"record signed by an unknown key (kid {row.kid})"
    if not signer.verify_record(row.body, row.kid, row.signature):
        return "signature", "signature does not match the record's body (record edited)"
    data = record_fields(row)
    if data is None:
        return "body", "signed body is not a valid chain record"
    for name, value in (
        ("receipt_id", row.receipt_id),
        ("subject_id", row.subject_id),
        ("timestamp", row.timestamp),
        ("event", row.event),
    ):
        if data.get(name) != value:
            return f"column:{name}", f"{name} differs from the signed body (edited after signing)"
    return None


@dataclass(frozen=True)
class Covered:
    """The findings an incident marker covers: runs of consecutive rows with the same kind of
    finding (``first``, ``last``, ``code``; ``None`` seqs for the checkpoint), the first
    finding lines for people, their total, and how many receipts are missing or altered."""

    runs: tuple[tuple[int | None, int | None, str], ...] = ()
    lines: tuple[str, ...] = ()
    count: int = 0
    missing: int = 0
    altered: int = 0


MAX_COVERED_RUNS = 1000
"""At most this many separate runs of findings can be covered by one incident; more damage
than that is not something to record and continue after (restore a backup)."""


def incident_record(
    state: ChainState,
    newest: ReceiptRow | None,
    signer: ReceiptSigner,
    *,
    reason: str,
    by: str | None,
    covered: Covered,
) -> tuple[ReceiptRow, ChainHead]:
    """The incident marker to append after ``newest`` (the end of the log as it is), and the
    head after it.

    It follows the newest row. When the stored head is genuine and records a later seq (the
    newest receipts were deleted), it takes the number after the head's, so that the lost
    numbers are never reused and the gap stays visible, covered by the marker.
    """
    found = damage(state, newest, signer)
    after_seq, after_hash = (newest.seq, newest.hash) if newest is not None else state.start()
    seq = after_seq + 1
    head = state.head
    head_found: dict[str, Any] | None = None
    lost = 0
    if head is not None and signer.knows(head.kid) and head.verify(signer):
        head_found = {"seq": head.seq, "hash": head.hash}
        if head.seq > after_seq:
            lost = head.seq - after_seq
            seq = head.seq + 1
    fields = {
        "reason": reason,
        "by": by,
        "found": found or "",
        "head": head_found,
        "after": after_seq,
        "missing": covered.missing + lost,
        "head_lost": head_found is None and found is not None,
        "altered": covered.altered,
        "count": covered.count,
        "findings": [list(run) for run in covered.runs],
        "report": list(covered.lines),
    }
    record = seal_record(INCIDENT_EVENT, fields, seq=seq, prev_hash=after_hash, signer=signer)
    return record, ChainHead.make(record.seq, record.hash, signer)


# --------------------------------------------------------------------------- the writer


@dataclass(frozen=True)
class Extension:
    """What one batch adds: every row to insert in order (a switch record first, when the log
    was written by an earlier version), the receipts among them, and the new head."""

    rows: list[Values]
    stored: list[StoredReceipt]
    head: ChainHead


def _position_damage(
    state: ChainState, newest: ReceiptRow | None, signer: ReceiptSigner
) -> tuple[str | None, bool]:
    """:func:`damage`, and whether the newest row is keyed (False: written by an earlier
    version, a switch record comes first)."""
    found = damage(state, newest, signer)
    if found is not None or newest is None:
        return found, True
    kind = link_kind(signer, newest)
    if kind is not None:
        return None, kind == "keyed"
    if not signer.knows(newest.kid):
        return (
            f"the newest receipt (seq {newest.seq}) is signed with a key that is not configured "
            f"(kid {newest.kid}): keep retired keys in CONSENT_SECRET_KEY, after the signing key"
        ), True
    return f"the newest receipt (seq {newest.seq}) does not match its own hash (edited)", True


class ChainWriter:
    """Where a store's next rows go, checked before each batch.

    The first batch (and any batch after another process moved the head) checks the head's
    signature, that it records the newest row and that the newest row's link holds. Later
    batches of this process compare the stored head with the one it last wrote, and the
    newest row with the head: two comparisons, no signature. Used from one thread at a time
    (a store's writer thread, or its event loop).
    """

    def __init__(self, signer: ReceiptSigner, where: str) -> None:
        self._signer = signer
        self._where = where
        self._trusted: tuple[int, str, str, str] | None = None  # the head last written here
        self._reported: str | None = None

    def extend(
        self,
        state: ChainState,
        newest: ReceiptRow | None,
        receipts: Sequence[Receipt],
        records: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> Extension:
        """Seal ``records`` (``(event, fields)`` of chain records) and then ``receipts``
        after the end of the log; raises :class:`ChainBroken` when the end of the log is not
        what its signed head records."""
        signer = self._signer
        head = state.head
        keyed = True
        if (
            head is None
            or newest is None
            or newest.seq != head.seq
            or newest.hash != head.hash
            or self._trusted != (head.seq, head.hash, head.kid, head.signature)
        ):
            found, keyed = _position_damage(state, newest, signer)
            if found is not None:
                self._stop(found)
        last = (head.seq, head.hash) if head is not None else state.start()
        rows: list[Values] = []
        if not keyed:
            switch = seal_record(
                KEYED_EVENT,
                {"links": "keyed: HMAC-SHA256 of seq, prev_hash, kid and signature"},
                seq=last[0] + 1,
                prev_hash=last[1],
                signer=signer,
            )
            rows.append(row_values(switch))
            last = (switch.seq, switch.hash)
            logger.warning(
                "consent receipt log %s was written by an earlier version: from seq %d on, "
                "its rows are linked with the key (signed switch record at seq %d)",
                self._where,
                switch.seq,
                switch.seq,
            )
        for event, fields in records:
            record = seal_record(event, fields, seq=last[0] + 1, prev_hash=last[1], signer=signer)
            rows.append(row_values(record))
            last = (record.seq, record.hash)
        if not receipts:
            return Extension(rows, [], ChainHead.make(last[0], last[1], signer))
        stored, new_head = link_all(receipts, signer, last)
        rows.extend(map(stored_values, stored))
        return Extension(rows, stored, new_head)

    def written(self, extension: Extension) -> None:
        """``extension`` is committed: its head is the one to expect next."""
        head = extension.head
        self._trusted = (head.seq, head.hash, head.kid, head.signature)
        self._reported = None

    def _stop(self, found: str) -> None:
        if found != self._reported:
            self._reported = found
            logger.error(
                "consent receipt log %s: %s. Recording has stopped: decisions are answered 503 "
                "instead of a new chain head being signed over it. Investigate (consent verify "
                "--store URL), then resume on purpose: consent incident --store URL --reason "
                "TEXT [--by NAME] records a signed incident marker",
                self._where,
                found,
            )
        self._trusted = None
        raise ChainBroken(
            f"receipt chain damaged: {found}; recording has stopped until an incident is "
            "recorded (consent incident)"
        )


def policy_extension(
    signer: ReceiptSigner,
    where: str,
    state: ChainState,
    newest: ReceiptRow | None,
    *,
    revision: str,
    digest: str,
    began: bool,
) -> Extension:
    """The signed ``policy`` record of an archived text (:mod:`consent.archive`) after the end
    of the log, checked as an append is (raises :class:`ChainBroken`), and the head after it."""
    fields = {"revision": revision, "digest": digest, "began": began}
    return ChainWriter(signer, where).extend(state, newest, [], [(POLICY_EVENT, fields)])

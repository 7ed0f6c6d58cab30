"""The policy archive as the audit sees it: archived texts and their signed records checked in a
store and in an export, and the lines ``consent export --with-policies`` carries them in.

What is archived, and when, is :mod:`consent.archive`'s: one document per revision (and banner
wording), addressed by its SHA-256, each written with a signed ``policy`` record in the log; the
first record says that archiving began, and every receipt after it must name an archived
revision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..archive import entry_problem
from ..receipts import ReceiptSigner
from ..store import ReceiptStore
from ..store.base import ArchivedPolicy, ReceiptRow
from ..store.chain import POLICY_EVENT, RECORD_EVENTS, ChainState, record_fields, record_problem
from .rows import Values, _batches

__all__ = [
    "EXPORT_KEY",
    "ArchiveFinding",
    "check_file_policies",
    "check_store",
    "policy_lines",
    "receipt_revision",
    "revisions_named",
]

EXPORT_KEY = "archived_policy"
"""The key of an export line carrying an archived policy (``consent export --with-policies``)."""


def receipt_revision(body: str) -> str | None:
    """The ``revision`` of a receipt body (canonical JSON), without parsing all of it."""
    at = body.find('"revision":"')
    if at >= 0:
        end = body.find('"', at + 12)
        if end > at:
            return body[at + 12 : end]
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("revision") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def log_values(
    store: ReceiptStore, min_seq: int | None = None, max_seq: int | None = None
) -> Iterator[list[Values]]:
    """The log's rows from ``min_seq`` to ``max_seq`` as plain values, in batches."""
    batches, _ = _batches(store, max_seq=max_seq, min_seq=min_seq)
    return batches


def _policy_records(store: ReceiptStore, max_seq: int | None) -> Iterable[ReceiptRow]:
    return store.iter_raw(event=POLICY_EVENT, max_seq=max_seq)


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ArchiveFinding:
    """Something wrong with the archive: a text, a record, or a receipt's revision."""

    reason: str
    seq: int | None = None
    receipt_id: str | None = None
    code: str = "archive"


def check_store(
    store: ReceiptStore, signer: ReceiptSigner, state: ChainState
) -> list[ArchiveFinding]:
    """The archive's findings, up to the head in ``state`` (the records' own signatures and
    links are checked with the log's other rows).

    * every archived text hashes to its digest, and its policy texts to its revision;
    * every signed ``policy`` record names a text the store holds, under the same revision;
    * an archived text that no record names (and no purge can have removed) is a finding;
    * archiving began once: a second record saying it began means archived texts went away;
    * every receipt after the record where archiving began names a revision archived before it.
    """
    entries = list(store.iter_policies())
    findings: list[ArchiveFinding] = []
    by_digest: dict[str, ArchivedPolicy] = {}
    for entry in entries:
        by_digest[entry.digest] = entry
        problem = entry_problem(entry)
        if problem is not None:
            findings.append(
                ArchiveFinding(
                    f"archived policy {entry.digest[:16]} (revision {entry.revision[:16]}): "
                    + problem
                )
            )
    max_seq = state.head.seq if state.head is not None else None
    rows = list(_policy_records(store, max_seq))
    named = {str((record_fields(row) or {}).get("digest")) for row in rows}
    archived_at: dict[str, int] = {}  # revision -> the seq from which it is archived
    began: int | None = None
    if state.checkpoint is not None:
        # Texts whose record was purged with the oldest receipts were archived before the log's
        # first remaining row: the receipts after the checkpoint must name archived revisions.
        unnamed = [e for e in entries if e.digest not in named]
        if unnamed:
            began = state.start()[0]
            for e in unnamed:
                if entry_problem(e) is None:
                    archived_at.setdefault(e.revision, began)
    else:
        for entry in entries:
            if entry.digest not in named:
                findings.append(
                    ArchiveFinding(
                        f"archived policy {entry.digest[:16]} (revision {entry.revision[:16]}) "
                        "has no signed policy record in the log (added outside the store)"
                    )
                )
    first_record = True
    for row in rows:
        if record_problem(row, signer) is not None:
            first_record = False
            continue  # reported with the log's other rows
        data = record_fields(row) or {}
        digest, revision = data.get("digest"), data.get("revision")
        held = by_digest.get(str(digest))
        if data.get("began") is True:
            if began is not None:
                findings.append(
                    ArchiveFinding(
                        f"the policy record says archiving began again (it began at seq "
                        f"{began}): archived texts were removed",
                        row.seq,
                        row.receipt_id,
                    )
                )
            else:
                began = row.seq
        elif began is None and first_record:
            findings.append(
                ArchiveFinding(
                    "the first policy record in the log does not say that archiving began: "
                    "the record where it began is missing",
                    row.seq,
                    row.receipt_id,
                )
            )
            began = row.seq
        first_record = False
        if held is None:
            findings.append(
                ArchiveFinding(
                    f"the policy record names archived text {str(digest)[:16]} (revision "
                    f"{str(revision)[:16]}), which the store no longer holds",
                    row.seq,
                    row.receipt_id,
                )
            )
        elif held.revision != revision:
            findings.append(
                ArchiveFinding(
                    f"the policy record names revision {str(revision)[:16]} for archived "
                    f"text {held.digest[:16]}, which the store holds under revision "
                    f"{held.revision[:16]}",
                    row.seq,
                    row.receipt_id,
                )
            )
        elif entry_problem(held) is None:
            archived_at.setdefault(held.revision, row.seq)
    if began is None:
        return findings  # archiving never began: nothing to hold the receipts to
    # Only the rows after the record where archiving began, as plain values (seq, receipt_id,
    # subject_id, timestamp, event, body, ...): one pass, no row objects.
    for batch in log_values(store, began + 1, max_seq):
        for values in batch:
            seq, receipt_id, _, _, event, body = values[:6]
            if event in RECORD_EVENTS:
                continue
            revision = receipt_revision(str(body))
            if archived_at.get(str(revision), seq) >= seq:
                findings.append(
                    ArchiveFinding(
                        f"receipt recorded after archiving began (seq {began}) names revision "
                        f"{str(revision)[:16]}, which is not archived",
                        int(seq),
                        str(receipt_id),
                    )
                )
    return findings


# --------------------------------------------------------------------------- exports


def policy_lines(store: ReceiptStore, wanted: set[str]) -> list[str]:
    """The export lines (with their line feeds) of the archived texts of the ``wanted``
    revisions, each with the signed record that vouches for it while the log still holds it."""
    records: dict[str, ReceiptRow] = {}
    for row in _policy_records(store, None):
        digest = (record_fields(row) or {}).get("digest")
        if isinstance(digest, str):
            records.setdefault(digest, row)
    lines = []
    for entry in sorted(store.iter_policies(), key=lambda e: (e.timestamp, e.digest)):
        if entry.revision not in wanted:
            continue
        record = records.get(entry.digest)
        item: dict[str, Any] = {
            "digest": entry.digest,
            "revision": entry.revision,
            "timestamp": entry.timestamp,
            "body": entry.body,
            "record": None if record is None else _row_dict(record),
        }
        lines.append(json.dumps({EXPORT_KEY: item}, ensure_ascii=False) + "\n")
    return lines


def revisions_named(rows: Iterable[ReceiptRow]) -> set[str]:
    """The revisions the receipts among ``rows`` name."""
    out = set()
    for row in rows:
        if row.event not in RECORD_EVENTS:
            revision = receipt_revision(row.body)
            if revision is not None:
                out.add(revision)
    return out


def _row_dict(row: ReceiptRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "receipt_id": row.receipt_id,
        "subject_id": row.subject_id,
        "timestamp": row.timestamp,
        "event": row.event,
        "body": row.body,
        "kid": row.kid,
        "signature": row.signature,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def check_file_policies(
    items: Sequence[tuple[int, Any]],
    receipts: Sequence[tuple[int, str, str | None]],
    signer: ReceiptSigner,
) -> list[ArchiveFinding]:
    """The findings of an export's archived policies (``(line number, value)``) and of the
    revisions its receipts (``(seq, receipt_id, revision)``) name: each text hashes to its
    digest and its revision, carries a genuine signed record naming that digest (unless the
    record was purged), and every receipt's revision is carried."""
    findings: list[ArchiveFinding] = []
    carried: set[str] = set()
    for number, value in items:
        where = f"line {number}: archived policy"
        if not isinstance(value, dict):
            findings.append(ArchiveFinding(f"{where} is not an object", code="file"))
            continue
        try:
            entry = ArchivedPolicy(
                digest=str(value["digest"]),
                revision=str(value["revision"]),
                timestamp=int(value["timestamp"]),
                body=str(value["body"]),
            )
        except (KeyError, TypeError, ValueError):
            findings.append(ArchiveFinding(f"{where} lacks digest, revision or body", code="file"))
            continue
        label = f"{where} {entry.digest[:16]} (revision {entry.revision[:16]})"
        problem = entry_problem(entry)
        if problem is not None:
            findings.append(ArchiveFinding(f"{label}: {problem}"))
            continue
        record = value.get("record")
        if record is not None:
            try:
                row = ReceiptRow(**record)
            except TypeError:
                findings.append(ArchiveFinding(f"{label}: its record is not a log row"))
                continue
            signed = record_problem(row, signer)
            fields = record_fields(row) or {}
            if row.event != POLICY_EVENT or signed is not None:
                reason = signed[1] if signed else "not a policy record"
                findings.append(ArchiveFinding(f"{label}: its record: {reason}", row.seq))
                continue
            if fields.get("digest") != entry.digest or fields.get("revision") != entry.revision:
                findings.append(
                    ArchiveFinding(
                        f"{label}: its signed record names another text (digest "
                        f"{str(fields.get('digest'))[:16]}): text replaced",
                        row.seq,
                    )
                )
                continue
        carried.add(entry.revision)
    for seq, receipt_id, revision in receipts:
        if revision not in carried:
            findings.append(
                ArchiveFinding(
                    f"names revision {str(revision)[:16]}, whose texts the export does not carry",
                    seq,
                    receipt_id,
                )
            )
    return findings

"""One visitor's receipts for a data-subject access request (``consent export --subject``), and
the statement that makes such a partial export checkable (``consent verify --file``).

A subject export holds the subject's receipts exactly as the full export writes them, then
one line ``{"subject_export": {...}}``: the subject id, how many receipts, a SHA-256 over their
``seq:hash`` pairs, the log's signed head when it was written, the time, and (with a key) a
signature over all of that, with the salt of chain records' texts. Verification then shows
each receipt genuine and at its place in the log, and that the key holder stated the export
complete; what it cannot show is said in :func:`check_subject`'s notes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..receipts import ReceiptSigner, format_time
from ..store import ReceiptStore
from .fast import _Fast
from .lines import _line

__all__ = [
    "SUBJECT_KEY",
    "check_subject",
    "export_subject",
    "subject_trailer",
]

SUBJECT_KEY = "subject_export"
"""The key of the statement line that ends a subject export."""


def _statement_text(statement: dict[str, Any]) -> str:
    head = statement.get("head") or {}
    return "\n".join(
        (
            "consent-subject-export",
            str(statement.get("subject_id")),
            str(statement.get("receipts")),
            str(statement.get("digest")),
            str(head.get("seq")),
            str(head.get("hash")),
            str(statement.get("time")),
        )
    )


def _digest(pairs: Iterable[tuple[int, str]]) -> str:
    return hashlib.sha256(
        "\n".join(f"{seq}:{hash_}" for seq, hash_ in pairs).encode("utf-8")
    ).hexdigest()


def export_subject(
    store: ReceiptStore, out: TextIO, subject_id: str, *, signer: ReceiptSigner | None = None
) -> int:
    """Write every receipt of ``subject_id`` (oldest first, as ``consent export`` writes
    them) and the statement line; returns how many receipts."""
    state = store.chain_state()
    head = state.head
    rows = [
        row
        for row in store.iter_subject(subject_id)
        if head is None or row.seq <= head.seq  # not what was appended while reading
    ]
    fast = _Fast(signer)
    for row in rows:
        out.write(_line(row, fast))
    statement: dict[str, Any] = {
        "subject_id": subject_id,
        "receipts": len(rows),
        "digest": _digest((row.seq, row.hash) for row in rows),
        "head": None if head is None else {"seq": head.seq, "hash": head.hash},
        "time": int(time.time()),
    }
    if signer is not None:
        kid, signature = signer.sign_text(_statement_text(statement))
        statement.update(kid=kid, signature=signature)
    out.write(json.dumps({SUBJECT_KEY: statement}, separators=(",", ":")) + "\n")
    return len(rows)


def subject_trailer(path: str | Path) -> dict[str, Any] | None:
    """The statement of a subject export (its last line), or None for any other file."""
    last = ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                last = line
    try:
        data = json.loads(last)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get(SUBJECT_KEY), dict):
        return dict(data[SUBJECT_KEY])
    return None


def check_subject(
    statement: dict[str, Any], rows: Sequence[tuple[int, str, str]], signer: ReceiptSigner
) -> tuple[list[str], list[str]]:
    """What a subject export proves, given its statement and the ``(seq, hash, subject_id)``
    of the receipts the file holds: ``(notes, problems)``."""
    subject = str(statement.get("subject_id"))
    problems: list[str] = []
    others = sorted({s for _, _, s in rows if s != subject})
    if others:
        problems.append(
            f"subject export of {subject} holds receipts of {len(others)} other subject(s)"
        )
    if statement.get("receipts") != len(rows):
        problems.append(
            f"subject export: the statement counts {statement.get('receipts')} receipts, "
            f"the file holds {len(rows)}"
        )
    elif statement.get("digest") != _digest((seq, hash_) for seq, hash_, _ in rows):
        problems.append("subject export: the receipts are not the ones the statement lists")
    signed = "signature" in statement
    if signed and not signer.verify_text(
        _statement_text(statement), str(statement.get("kid")), str(statement.get("signature"))
    ):
        problems.append("subject export: the statement's signature does not verify")
    notes = [
        f"subject export: {len(rows)} receipts of subject {subject}; each is genuine (signed "
        "with the site's key), unaltered, and was at its place in the log (its seq and keyed "
        "link).",
    ]
    head = statement.get("head") or {}
    when = statement.get("time")
    at = format_time(when) if isinstance(when, int) else "?"
    if signed and not problems:
        notes.append(
            f"signed statement: these are every receipt of this subject the log held at {at}, "
            f"when it ended at seq {head.get('seq')}."
        )
    elif not signed:
        notes.append(
            "the statement is not signed (exported without CONSENT_SECRET_KEY): the file "
            "does not show that it holds every receipt of this subject."
        )
    notes.append(
        "not shown: that no receipt was left out beyond what the statement says (the key that "
        "signs it signs the receipts too), nor that these receipts are still in the log (a "
        "purge may have removed them since); compare with `consent export --subject` "
        "and `consent verify --store` on the log itself."
    )
    return notes, problems

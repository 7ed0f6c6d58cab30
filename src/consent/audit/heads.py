"""The end of the log: the signed chain head, and a head kept elsewhere (``--expect-head``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..receipts import (
    ChainHead,
    ReceiptSigner,
)
from .chain import _Chain
from .findings import Finding


def _head_finding(head: ChainHead | None, chain: _Chain, signer: ReceiptSigner) -> Finding | None:
    """What is wrong with the end of the log against its signed head, or None."""
    end_seq, end_hash = chain.end()
    if head is None:
        if chain.last is not None or end_seq:
            return Finding("the signed chain head is missing", code="head")
        return None
    if not signer.knows(head.kid):
        return Finding(
            f"the chain head is signed by an unknown key (kid {head.kid}); is a retired key "
            "missing from CONSENT_SECRET_KEY?",
            code="head",
        )
    if not head.verify(signer):
        return Finding("the chain head signature does not verify (head edited)", code="head")
    if head.seq > end_seq:
        return Finding(
            f"log truncated: the signed chain head records seq {head.seq} "
            f"but the log ends at seq {end_seq} (latest receipts deleted)",
            end_seq + 1,
            code="head",
        )
    if head.seq < end_seq:
        return Finding(
            f"receipts after the signed chain head (seq {head.seq})", head.seq + 1, code="head"
        )
    if head.hash != end_hash:
        last_id = chain.last[2] if chain.last else None
        return Finding("hash differs from the signed chain head", end_seq, last_id, "head")
    return None


_HEAD_TEXT = re.compile(r"seq\s+(\d+)\s+hash\s+([0-9a-f]{64})")
_HEAD_SHORT = re.compile(r"(\d+):([0-9a-f]{64})")


def parse_head(value: str) -> tuple[int, str]:
    """A head kept elsewhere: ``SEQ:HASH``, or text holding ``seq SEQ hash HASH`` (the line
    ``consent verify`` prints; the last one in the text counts), or a file holding either.

    Raises ValueError for anything else.
    """
    text = value.strip()
    if not _HEAD_SHORT.fullmatch(text) and not _HEAD_TEXT.search(text):
        path = Path(text)
        try:
            if path.is_file():
                text = path.read_text("utf-8", errors="replace")
        except OSError:
            pass
    short = _HEAD_SHORT.fullmatch(text.strip())
    if short:
        return int(short.group(1)), short.group(2)
    found = _HEAD_TEXT.findall(text)
    if not found:
        raise ValueError(
            f"no chain head in {value!r}: give SEQ:HASH, the 'head: seq N hash H' line that "
            "consent verify prints, or a file holding it"
        )
    seq, digest = found[-1]
    return int(seq), digest


def _expected_head(
    expect: tuple[int, str],
    chain: _Chain,
    start: tuple[int, str],
    hash_at: Callable[[int], str | None],
) -> Finding | str:
    """Check that the log still passes through a head kept elsewhere: a finding, or a note."""
    seq, digest = expect
    kept = f"seq {seq} hash {digest}"
    for incident in chain.incidents:
        if incident.head == expect or (
            incident.after < seq and incident.head is not None and seq <= incident.head[0]
        ):
            return f"expected head {kept}: lost in the incident recorded at seq {incident.seq}"
    end = chain.end()[0]
    if seq > end:
        return Finding(
            f"the log ends at seq {end}, before the head kept elsewhere ({kept}): rolled back "
            "or truncated",
            code="expect-head",
        )
    if seq <= start[0]:
        if (seq, digest) == start:
            return f"expected head {kept}: reached (where the log now starts)"
        return f"expected head {kept}: purged since (the log now starts after seq {start[0]})"
    found = hash_at(seq)
    if found == digest:
        return f"expected head {kept}: reached"
    return Finding(
        f"the log does not pass through the head kept elsewhere ({kept}): rolled back or rewritten",
        seq,
        code="expect-head",
    )

"""The visitor's own consent history as data (``GET <prefix>/receipt``): every receipt of the
subject id in their consent cookie, newest first, as JSON (also as a download) and as JSON-LD
consent records in the W3C Data Privacy Vocabulary; and where each receipt's policy revision
text is served.

The endpoint (:mod:`consent.endpoints.routes`) finds the receipts (by the subject id of a
validly signed consent cookie, also one whose decision is no longer current) and picks the
form; the page is :func:`consent.pages.history_page`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from . import dpv
from .kantara import to_kantara
from .receipts import StoredReceipt

__all__ = [
    "history_json",
    "history_jsonld",
    "revision_href",
]


def revision_href(prefix: str, revision: str) -> str:
    """Where the text of ``revision`` is served (its page under the prefix)."""
    return f"{prefix}/revision/{quote(revision, safe='')}"


def _entry(stored: StoredReceipt, prefix: str) -> dict[str, Any]:
    row = stored.to_dict()
    row["revision_url"] = revision_href(prefix, stored.receipt.revision)
    return row


def history_json(
    entries: Sequence[StoredReceipt],
    *,
    subject_id: str,
    current: bool,
    prefix: str,
    base_url: str | None,
    limit: int,
) -> dict[str, Any]:
    """The visitor's history as JSON: ``receipt`` and ``kantara`` (the newest, as before),
    ``subject_id``, ``current`` and every receipt, newest first, with its signature, chain
    fields and signed body (each can be checked with the site's key)."""
    newest = entries[0]
    return {
        "subject_id": subject_id,
        "current": current,
        "receipt": newest.to_dict(),
        "kantara": to_kantara(newest, base_url=base_url),
        "receipts": [_entry(stored, prefix) for stored in entries],
        "complete": len(entries) < limit,
    }


def history_jsonld(
    entries: Sequence[StoredReceipt],
    *,
    base_url: str | None,
    now: int,
    lifetime: int,
    revision: str,
) -> dict[str, Any]:
    """The visitor's history as DPV consent records (newest first); the newest receipt's
    given consent is also marked expired or invalidated when it no longer counts."""
    # Each receipt's previous decision: the next older receipt that is not a "Load this once"
    # (which consents to one embed and leaves the visitor's choice as it was).
    previous_of: list[list[str] | None] = [None] * len(entries)
    last: list[str] | None = None
    for index in range(len(entries) - 1, -1, -1):
        previous_of[index] = last
        if entries[index].receipt.event != "once":
            last = list(entries[index].receipt.granted)
    records = []
    for index, stored in enumerate(entries):
        previous = previous_of[index]
        first = index + 1 == len(entries) and stored.receipt.event in ("given", "refused")
        newest = index == 0  # only the newest can be what stands now
        records.append(
            dpv.record(
                stored,
                previous=[] if first else previous,
                base_url=base_url,
                now=now if newest else None,
                lifetime=lifetime if newest else None,
                revision=revision if newest else None,
            )
        )
    return dpv.document(records)

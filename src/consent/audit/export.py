"""Writing the receipt log as JSON Lines, CSV or W3C DPV consent records (``consent export``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from typing import TextIO

from .. import dpv
from ..receipts import (
    ReceiptSigner,
)
from ..store import ReceiptStore
from ..store.base import ReceiptRow
from ..store.chain import RECORD_EVENTS
from ..times import _as_time
from .archive import policy_lines, revisions_named
from .fast import _Fast
from .lines import CSV_COLUMNS, EVENTS, _csv_expected, _csv_safe, _export_blocks
from .parallel import _export_parallel, _plan


def export(
    store: ReceiptStore,
    out: TextIO,
    fmt: str = "jsonl",
    since: int | str | None = None,
    until: int | str | None = None,
    event: str | None = None,
    *,
    signer: ReceiptSigner | None = None,
    workers: int | None = None,
    with_policies: bool = False,
) -> int:
    """Write the log to ``out``, oldest first, streaming; returns the number of receipts.

    Every row carries its signature, chain hashes and the signed ``body`` so it can be
    verified on its own (``consent verify --file``). ``since`` is inclusive, ``until``
    exclusive. A complete JSON Lines export (no filter) ends with one ``{"chain_head": ...}``
    line holding the signed head and purge checkpoint, which lets ``verify --file`` prove
    that nothing is missing.

    ``workers``: how many processes may share the work on a large log (None: one per CPU,
    at most two; the output is the same). ``with_policies``: the export begins with the
    archived texts of every policy revision its receipts name, each with its signed record
    (:func:`consent.audit.archive.policy_lines`).
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
    if with_policies and fmt != "jsonl":
        raise ValueError("--with-policies needs the jsonl format")
    if event is not None and event not in EVENTS:
        raise ValueError(f"unknown event {event!r}: use one of {', '.join(EVENTS)}")
    start, end = _as_time(since), _as_time(until)
    complete = start is None and end is None and event is None
    state = store.chain_state()
    max_seq = state.head.seq if state.head is not None else None
    count = 0
    if fmt == "csv":
        rows = store.iter_raw(start, end, event, max_seq=max_seq)
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            fields = _csv_expected(row)
            writer.writerow([_csv_safe(fields[column]) for column in CSV_COLUMNS])
            count += bool(row.subject_id)  # a chain record (empty subject) is not a receipt
        return count
    begin = out.tell() if _rewindable(out) else None  # where a restart goes back to
    if with_policies:
        wanted = revisions_named(store.iter_raw(start, end, event, max_seq=max_seq))
        out.writelines(policy_lines(store, wanted))
    fast = _Fast(signer)
    write = out.write
    plan = _plan(store, state, workers, every=2) if begin is not None else None
    if plan is not None and begin is not None:
        # The worker makes every other chunk; this process writes them all, in order.
        done = _export_parallel(store, out, fast, signer, plan, start, end, event)
        if done is None or store.chain_state().checkpoint != state.checkpoint:
            # A purge ran meanwhile, so the two processes may have read different logs:
            # start again from the same place, in one process.
            out.seek(begin)
            out.truncate()
            return export(
                store,
                out,
                fmt,
                since,
                until,
                event,
                signer=signer,
                workers=1,
                with_policies=with_policies,
            )
        count = done
    else:
        for n, block in _export_blocks(store, fast, start, end, event, None, max_seq):
            write(block)
            count += n
    if complete and (state.head is not None or state.checkpoint is not None):
        trailer = {
            "chain_head": state.head.to_dict() if state.head else None,
            "checkpoint": state.checkpoint.to_dict() if state.checkpoint else None,
        }
        out.write(json.dumps(trailer, separators=(",", ":")) + "\n")
    return count


def export_dpv(
    store: ReceiptStore,
    out: TextIO,
    *,
    since: int | None = None,
    until: int | None = None,
    event: str | None = None,
    subject: str | None = None,
    base_url: str | None = None,
) -> tuple[int, int]:
    """Write each receipt as a JSON-LD DPV consent record, one per line, oldest first;
    returns ``(written, unreadable)`` (rows whose body is not a valid receipt are left out
    and counted: ``consent verify`` names them).

    The status of each purpose depends on the visitor's previous receipt, so the export
    keeps each visitor's last granted categories (a few hundred bytes per visitor).
    """
    rows: Iterator[ReceiptRow] = (
        store.iter_subject(subject) if subject is not None else store.iter_raw(since, until)
    )
    previous: dict[str, tuple[str, ...]] = {}
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    written = unreadable = 0
    for row in rows:
        if row.event in RECORD_EVENTS or not row.subject_id:
            continue
        if (since is not None and row.timestamp < since) or (
            until is not None and row.timestamp >= until
        ):
            continue
        try:
            stored = row.to_stored()
        except ValueError:
            unreadable += 1
            continue
        receipt = stored.receipt
        before: Sequence[str] | None = previous.get(row.subject_id)
        if before is None and receipt.event in ("given", "refused"):
            before = ()  # a first decision
        if receipt.event != "once":  # "Load this once" leaves the visitor's choice as it was
            granted = tuple(receipt.granted)
            previous[row.subject_id] = shared.setdefault(granted, granted)
        if event is not None and receipt.event != event:
            continue
        node = dpv.with_context(dpv.record(stored, previous=before, base_url=base_url))
        out.write(json.dumps(node, ensure_ascii=False, separators=(",", ":")) + "\n")
        written += 1
    return written, unreadable


# Lines per block written: fewer calls than one per line, and blocks small enough (under


def _rewindable(out: TextIO) -> bool:
    """Whether ``out`` can go back to where the export started (to start it again)."""
    try:
        return out.seekable()
    except (AttributeError, OSError, ValueError):
        return False

"""Verifying the receipt log: a store, or an export in JSON Lines or CSV (``consent verify``)."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..receipts import (
    GENESIS_HASH,
    ChainHead,
    Checkpoint,
    ReceiptSigner,
)
from ..store import ReceiptStore, StoreDamaged
from ..store.base import ReceiptRow
from ..store.chain import (
    RECORD_EVENTS,
    ChainState,
    record_fields,
)
from .archive import EXPORT_KEY, check_file_policies, check_store
from .chain import _Chain, _result
from .columns import StatsCheck, stats_check, stats_findings
from .fast import _Fast
from .findings import Finding, VerifyResult
from .heads import _expected_head, _head_finding
from .lines import _CHAIN_FIELDS, _CSV_FORMULA, _csv_expected, _csv_unsafe, _stored
from .parallel import _plan, _verify_chunk, _Worker
from .rows import _batches
from .subject import SUBJECT_KEY, check_subject, subject_trailer


def verify_store(
    store: ReceiptStore,
    signer: ReceiptSigner,
    *,
    workers: int | None = None,
    expect_head: tuple[int, str] | None = None,
) -> VerifyResult:
    """Verify the whole log held by ``store`` (raises StoreUnavailable when unreachable; a
    store missing a part it was created with is a finding).

    The log is verified up to the signed head read first: receipts appended meanwhile (the
    head has moved past them) belong to a later verification. ``expect_head``: a head kept
    elsewhere (:func:`parse_head`) the log must still pass through. ``workers``: how many
    processes may share the work on a large log (None: one per CPU, at most two; the result
    is the same).
    """
    try:
        chain, state, head, stats = _walk_store(store, signer, workers)
    except StoreDamaged as exc:
        return VerifyResult(
            ok=False,
            count=0,
            reason=str(exc),
            findings=(Finding(str(exc), code="store"),),
            finding_count=1,
        )
    finding = _head_finding(head, chain, signer)
    if finding is not None:
        chain.note(finding)
    for found in check_store(store, signer, state):  # the policy archive
        chain.note(Finding(found.reason, found.seq, found.receipt_id, found.code))
    for finding in stats_findings(store, head, stats):  # the statistics columns
        chain.note(finding)
    notes = []
    if expect_head is not None:
        checked = _expected_head(
            expect_head, chain, state.start(), functools.partial(_hash_at, store)
        )
        if isinstance(checked, Finding):
            chain.note(checked)
        else:
            notes.append(checked)
    return _result(chain, head, state.checkpoint, notes)


def _hash_at(store: ReceiptStore, seq: int) -> str | None:
    batches, _ = _batches(store, min_seq=seq, max_seq=seq)
    for batch in batches:
        for values in batch:
            return str(values[9])
    return None


def _walk_store(
    store: ReceiptStore, signer: ReceiptSigner, workers: int | None, *, columns: bool = True
) -> tuple[_Chain, ChainState, ChainHead | None, StatsCheck | None]:
    """Read the log up to its signed head and check every row: the chain (with its
    findings), the signed state read first, the head the end was checked against, and what
    the rows' statistics columns showed (None: the store has none, or not ``columns``)."""
    state = store.chain_state()
    stats = stats_check(store) if columns else None
    categories = None if stats is None else stats.categories
    chain = _Chain(signer, state.start())
    if state.checkpoint is not None and not state.checkpoint.verify(signer):
        chain.note(
            Finding(
                "the purge checkpoint signature does not verify (checkpoint edited)",
                code="checkpoint",
            )
        )
    head = state.head
    max_seq = head.seq if head is not None else None
    plan = _plan(store, state, workers, every=2)
    if plan is None:
        batches, row_from = _batches(store, max_seq=max_seq, stats=stats is not None)
        for batch in batches:
            chain.add_batch(batch, row_from, stats)
    else:
        # Two processes: the worker checks its chunks (its share of seq ranges) the quick
        # way; this one checks the others, then takes each of the worker's in order, where
        # it links to the one before. A chunk the worker could not prove, or that does not
        # link, is checked here again, the usual way: the findings and their messages are
        # the same as in one process.
        with _Worker(store, signer, plan, _verify_chunk, categories) as worker:
            for low, high, remote in plan:
                summary = worker.next() if remote else None
                if remote and chain.join(summary):
                    if stats is not None and summary is not None:
                        stats.matched += summary[6]
                    continue
                batches, row_from = _batches(
                    store, max_seq=high, min_seq=low, stats=stats is not None
                )
                for batch in batches:
                    chain.add_batch(batch, row_from, stats)
    if head is not None:
        head = _tail(store, chain, head, signer)
    if store.chain_state().checkpoint != state.checkpoint:
        # A purge ran meanwhile: the rows read may come from before and after it.
        return _walk_store(store, signer, workers, columns=columns)
    return chain, state, head, stats


def _tail(store: ReceiptStore, chain: _Chain, head: ChainHead, signer: ReceiptSigner) -> ChainHead:
    """Rows after the signed head read at the start. Receipts appended since (the stored
    head has moved past them) are left to a later verification; any other row after the head
    is checked here, and the head it is compared with is the stored one."""
    batches, row_from = _batches(store, min_seq=head.seq + 1)
    tail = [values for batch in batches for values in batch]
    if not tail:
        return head
    now = store.chain_state().head
    if (
        now is not None
        and type(tail[-1][0]) is int
        and tail[-1][0] <= now.seq
        and now.verify(signer)
    ):
        return head  # appended meanwhile, under a head that records them
    for values in tail:
        chain.add(row_from(values))
    return now if now is not None else head


def _json_object(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """A line of JSON as a dict, or why it is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        return None, "not valid JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, None


class _Twice(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Twice(key)
            seen.add(key)
    return data


def _duplicate_key(line: str) -> str | None:
    """A key given twice in the same object of ``line`` (readers disagree on which counts)."""
    try:
        json.loads(line, object_pairs_hook=_no_duplicates)
    except _Twice as exc:
        return exc.key
    except ValueError:
        return None
    return None


def _row_from(data: Mapping[str, Any]) -> ReceiptRow | str:
    """The row an exported record describes, or why it cannot be read as one."""
    try:
        return ReceiptRow(
            seq=int(data["seq"]),
            receipt_id=str(data["receipt_id"]),
            subject_id=str(data["subject_id"]),
            timestamp=int(data["timestamp"]),
            event=str(data["event"]),
            body=str(data["body"]),
            kid=str(data["kid"]),
            signature=str(data["signature"]),
            prev_hash=str(data["prev_hash"]),
            hash=str(data["hash"]),
        )
    except KeyError as exc:
        return f"field {exc.args[0]} missing"
    except (TypeError, ValueError):
        return "seq and timestamp must be integers"


def _compare(
    given: Mapping[str, Any], expected: Mapping[str, Any], row: ReceiptRow
) -> Finding | None:
    """Every field of an exported row is the signed body's, and none is missing or added."""
    if given.keys() - _CHAIN_FIELDS != expected.keys() - _CHAIN_FIELDS:
        odd = sorted((given.keys() ^ expected.keys()) - set(_CHAIN_FIELDS))
        return Finding(
            f"fields {', '.join(odd)} added or removed after export",
            row.seq,
            row.receipt_id,
            "fields",
        )
    for name, value in given.items():
        if name in _CHAIN_FIELDS:
            continue
        if expected[name] != value:
            return Finding(
                f"{name} differs from the signed body (edited after signing)",
                row.seq,
                row.receipt_id,
                f"column:{name}",
            )
    return None


def _expected_fields(row: ReceiptRow, fast: _Fast) -> dict[str, Any] | None:
    """The exported fields a sound row's line holds (besides the chain fields)."""
    if row.event in RECORD_EVENTS:
        return record_fields(row)
    expected = fast.fields(row)
    if expected is not None:
        return expected
    stored = _stored(row)
    return None if stored is None else stored.to_dict()


def _head_from(data: Mapping[str, Any]) -> tuple[ChainHead | None, Checkpoint | None]:
    """The chain head line of an export; raises ValueError when it is malformed."""
    try:
        head_data = data.get("chain_head")
        cp_data = data.get("checkpoint")
        head = ChainHead(**head_data) if head_data else None
        checkpoint = Checkpoint(**cp_data) if cp_data else None
    except TypeError:
        raise ValueError("the chain head line is malformed") from None
    return head, checkpoint


def _trailer(path: str | Path) -> dict[str, Any] | None:
    """The chain head line that ends a complete JSON Lines export, if the file ends with one."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read().decode("utf-8", errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return None
    data, _ = _json_object(lines[-1])
    return data if data is not None and "chain_head" in data else None


def _verify_jsonl(
    lines: Iterator[tuple[int, str]],
    signer: ReceiptSigner,
    trailer: dict[str, Any] | None,
    expect_head: tuple[int, str] | None,
    subject: dict[str, Any] | None = None,
) -> VerifyResult:
    head: ChainHead | None = None
    checkpoint: Checkpoint | None = None
    start = None
    head_problem = None
    if trailer is not None:
        try:
            head, checkpoint = _head_from(trailer)
        except ValueError as exc:
            head_problem = str(exc)
        start = (checkpoint.seq, checkpoint.hash) if checkpoint else (0, GENESIS_HASH)
    chain = _Chain(signer, start, file=True)
    if expect_head is not None:
        chain.watch = expect_head[0]
    if head_problem is not None:
        chain.note(Finding(head_problem, code="file"))
    if checkpoint is not None and not checkpoint.verify(signer):
        chain.note(Finding("the purge checkpoint signature does not verify", code="checkpoint"))
    fast = chain.fast
    seen_trailer = False
    subject_rows: list[tuple[int, str, str]] = []
    policies: list[tuple[int, Any]] = []  # archived policies carried (--with-policies)
    named: list[tuple[int, str, str | None]] = []  # and the revisions the receipts name
    for number, line in lines:
        if not line.strip():
            continue
        data, problem = _json_object(line)
        if data is None:
            chain.note(Finding(f"line {number}: {problem}", code="file"))
            continue
        if seen_trailer:
            chain.note(Finding(f"line {number}: receipts after the chain head line", code="file"))
        if "chain_head" in data:
            seen_trailer = True
            continue
        if subject is not None and SUBJECT_KEY in data:
            continue  # the statement ending a subject export (checked below)
        if EXPORT_KEY in data and len(data) == 1:
            policies.append((number, data[EXPORT_KEY]))
            continue
        row = _row_from(data)
        if isinstance(row, str):
            chain.note(Finding(f"line {number}: {row}", code="file"))
            continue
        if subject is not None:
            subject_rows.append((row.seq, row.hash, row.subject_id))
        if policies and row.event not in RECORD_EVENTS:
            named.append((row.seq, row.receipt_id, data.get("revision")))
        if line == fast.text(row):
            chain.add(row)  # exactly what export writes for it: its fields are the body's
            continue
        twice = _duplicate_key(line)
        reported = None
        if twice is not None:
            reported = Finding(
                f"line {number}: key {twice} appears twice (readers disagree on which counts)",
                row.seq,
                row.receipt_id,
                "file",
            )

        def fields(data: dict[str, Any] = data, row: ReceiptRow = row) -> Finding | None:
            expected = _expected_fields(row, fast)
            return None if expected is None else _compare(data, expected, row)

        chain.add(row, reported=reported, fields=fields)
    if trailer is not None and not seen_trailer:
        chain.note(Finding("the chain head line could not be read", code="file"))
    for found in check_file_policies(policies, named, signer):
        chain.note(Finding(found.reason, found.seq, found.receipt_id, found.code))
    notes = []
    if trailer is not None:
        finding = _head_finding(head, chain, signer)
        if finding is not None:
            chain.note(finding)
        if expect_head is not None:
            checked = _expected_head(
                expect_head,
                chain,
                start or (0, GENESIS_HASH),
                lambda seq: chain.watched,
            )
            if isinstance(checked, Finding):
                chain.note(checked)
            else:
                notes.append(checked)
    elif expect_head is not None:
        notes.append("expected head: not checked (the file has no chain head line)")
    if subject is not None:
        subject_notes, problems = check_subject(subject, subject_rows, signer)
        for problem in problems:
            chain.note(Finding(problem, code="file"))
        notes.extend(subject_notes)
    if trailer is None and subject is None:
        _nothing_verified(chain)
    return _result(chain, head, checkpoint, notes)


# What each chain column of a CSV export must look like (after its protecting quote).
_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    "seq": (re.compile(r"[0-9]+"), "a number"),
    "kid": (re.compile(r"[0-9a-f]{12}"), "a key id (12 hex digits)"),
    "signature": (re.compile(r"[A-Za-z0-9_-]{43}"), "a signature (43 base64url characters)"),
    "prev_hash": (re.compile(r"[0-9a-f]{64}"), "a hash (64 hex digits)"),
    "hash": (re.compile(r"[0-9a-f]{64}"), "a hash (64 hex digits)"),
    "body": (re.compile(r"\{.*\}", re.DOTALL), "a JSON object"),
}


def _csv_record_problem(
    index: int, header: list[str], cells: list[str]
) -> tuple[dict[str, str], str | None]:
    """The fields of a CSV row (each cell without its protecting quote) and the first thing
    wrong with its cells: cells beyond the header, a formula without its quote, a chain
    column of the wrong shape."""
    problem = None
    if len(cells) > len(header):
        extra = len(cells) - len(header)
        problem = f"CSV row {index}: {extra} cell{'s' if extra != 1 else ''} beyond the header"
    data: dict[str, str] = {}
    for name, value in zip(header, cells, strict=False):
        shape = _SHAPES.get(name)
        if value and value[0] in _CSV_FORMULA and not (shape and shape[0].fullmatch(value)):
            # The export prefixes such a cell with "'" (an export of an earlier version wrote
            # the chain columns as they are, which is harmless in their shape): this one was
            # edited since, and a spreadsheet would run it as a formula.
            problem = problem or (
                f"CSV row {index}: {name} is a formula without its protecting quote "
                "(edited after export)"
            )
        value = _csv_unsafe(value)
        if shape is not None and not shape[0].fullmatch(value):
            problem = problem or f"CSV row {index}: {name} is not {shape[1]}"
        data[name] = value
    return data, problem


def _verify_csv(
    lines: Iterator[tuple[int, str]], signer: ReceiptSigner, expect_head: tuple[int, str] | None
) -> VerifyResult:
    chain = _Chain(signer, None, file=True)
    reader = csv.reader(line for _, line in lines)
    header = next(reader, [])
    missing = [c for c in _CHAIN_FIELDS if c not in header]
    if missing:
        chain.note(Finding(f"CSV export lacks the columns {', '.join(missing)}", code="file"))
        return _result(chain, None, None)
    for name in sorted({name for name in header if header.count(name) > 1}):
        chain.note(
            Finding(
                f"CSV header: column {name} appears twice (spreadsheets show the first, "
                "readers may take either)",
                code="file",
            )
        )
    for index, cells in enumerate(reader, start=2):
        data, problem = _csv_record_problem(index, header, cells)
        row = _row_from(data)
        if isinstance(row, str):
            chain.note(Finding(problem or f"CSV row {index}: {row}", code="file"))
            continue
        reported = None if problem is None else Finding(problem, row.seq, row.receipt_id, "file")

        def fields(data: dict[str, str] = data, row: ReceiptRow = row) -> Finding | None:
            return _compare(data, _csv_expected(row), row)

        chain.add(row, reported=reported, fields=fields)
    notes = []
    if expect_head is not None:
        notes.append("expected head: not checked (a CSV export has no chain head)")
    _nothing_verified(chain)
    return _result(chain, None, None, notes)


def _nothing_verified(chain: _Chain) -> None:
    """A file without a receipt or a chain head proves nothing: an empty file, or an export
    whose filter matched nothing, is a finding rather than "OK: 0 receipts verified"."""
    if chain.count == 0 and chain.pending.count == 0:
        chain.note(
            Finding(
                "the file holds no receipts and no chain head: there is nothing to verify "
                "(an empty file, or an export whose filter matched nothing)",
                code="file",
            )
        )


def verify_file(
    path: str | Path, signer: ReceiptSigner, *, expect_head: tuple[int, str] | None = None
) -> VerifyResult:
    """Verify an export (JSON Lines, or CSV).

    Every receipt's signature, link and fields are checked, and each receipt that directly
    follows another (consecutive seq) must link to it. A complete JSON Lines export, which
    ends with the signed chain head, must also hold every receipt from the start of the log to
    the head; a filtered export may skip receipts. Every finding is reported.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.read(1)
        handle.seek(0)
        lines = enumerate(handle, start=1)
        if first in ("{", "\n", ""):
            return _verify_jsonl(lines, signer, _trailer(path), expect_head, subject_trailer(path))
        return _verify_csv(lines, signer, expect_head)


# --------------------------------------------------------------------------- incidents

"""Export, verify and purge the consent-receipt log, and record incidents in it
(``consent export|verify|purge|incident``).

Verification recomputes everything a stored row claims: the signature over its body, its
keyed link (its seq and its place after the previous row), that its indexed columns match the
signed body, and, for a store, that the log ends where the signed chain head says it ends and
starts where the signed purge checkpoint says it starts. It reports every finding, and the
incident markers with the findings each of them covers.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import codecs
import contextlib
import csv
import functools
import hashlib
import hmac
import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TextIO, get_args

from .receipts import (
    GENESIS_HASH,
    RECEIPT_SALT,
    ChainHead,
    Checkpoint,
    Controller,
    Event,
    Purpose,
    Receipt,
    ReceiptSigner,
    StoredReceipt,
    format_time,
)
from .store import ReceiptStore, StoreDamaged, StoreUnavailable, open_store
from .store.base import ReceiptRow, redact_url, row_values, values_in_batches
from .store.chain import (
    INCIDENT_EVENT,
    KEYED_EVENT,
    MAX_COVERED_RUNS,
    RECORD_EVENTS,
    ChainState,
    Covered,
    damage,
    incident_record,
    link_hash,
    link_kind,
    record_fields,
    record_problem,
    span,
)

__all__ = [
    "CSV_COLUMNS",
    "EVENTS",
    "MAX_LISTED",
    "Finding",
    "Incident",
    "NothingToRecord",
    "VerifyResult",
    "export",
    "parse_head",
    "parse_time",
    "purge",
    "record_incident",
    "register",
    "verify_file",
    "verify_store",
]

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a program ended by SIGPIPE

EVENTS: tuple[str, ...] = get_args(Event)

CSV_COLUMNS = (
    "seq",
    "receipt_id",
    "time",
    "timestamp",
    "event",
    "subject_id",
    "granted",
    "refused",
    "revision",
    "policy_url",
    "method",
    "jurisdiction",
    "language",
    "gpc",
    "page",
    "ip",
    "user_agent",
    "controller",
    "kid",
    "signature",
    "prev_hash",
    "hash",
    "body",
)

_CHAIN_FIELDS = ("seq", "kid", "signature", "prev_hash", "hash", "body")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# --------------------------------------------------------------------------- time


def parse_time(value: str) -> int:
    """Unix seconds from ``YYYY-MM-DD`` (midnight UTC), RFC 3339, or plain unix seconds.

    ``2026-11-25``, ``2026-11-25T12:00:00Z``, ``2026-11-25T13:00:00+01:00`` and ``1795608000``
    are accepted; a date-time without an offset is taken as UTC.
    """
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        if _DATE.match(text):
            moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"invalid time {value!r}: use YYYY-MM-DD or RFC 3339 (2026-11-25T12:00:00Z)"
        ) from None
    return int(moment.timestamp())


def _as_time(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return parse_time(value)


# --------------------------------------------------------------------------- fast path
#
# Export and verification stream millions of rows, and parsing every body into a pydantic model
# (and dumping it again) costs several times more than everything else together. Almost every
# row is what ``StoredReceipt.seal`` wrote: the canonical JSON of a receipt that was validated
# when it was sealed, signed with the receipt key. For such a row the fields can be read and
# checked on the body text itself. Anything else (an unknown key, a signature that does not
# match, a body that is not what sealing writes) goes the full way, so every finding and every
# message stays the same.

# Keys of a canonical body (``canonical_json``: the model fields plus the computed ``time``).
_BODY_KEYS = frozenset(Receipt.model_fields) | {"time"}
_CONTROLLER_KEYS = frozenset(Controller.model_fields)
_PURPOSE_KEYS = frozenset(Purpose.model_fields)


def _plain(value: str) -> bool:
    """True when JSON writes ``value`` between quotes as it is (``ensure_ascii=False``):
    no quote, no backslash, no control character. (False for a few more, which then simply
    take the slower way.)"""
    return value.isprintable() and '"' not in value and "\\" not in value


def _json_str(value: str) -> str:
    """``json.dumps(value, ensure_ascii=False)``, quickly for the usual plain strings."""
    if _plain(value):
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


# base64 -> base64url (what itsdangerous writes)
_URLSAFE = bytes.maketrans(b"+/", b"-_")

Values = tuple[Any, ...]
"""A row's values in :class:`ReceiptRow` field order, as the store returned them."""


def _batches(
    store: ReceiptStore,
    since: int | None = None,
    until: int | None = None,
    event: str | None = None,
    *,
    max_seq: int | None = None,
    min_seq: int | None = None,
) -> tuple[Iterator[list[Values]], Callable[[Values], ReceiptRow]]:
    """The store's rows in batches of value tuples, and how to turn one into a ReceiptRow."""
    iter_values = getattr(store, "iter_values", None)
    row_from = getattr(store, "row_from_values", None)
    if iter_values is not None and row_from is not None:
        if min_seq is None:
            return iter_values(since, until, event, max_seq=max_seq), row_from
        return iter_values(since, until, event, max_seq=max_seq, min_seq=min_seq), row_from

    rows = store.iter_raw(since, until, event, max_seq=max_seq)
    return values_in_batches(rows, min_seq), lambda values: ReceiptRow(*values)


class _Fast:
    """Signature checks without re-deriving keys, and rows checked on the body text.

    The checks take a row's values as the store returned them (:data:`Values`): a value of an
    unexpected type (a number or a blob where text belongs) makes them answer False, and the
    caller then takes the full way with the :class:`ReceiptRow`.
    """

    def __init__(self, signer: ReceiptSigner | None) -> None:
        # kid -> the HMAC key itsdangerous derives for receipt signatures (salt RECEIPT_SALT).
        self._keys: dict[str, bytes] = {}
        # kid -> SHA-256 states after the HMAC inner and outer key pads (RFC 2104): a
        # signature then costs two copies and the hashing, not a key setup per row.
        self._pads: dict[str, tuple[Any, Any]] = {}
        # Where each column was found in the last body (see _has).
        self._at = [0, 0, 0, 0, 0]
        self._signer = signer
        if signer is not None:
            for kid in signer.kids:
                key = signer._signer(kid, RECEIPT_SALT).derive_key()
                self._keys[kid] = key
                if len(key) > 64:  # longer than a SHA-256 block: HMAC hashes it first
                    key = hashlib.sha256(key).digest()
                key = key.ljust(64, b"\0")
                self._pads[kid] = (
                    hashlib.sha256(bytes(b ^ 0x36 for b in key)),
                    hashlib.sha256(bytes(b ^ 0x5C for b in key)),
                )

    def _signed(self, body: Any, kid: Any, signature: Any) -> bool:
        """True when ``signature`` is the receipt signature of ``body`` by key ``kid``."""
        if type(kid) is not str or type(body) is not str or type(signature) is not str:
            return False
        pads = self._pads.get(kid)
        if pads is None:
            return False
        try:
            inner = pads[0].copy()
            inner.update(body.encode("utf-8"))
            outer = pads[1].copy()
            outer.update(inner.digest())
            mac = binascii.b2a_base64(outer.digest(), newline=False)
            return hmac.compare_digest(
                mac.translate(_URLSAFE).rstrip(b"="), signature.encode("ascii")
            )
        except UnicodeEncodeError:
            return False

    def authentic(self, row: ReceiptRow) -> bool:
        """True when the row's body carries a valid receipt signature of a known key."""
        return self._signed(row.body, row.kid, row.signature)

    def check(self, values: Values, keyed: bool) -> bool:
        """Signature, link and columns of a sealed row, checked without parsing; ``keyed``:
        whether the row's link must be the keyed one (:func:`consent.store.chain.link_hash`)
        or the unkeyed one of earlier versions.

        In a canonical body every top-level key occurs once, none of them occurs inside the
        nested objects, and a quote inside a string is escaped, so ``"event":"given"`` occurs
        in the text exactly when the body's event is ``given``. False means: take the full way.
        """
        seq, receipt_id, subject_id, ts, event, body, kid, signature, prev_hash, hash_ = values
        if not self._signed(body, kid, signature):
            return False
        if type(prev_hash) is not str or type(hash_) is not str:
            return False
        if keyed:
            assert self._signer is not None  # (_signed found the key)
            if link_hash(self._signer, seq, prev_hash, kid, signature) != hash_:
                return False
        else:
            try:
                data = f"{prev_hash}\n{body}\n{kid}\n{signature}".encode()
            except UnicodeEncodeError:
                return False
            if hashlib.sha256(data).hexdigest() != hash_:
                return False
        if type(receipt_id) is not str or type(subject_id) is not str or type(event) is not str:
            return False
        if type(ts) is not int:
            return False
        # Usually written between quotes as they are (nothing to escape).
        if not _plain(receipt_id + subject_id + event):
            receipt_id, subject_id, event = (
                _json_str(receipt_id)[1:-1],
                _json_str(subject_id)[1:-1],
                _json_str(event)[1:-1],
            )
        return (
            self._has(body, f'"receipt_id":"{receipt_id}"', 0)
            and self._has(body, f'"event":"{event}"', 1)
            and self._has(body, f'"subject_id":"{subject_id}"', 2)
            and (
                self._has(body, f'"timestamp":{ts},', 3)
                or self._has(body, f'"timestamp":{ts}}}', 4)
            )
        )

    def _has(self, body: str, needle: str, which: int) -> bool:
        """``needle in body``, looking first where it was in the previous body (sealed
        bodies share their layout, so it is usually there)."""
        at = self._at[which]
        if body.startswith(needle, at):
            return True
        at = body.find(needle)
        if at < 0:
            return False
        self._at[which] = at
        return True

    def verified(self, row: ReceiptRow, keyed: bool) -> bool:
        """:meth:`check` for a :class:`ReceiptRow`."""
        return self.check(row_values(row), keyed)

    def fields(self, row: ReceiptRow) -> dict[str, Any] | None:
        """The receipt fields of a row whose body is a canonical receipt object, else None.

        Only called for authentic rows, or (without a key) to decide whether the export line
        can be written from the body text: the body must then be a JSON object with exactly
        the receipt's keys.
        """
        body = row.body
        if not (body.startswith("{") and body.endswith("}")):
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.keys() != _BODY_KEYS:
            return None
        controller, purposes = data["controller"], data["purposes"]
        if not isinstance(controller, dict) or controller.keys() != _CONTROLLER_KEYS:
            return None
        if not isinstance(purposes, list) or not all(
            isinstance(p, dict) and p.keys() == _PURPOSE_KEYS for p in purposes
        ):
            return None
        return data

    def line(self, row: ReceiptRow) -> str | None:
        """The JSON Lines export of a sealed row (with its line feed), written from its body
        text, or None.

        The same fields and values as ``StoredReceipt.to_dict()``: the receipt fields (in the
        body's order), then seq, kid, signature, prev_hash, hash and the body itself.
        """
        if not self.authentic(row) and (self._keys or self.fields(row) is None):
            return None
        return self.text(row)

    def signed_line(self, values: Values) -> str | None:
        """:meth:`line` of an authentic row of the usual types, straight from its values;
        None for anything else (then :meth:`line` decides)."""
        seq, _, _, _, _, body, kid, signature, prev_hash, hash_ = values
        if not self._signed(body, kid, signature) or type(seq) is not int:
            return None
        # kid is a known key id and signature is base64url: both plain. The hashes were not
        # checked: write them as they are only when they are (ASCII letters and digits).
        if type(prev_hash) is not str or type(hash_) is not str:
            return None
        if not (prev_hash + hash_).encode("utf-8", "replace").isalnum():
            return None
        return (
            f'{body[:-1]},"seq":{seq},"kid":"{kid}","signature":"{signature}",'
            f'"prev_hash":"{prev_hash}","hash":"{hash_}","body":{encode_basestring(body)}}}\n'
        )

    @staticmethod
    def text(row: ReceiptRow) -> str:
        """:meth:`line` without the checks (with its line feed)."""
        if _plain(row.kid + row.signature + row.prev_hash + row.hash):
            chain = (
                f'"kid":"{row.kid}","signature":"{row.signature}",'
                f'"prev_hash":"{row.prev_hash}","hash":"{row.hash}"'
            )
        else:  # something to escape (never in what the store writes)
            chain = (
                f'"kid":{_json_str(row.kid)},"signature":{_json_str(row.signature)},'
                f'"prev_hash":{_json_str(row.prev_hash)},"hash":{_json_str(row.hash)}'
            )
        return f'{row.body[:-1]},"seq":{row.seq},{chain},"body":{encode_basestring(row.body)}}}\n'


# --------------------------------------------------------------------------- export


_CSV_FORMULA = "=+-@\t\r"  # what a spreadsheet program may read as the start of a formula


def _csv_safe(value: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula (reversible).

    Applied to every cell: the receipt fields, some of which come from the visitor (user
    agent, page), and the chain fields and body too, which whoever can write the store can
    set to anything.
    """
    if value and value[0] in _CSV_FORMULA + "'":
        return "'" + value
    return value


def _csv_unsafe(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _csv_fields(stored: StoredReceipt) -> dict[str, str]:
    row = stored.to_dict()
    row["controller"] = stored.receipt.controller.name
    return {column: _csv_cell(row.get(column)) for column in CSV_COLUMNS}


def _raw_fields(row: ReceiptRow) -> dict[str, Any]:
    """Export fields of a row whose body does not parse: what the columns say."""
    return {
        "seq": row.seq,
        "receipt_id": row.receipt_id,
        "subject_id": row.subject_id,
        "timestamp": row.timestamp,
        "time": format_time(row.timestamp),
        "event": row.event,
        "kid": row.kid,
        "signature": row.signature,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "body": row.body,
    }


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
) -> int:
    """Write the log to ``out``, oldest first, streaming; returns the number of receipts.

    Every row carries its signature, chain hashes and the signed ``body`` so it can be
    verified on its own (``consent verify --file``). ``since`` is inclusive, ``until``
    exclusive. A complete JSON Lines export (no filter) ends with one ``{"chain_head": ...}``
    line holding the signed head and purge checkpoint, which lets ``verify --file`` prove
    that nothing is missing.

    ``workers``: how many processes may share the work on a large log (None: one per CPU,
    at most two; the output is the same).
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
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
            count += 1
        return count
    fast = _Fast(signer)
    write = out.write
    plan = _plan(store, state, workers, every=2)
    counted = None
    if plan is not None:
        # This process writes its chunks and places the helper's: every other one.
        target = _file_target(out)
        if target is not None:
            counted = _export_parallel(store, out, fast, signer, plan, start, end, event, target)
            if store.chain_state().checkpoint != state.checkpoint:
                # A purge ran meanwhile, so the two processes may have read different logs:
                # start again from the same place, in one process.
                os.ftruncate(target[0], target[1])
                out.seek(target[1])
                return export(store, out, fmt, since, until, event, signer=signer, workers=1)
    if counted is not None:
        count = counted
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


# Lines per block written: fewer calls than one per line, and blocks small enough (under
# 128 KiB) for malloc to reuse instead of mapping fresh pages for each.
_WRITE_ROWS = 32


def _export_blocks(
    store: ReceiptStore,
    fast: _Fast,
    since: int | None,
    until: int | None,
    event: str | None,
    min_seq: int | None,
    max_seq: int | None,
) -> Iterator[tuple[int, str]]:
    """The export lines of the rows from ``min_seq`` to ``max_seq`` (both inclusive, None:
    no limit), streamed in blocks of text: ``(number of lines, text)``."""
    signed_line = fast.signed_line
    batches, row_from = _batches(store, since, until, event, max_seq=max_seq, min_seq=min_seq)
    for batch in batches:
        lines = list(map(signed_line, batch))
        if None in lines:
            for index, line in enumerate(lines):
                if line is None:
                    lines[index] = _line(row_from(batch[index]), fast)
        for i in range(0, len(lines), _WRITE_ROWS):
            block = lines[i : i + _WRITE_ROWS]
            yield len(block), "".join(block)  # type: ignore[arg-type]


def _line(row: ReceiptRow, fast: _Fast) -> str:
    """The JSON Lines export of any row (with its line feed): a chain record's line holds
    its body's fields, as a receipt's does."""
    line = fast.line(row)
    if line is None and row.event in RECORD_EVENTS and record_fields(row) is not None:
        line = fast.text(row)
    if line is None:
        try:
            data = row.to_stored().to_dict()
        except ValueError:
            data = _raw_fields(row)
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    return line


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the log: ``reason``, and the row it was found at (``seq`` and
    ``receipt_id``, when there is one). ``code`` names the kind of finding (``signature``,
    ``link``, ``gap``, ``column:event``, ...); an incident marker records findings by seq and
    kind. ``missing``: for a gap, how many receipts are missing before the row."""

    reason: str
    seq: int | None = None
    receipt_id: str | None = None
    code: str = ""
    missing: int = 0

    def line(self) -> str:
        if self.receipt_id is not None:
            return f"BROKEN at receipt {self.receipt_id} (seq {self.seq}): {self.reason}"
        if self.seq is not None:
            return f"BROKEN at seq {self.seq}: {self.reason}"
        return f"BROKEN: {self.reason}"


@dataclass(frozen=True)
class Incident:
    """A signed incident marker (``consent incident``), as verification found it: where it
    is, when and by whom it was recorded, why, what was found at the end of the log, and the
    findings of the log before it that it covers (``report``: the first ones, as lines;
    ``count``: all of them). ``missing`` receipts were lost (gaps, and the newest receipts
    a genuine head still recorded); with ``head_lost``, the head itself was missing or not
    genuine, so how many newest receipts went with it cannot be told. ``covered`` is False
    when the findings before it are no longer those it recorded (a finding of its own)."""

    seq: int
    record_id: str
    time: int
    reason: str
    by: str | None
    found: str
    head: tuple[int, str] | None
    after: int
    missing: int
    head_lost: bool
    altered: int
    count: int
    runs: tuple[tuple[int | None, int | None, str], ...]
    report: tuple[str, ...]
    covered: bool = True

    @property
    def affected(self) -> int:
        """Receipts known to be missing or altered."""
        return self.missing + self.altered

    @classmethod
    def from_row(cls, row: ReceiptRow) -> Incident | None:
        """The marker in a record row whose signature verified; None when its body lacks
        what a marker holds."""
        data = record_fields(row)
        try:
            assert data is not None
            head = data["head"]
            runs = tuple(
                (
                    None if first is None else int(first),
                    None if last is None else int(last),
                    str(code),
                )
                for first, last, code in data["findings"]
            )
            by = data["by"]
            return cls(
                seq=row.seq,
                record_id=row.receipt_id,
                time=int(data["timestamp"]),
                reason=str(data["reason"]),
                by=None if by is None else str(by),
                found=str(data["found"]),
                head=None if head is None else (int(head["seq"]), str(head["hash"])),
                after=int(data["after"]),
                missing=int(data["missing"]),
                head_lost=bool(data["head_lost"]),
                altered=int(data["altered"]),
                count=int(data["count"]),
                runs=runs,
                report=tuple(str(line) for line in data["report"]),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            return None

    def lines(self) -> list[str]:
        """How ``consent verify`` reports it."""
        by = f" by {self.by}" if self.by else ""
        out = [
            f"incident recorded at seq {self.seq} on {format_time(self.time)}{by}: {self.reason}"
        ]
        if self.found:
            out.append(f"  found: {self.found}")
        lost = (
            "; how many newest receipts went with the missing head cannot be told"
            if self.head_lost
            else ""
        )
        out.append(
            f"  affected: {self.affected} receipts ({self.missing} missing, {self.altered} "
            f"altered or moved){lost}"
        )
        if self.report:
            out.append(f"  covers {self.count} findings in the log before it:")
            out.extend(f"    {line}" for line in self.report)
            if self.count > len(self.report):
                out.append(f"    and {self.count - len(self.report)} more")
        if not self.covered:
            out.append("  the findings before it are no longer those it recorded (see above)")
        return out


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a verification.

    ``findings`` lists what is wrong (the first :data:`MAX_LISTED`; ``finding_count`` counts
    them all); ``first_bad``, ``seq``, ``receipt_id`` and ``reason`` are those of the first.
    ``count`` is the number of receipts read (chain records not included). ``incidents`` are
    the incident markers in the log, with the findings each covers; ``keyed_from`` the seq
    from which rows are linked with the key (None: a log of an earlier version, unkeyed), and
    ``switched`` whether that is where a signed switch record turned an earlier version's log
    to keyed links;
    ``notes`` what else there is to say (the head kept elsewhere, ``--expect-head``).
    """

    ok: bool
    count: int
    first_bad: str | None = None
    reason: str = ""
    seq: int | None = None
    receipt_id: str | None = None
    head: ChainHead | None = None
    checkpoint: Checkpoint | None = None  # where a purge left the log to start
    findings: tuple[Finding, ...] = ()
    finding_count: int = 0
    incidents: tuple[Incident, ...] = ()
    keyed_from: int | None = None
    switched: bool = False
    notes: tuple[str, ...] = ()

    def message(self) -> str:
        if self.ok:
            if self.incidents:
                n = len(self.incidents)
                return (
                    f"OK: {self.count} receipts verified; {n} recorded "
                    f"incident{'s' if n != 1 else ''} (below)"
                )
            return f"OK: {self.count} receipts verified"
        return self.findings[0].line() if self.findings else f"BROKEN: {self.reason}"


MAX_LISTED = 100
"""Findings listed one by one; the rest are counted."""

_MAX_RUNS = 10_000  # runs of findings kept to compare with an incident marker


class _Findings:
    """Findings not covered by an incident marker: the first :data:`MAX_LISTED` listed, all
    counted, and as runs (consecutive seqs, one kind) to compare with what a marker recorded."""

    def __init__(self) -> None:
        self.listed: list[Finding] = []
        self.count = 0
        self.runs: list[list[Any]] = []  # [first seq, last seq, code]
        self.overflow = False
        self.missing = 0
        self.altered = 0

    def add(self, finding: Finding) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(finding)
        seq, code = finding.seq, finding.code
        run = self.runs[-1] if self.runs else None
        if run is not None and seq is not None and run[1] == seq - 1 and run[2] == code:
            run[1] = seq
        elif len(self.runs) < _MAX_RUNS:
            self.runs.append([seq, seq, code])
        else:
            self.overflow = True
        if code == "gap":
            self.missing += finding.missing
        elif seq is not None:
            self.altered += 1

    def matches(self, incident: Incident, floor: int, *, whole: bool) -> bool:
        """Whether these findings are those ``incident`` recorded. Recorded runs purged since
        (up to seq ``floor``) are left out. ``whole``: the log was read whole (a store, a
        complete export); otherwise each finding need only lie in a recorded run."""
        if self.overflow:
            return False
        recorded = []
        for first, last, code in incident.runs:
            if last is not None and last <= floor:
                continue
            if first is not None and first <= floor:
                first = floor + 1
            recorded.append((first, last, code))
        found = [(first, last, code) for first, last, code in self.runs]
        if whole:
            return found == recorded
        return all(
            any(
                code == r_code
                and (first == r_first if first is None else (r_first or 0) <= first)
                and (last == r_last if last is None else last <= (r_last or 0))
                for r_first, r_last, r_code in recorded
            )
            for first, last, code in found
        )

    def covered(self) -> Covered:
        """What an incident marker recorded now would cover."""
        return Covered(
            runs=tuple((first, last, code) for first, last, code in self.runs),
            lines=tuple(f.line() for f in self.listed),
            count=self.count,
            missing=self.missing,
            altered=self.altered,
        )


def _stored(row: ReceiptRow) -> StoredReceipt | None:
    try:
        return row.to_stored()
    except ValueError:
        return None


class _Chain:
    """Follows rows in seq order: checks each one (signature, link, columns) and that it
    follows the one before, and collects every finding.

    ``start`` is the ``(seq, hash)`` the log starts after (the genesis or the purge
    checkpoint); None for an export that may hold only some rows (filtered, or without its
    chain head line), where gaps are expected. ``whole``: every row from ``start`` on is read.
    """

    def __init__(
        self, signer: ReceiptSigner, start: tuple[int, str] | None, *, file: bool = False
    ) -> None:
        self.signer = signer
        self.fast = _Fast(signer)
        self.start = start
        self.whole = start is not None
        self.file = file
        self.floor = start[0] if start is not None else 0
        self.last: tuple[int, str, str] | None = None  # seq, hash, receipt_id
        self.count = 0  # receipts read
        self.keyed: bool | None = None  # are rows linked with the key? (None: not known yet)
        self.keyed_from: int | None = None
        self.switched = False  # a switch record turned the log to keyed links
        self.pending = _Findings()
        self.incidents: list[Incident] = []
        self.watch: int | None = None  # a seq whose hash is wanted (--expect-head on a file)
        self.watched: str | None = None

    def note(self, finding: Finding) -> None:
        """A finding of the log's own (not of one row), or of a row not read as one."""
        self.pending.add(finding)

    def _previous(self) -> tuple[int, str] | None:
        return (self.last[0], self.last[1]) if self.last is not None else self.start

    def add(
        self,
        row: ReceiptRow,
        *,
        reported: Finding | None = None,
        fields: Callable[[], Finding | None] | None = None,
    ) -> None:
        """Check ``row`` and its place. ``reported``: a finding about it already made (by the
        reader of an export); ``fields``: a check of its exported fields, made when the row
        itself is sound. One finding per row, the first of: ``reported``, the row's own
        (signature, link, columns), ``fields``, its place."""
        finding = reported
        if finding is None and not (self.keyed is not None and self.fast.verified(row, self.keyed)):
            finding = self._examine(row)
        if finding is None and fields is not None:
            finding = fields()
        if row.seq == self.watch:
            self.watched = row.hash
        incident = None
        if finding is None and row.event == INCIDENT_EVENT:
            incident = Incident.from_row(row)
            if incident is None:
                finding = self._at(row, "body", "signed body is not a valid incident marker")
        if self.last is not None and row.seq <= self.last[0]:
            self.pending.add(
                finding
                or self._at(
                    row,
                    "order",
                    f"out of order: seq {row.seq} follows seq {self.last[0]} "
                    "(receipts reordered or duplicated)",
                )
            )
            return
        if finding is None:
            finding = self._place(row, incident)
        if finding is not None:
            self.pending.add(finding)
        elif incident is not None:
            self._incident(incident, row)
        self.last = (row.seq, row.hash, row.receipt_id)
        if row.event not in RECORD_EVENTS:
            self.count += 1

    @staticmethod
    def _at(row: ReceiptRow, code: str, reason: str, missing: int = 0) -> Finding:
        return Finding(reason, row.seq, row.receipt_id, code, missing)

    def _place(self, row: ReceiptRow, incident: Incident | None) -> Finding | None:
        """Whether ``row`` follows the row before it (or the start of the log)."""
        previous = self._previous()
        if previous is None:
            return None
        expected = previous[0] + 1
        if row.seq != expected:
            if (
                incident is not None
                and incident.head is not None
                and incident.head[0] == row.seq - 1
                and incident.after == previous[0]
                and row.prev_hash == previous[1]
            ):
                return None  # the newest receipts lost before the marker: it covers them
            if row.seq < expected:
                return self._at(row, "order", f"unexpected seq {row.seq}, expected {expected}")
            if not self.whole:
                return None  # an export of some rows only
            missing = row.seq - expected
            if self.last is None and self.file:
                reason = (
                    f"export starts at seq {row.seq}, the log starts at seq {expected} "
                    "(receipts deleted)"
                )
            else:
                reason = (
                    f"seq {span(expected, row.seq - 1)} missing before this receipt "
                    "(receipts deleted)"
                )
            return self._at(row, "gap", reason, missing)
        if row.prev_hash != previous[1]:
            if self.last is None:
                return self._at(
                    row,
                    "start",
                    "the first receipt does not link to the start of the log "
                    + ("(the genesis hash)" if previous[0] == 0 else "(the purge checkpoint)"),
                )
            return self._at(
                row,
                "prev",
                "prev_hash does not link to the previous receipt "
                "(receipts reordered, deleted or replaced)",
            )
        return None

    def _examine(self, row: ReceiptRow) -> Finding | None:
        """The row's own finding (signature, link, body and columns), or None; learns from
        it whether the log's rows are keyed."""
        signer = self.signer
        record = row.event in RECORD_EVENTS
        if record:
            problem = record_problem(row, signer)
            if problem is not None:
                return self._at(row, *problem)
        elif not signer.knows(row.kid):
            return self._at(
                row,
                "key",
                f"signed by an unknown key (kid {row.kid}); is a retired key missing from "
                "CONSENT_SECRET_KEY?",
            )
        elif not signer.verify(row.body, row.kid, row.signature):
            return self._at(
                row, "signature", "signature does not match the receipt body (receipt edited)"
            )
        kind = link_kind(signer, row)
        if kind is None:
            if self.keyed is False:
                return self._at(
                    row, "link", "hash does not match the receipt (chain fields edited)"
                )
            return self._at(
                row,
                "link",
                "hash does not match the row's seq, prev_hash and signature (renumbered, "
                "moved, or chain fields edited)",
            )
        if kind == "keyed":
            if row.event == KEYED_EVENT and not self.keyed:
                self.keyed, self.keyed_from, self.switched = True, row.seq, True
            elif self.keyed is None:
                self.keyed, self.keyed_from = True, row.seq
            elif self.keyed is False:
                self.keyed, self.keyed_from = True, row.seq
                return self._at(
                    row, "unswitched", "keyed link without the signed switch record before it"
                )
        elif record or self.keyed:
            return self._at(
                row,
                "unkeyed",
                f"unkeyed link in the keyed chain (keyed since seq {self.keyed_from}): "
                "re-linked without the key, or written by an earlier version",
            )
        else:
            self.keyed = False
        if record:
            return None
        stored = _stored(row)
        if stored is None:
            return self._at(row, "body", "signed body is not a valid receipt")
        receipt = stored.receipt
        for name, value in (
            ("receipt_id", receipt.receipt_id),
            ("subject_id", receipt.subject_id),
            ("timestamp", receipt.timestamp),
            ("event", receipt.event),
        ):
            if getattr(row, name) != value:
                return self._at(
                    row,
                    f"column:{name}",
                    f"{name} differs from the signed body (edited after signing)",
                )
        return None

    def _incident(self, incident: Incident, row: ReceiptRow) -> None:
        """An incident marker: the findings so far are covered if they are those it recorded."""
        if self.pending.matches(incident, self.floor, whole=self.whole):
            self.pending = _Findings()
            self.incidents.append(incident)
            return
        self.incidents.append(replace(incident, covered=False))
        self.pending.add(
            self._at(
                row,
                "incident",
                f"the findings before this incident marker are not those it recorded "
                f"({incident.count} recorded, {self.pending.count} found): rows changed since",
            )
        )

    def add_batch(self, batch: list[Values], row_from: Callable[[Values], ReceiptRow]) -> None:
        """:meth:`add` for each row of a store.

        A row that passes :meth:`_Fast.check` and directly follows the previous one (next seq,
        linked hash) is counted without more ado; any other row takes the full way, which
        finds whatever is wrong with it.
        """
        check = self.fast.check
        keyed = self.keyed
        previous = self._previous()
        last = None
        count = 0
        for values in batch:
            if (
                keyed is not None
                and previous is not None
                and values[0] == previous[0] + 1
                and values[8] == previous[1]
                and type(values[0]) is int
                and check(values, keyed)
            ):
                previous = (values[0], values[9])
                last = values
                count += 1
                continue
            # The full way, from where the quick one got to.
            if last is not None:
                self.last = (last[0], last[9], last[1])
                self.count += count
                last, count = None, 0
            self.add(row_from(values))
            keyed = self.keyed
            previous = self._previous()
        if last is not None:
            self.last = (last[0], last[9], last[1])
            self.count += count

    def join(self, summary: _Summary | None) -> bool:
        """Take the helper's summary of a chunk whose rows all passed :meth:`_Fast.check`
        and link one to the next (:func:`_check_chunk`); False when there is none or the
        chunk does not follow on from the rows so far (then check the chunk again here)."""
        if summary is None:
            return False
        count, first, last_seq, last_hash, last_id, keyed = summary
        if first is None:
            return True  # no rows in that range
        previous = self._previous()
        if (
            keyed != self.keyed
            or previous is None
            or first[0] != previous[0] + 1
            or first[8] != previous[1]
        ):
            return False
        self.last = (last_seq, last_hash, last_id)
        self.count += count
        return True

    def end(self) -> tuple[int, str]:
        if self.last is not None:
            return self.last[0], self.last[1]
        return self.start if self.start is not None else (0, GENESIS_HASH)


def _head_finding(head: ChainHead | None, chain: _Chain, signer: ReceiptSigner) -> Finding | None:
    """What is wrong with the end of the log against its signed head, or None."""
    end_seq, end_hash = chain.end()
    if head is None:
        if chain.last is not None or end_seq:
            return Finding("the signed chain head is missing", code="head")
        return None
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


def _result(
    chain: _Chain,
    head: ChainHead | None,
    checkpoint: Checkpoint | None,
    notes: list[str] | None = None,
) -> VerifyResult:
    found = chain.pending
    notes = notes or []
    ok = found.count == 0
    first = found.listed[0] if found.listed else None
    return VerifyResult(
        ok=ok,
        count=chain.count,
        first_bad=(first.receipt_id or (f"seq {first.seq}" if first.seq is not None else None))
        if first
        else None,
        reason=first.reason if first else "",
        seq=first.seq if first else None,
        receipt_id=first.receipt_id if first else None,
        head=head,
        checkpoint=checkpoint,
        findings=tuple(found.listed),
        finding_count=found.count,
        incidents=tuple(chain.incidents),
        keyed_from=chain.keyed_from if chain.keyed else None,
        switched=chain.switched,
        notes=tuple(notes),
    )


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
        chain, state, head = _walk_store(store, signer, workers)
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
    store: ReceiptStore, signer: ReceiptSigner, workers: int | None
) -> tuple[_Chain, ChainState, ChainHead | None]:
    """Read the log up to its signed head and check every row: the chain (with its
    findings), the signed state read first, and the head the end was checked against."""
    state = store.chain_state()
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
        batches, row_from = _batches(store, max_seq=max_seq)
        for batch in batches:
            chain.add_batch(batch, row_from)
    else:
        # Two processes: the helper checks its chunks (its share of seq ranges) the quick
        # way; this one checks the others, then takes each of the helper's in order, where
        # it links to the one before. A chunk the helper could not prove, or that does not
        # link, is checked here again, the usual way: the findings and their messages are
        # the same as in one process.
        helper = _Helper(store, signer, "verify", plan)
        try:
            for low, high, remote in plan:
                if remote and chain.join(helper.next()):
                    continue
                batches, row_from = _batches(store, max_seq=high, min_seq=low)
                for batch in batches:
                    chain.add_batch(batch, row_from)
        finally:
            helper.close()
    if head is not None:
        head = _tail(store, chain, head, signer)
    if store.chain_state().checkpoint != state.checkpoint:
        # A purge ran meanwhile: the rows read may come from before and after it.
        return _walk_store(store, signer, workers)
    return chain, state, head


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
        row = _row_from(data)
        if isinstance(row, str):
            chain.note(Finding(f"line {number}: {row}", code="file"))
            continue
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
        if value[:1] in _CSV_FORMULA and not (shape and shape[0].fullmatch(value)):
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
    return _result(chain, None, None, notes)


def _csv_expected(row: ReceiptRow) -> dict[str, str]:
    """The CSV fields export writes for a sound row."""
    stored = None if row.event in RECORD_EVENTS else _stored(row)
    if stored is not None:
        return _csv_fields(stored)
    raw = _raw_fields(row)
    return {column: _csv_cell(raw.get(column)) for column in CSV_COLUMNS}


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
            return _verify_jsonl(lines, signer, _trailer(path), expect_head)
        return _verify_csv(lines, signer, expect_head)


# --------------------------------------------------------------------------- incidents


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
        chain, state, _ = _walk_store(store, signer, workers)
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


# --------------------------------------------------------------------------- two processes
#
# On a large log, export and verify start a helper process (``python -c``: nothing is
# inherited but what it is sent) and give it some chunks of seq ranges. It opens the store
# from its URL and works through its chunks in order while this process does the others.
# Anything unexpected in the helper (an error, a crash) leaves its chunks to this process:
# the outcome never depends on it.
#
# verify: the helper checks its chunks the quick way and sends a summary of each (one JSON
# line); this process checks the others, then takes each of the helper's in order where it
# links on. export: the helper reports the size of each of its chunks, this process answers
# with the file offset to write it at (it knows where every earlier chunk ends), and the
# helper writes it there itself (os.pwrite on the same file), so no export data goes
# through a pipe.

_PARALLEL_MIN_ROWS = 200_000  # below this, starting a process costs more than it saves
_CHUNK_ROWS = 4096  # seqs per chunk (about 12 MB of export)
_AHEAD = 4  # chunk results the helper may send before this process takes them

# (min_seq, max_seq, done by the helper); None: no limit on that side.
_Plan = list[tuple[int | None, int | None, bool]]
# A chunk checked by the helper: (rows, first row's values, last seq, last hash, last id,
# whether its rows are linked with the key).
_Summary = tuple[int, "Values | None", int, str, str, bool]


def _plan(store: ReceiptStore, state: Any, workers: int | None, *, every: int) -> _Plan | None:
    """The chunks of seq ranges up to the head (the helper takes all but one of every
    ``every``), or None to do everything in this process. The first chunk has no lower limit
    (rows before the start of the log are read too)."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 2)
    head = state.head
    if workers < 2 or head is None or not getattr(store, "shared_reads", False):
        return None
    low = state.start()[0] + 1
    if head.seq - low + 1 < _PARALLEL_MIN_ROWS:
        return None
    plan: _Plan = [(None, low + _CHUNK_ROWS - 1, False)]
    first = low + _CHUNK_ROWS
    while first <= head.seq:
        last = min(first + _CHUNK_ROWS - 1, head.seq)
        plan.append((first, last, len(plan) % every != 0))
        first = last + 1
    return plan


def _check_chunk(store: ReceiptStore, fast: _Fast, low: int, high: int) -> _Summary | None:
    """The helper's check of one chunk: its summary when every row passes
    :meth:`_Fast.check` with the same kind of link and links to the one before it, else
    None."""
    batches, _ = _batches(store, max_seq=high, min_seq=low)
    check = fast.check
    first: Values | None = None
    keyed = True
    last_seq, last_hash, last_id = 0, "", ""
    count = 0
    for batch in batches:
        for values in batch:
            seq = values[0]
            if type(seq) is not int:
                return None
            if first is None:
                if not check(values, True):
                    if not check(values, False):
                        return None
                    keyed = False
                first = values
            elif seq != last_seq + 1 or values[8] != last_hash or not check(values, keyed):
                return None
            last_seq, last_hash, last_id = seq, values[9], values[1]
            count += 1
    return count, first, last_seq, last_hash, last_id, keyed


def _chunk_bytes(
    store: ReceiptStore,
    fast: _Fast,
    since: int | None,
    until: int | None,
    event: str | None,
    low: int | None,
    high: int | None,
) -> tuple[int, list[bytes]]:
    """The export of one chunk: its number of lines and its blocks of UTF-8 text."""
    count, blocks = 0, []
    for n, block in _export_blocks(store, fast, since, until, event, low, high):
        count += n
        blocks.append(block.encode("utf-8"))
    return count, blocks


def _pwrite(fd: int, blocks: list[bytes], offset: int) -> None:
    for block in blocks:
        view = memoryview(block)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written


def _helper_main() -> None:
    """The helper process: reads its task as one JSON line on stdin, then works through its
    chunks, reporting on stdout (one line each, see the section comment); ``E <message>``
    ends it after an error."""
    out = sys.stdout.buffer
    stdin = sys.stdin.buffer

    def say(line: str) -> None:
        out.write(line.encode() + b"\n")
        out.flush()

    try:
        task = json.loads(stdin.readline())
        keys = task["keys"]
        signer = ReceiptSigner(keys) if keys else None
        store = open_store(task["url"], signer)
        fast = _Fast(signer)
        if task["task"] == "verify":
            for low, high in task["chunks"]:
                say(json.dumps(_check_chunk(store, fast, low, high)))
            return
        fd = task["fd"]
        since, until, event = task["since"], task["until"], task["event"]
        pending: tuple[int, list[bytes]] | None = None
        # One chunk ahead: the next one is made while this process places the last.
        for index, (low, high) in enumerate([*task["chunks"], (None, None)]):
            if low is not None:
                count, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
                say(f"S {count} {sum(map(len, blocks))}")
            if pending is not None:
                offset = stdin.readline()
                if not offset:
                    return  # this process stopped
                _pwrite(fd, pending[1], int(offset))
                say(f"W {pending[0]}")
            pending = (index, blocks) if low is not None else None
        say("D")
    except Exception as exc:
        with contextlib.suppress(Exception):  # else the other side is gone
            say(f"E {type(exc).__name__}: {exc}")


class _Helper:
    """The helper process, and a thread reading what it reports into a short queue."""

    def __init__(
        self,
        store: ReceiptStore,
        signer: ReceiptSigner | None,
        task: str,
        plan: _Plan,
        since: int | None = None,
        until: int | None = None,
        event: str | None = None,
        fd: int | None = None,
    ) -> None:
        chunks = [(low, high) for low, high, remote in plan if remote]
        self.written: set[int] = set()  # export: chunks the helper wrote
        self.done = False  # the helper finished all its chunks
        self._results: queue.Queue[Any] = queue.Queue(maxsize=_AHEAD)
        self._stop = threading.Event()
        self._failed = True  # until it has started
        self._thread: threading.Thread | None = None
        # This very package, wherever it was imported from.
        where = str(Path(__file__).resolve().parent.parent)
        code = f"import sys; sys.path.insert(0, {where!r}); import consent.audit as a; a._helper_main()"
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=() if fd is None else (fd,),
            )
        except OSError:  # no helper: every chunk is done here
            self._process = None
            return
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        # The keys go through the pipe: not on a command line, not in the environment.
        keys = list(signer._keys.values()) if signer is not None else None
        request: dict[str, Any] = {"task": task, "url": store.url, "keys": keys, "fd": fd}
        request.update(chunks=chunks, since=since, until=until, event=event)
        if self._send(json.dumps(request)):  # else it died at once
            self._failed = False
            self._thread = threading.Thread(target=self._read, args=(task,), daemon=True)
            self._thread.start()

    def _send(self, line: str) -> bool:
        try:
            self._stdin.write(line.encode() + b"\n")
            self._stdin.flush()
        except OSError:
            return False
        return True

    def _read(self, task: str) -> None:
        try:
            for line in self._stdout:
                if task == "verify":
                    if not self._put(json.loads(line)):
                        return
                    continue
                kind, _, rest = line.decode().rstrip("\n").partition(" ")
                if kind == "S":
                    rows, size = map(int, rest.split())
                    if not self._put((rows, size)):
                        return
                elif kind == "W":
                    self.written.add(int(rest))
                elif kind == "D":
                    self.done = True
                    return
                else:
                    break  # an error
        except (OSError, ValueError):
            pass
        self._put(_FAILED)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> Any:
        """What the helper reports for its next chunk, or None: then do that chunk here
        (and, after a failure, every later one)."""
        if self._failed:
            return None
        item = self._results.get()
        if item is _FAILED:
            self._failed = True
            return None
        return item

    def place(self, offset: int) -> None:
        """export: where the helper is to write the chunk it reported last."""
        self._send(str(offset))

    def finish(self) -> None:
        """Wait until the helper has finished (or failed)."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._stdin.close()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self._stop.set()
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            self._stdin.close()
        self._stdout.close()


_FAILED = object()


def _file_target(out: TextIO) -> tuple[int, int] | None:
    """``(fd, offset)`` when ``out`` is a UTF-8 text file that ends where it would be
    written next (so the export can be written at offsets, by two processes), else None."""
    if os.name != "posix":  # (no line-end translation; the fd can be passed to the helper)
        return None
    import fcntl

    try:
        if codecs.lookup(out.encoding).name != "utf-8" or not out.seekable():
            return None
        fd = out.fileno()
        out.flush()
        info = os.fstat(fd)
        offset = out.tell()
        appending = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
    except (AttributeError, OSError, LookupError, TypeError, ValueError):
        return None
    if appending:  # pwrite would append, whatever the offset
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size != offset:
        return None
    return fd, offset


def _export_parallel(
    store: ReceiptStore,
    out: TextIO,
    fast: _Fast,
    signer: ReceiptSigner | None,
    plan: _Plan,
    since: int | None,
    until: int | None,
    event: str | None,
    target: tuple[int, int],
) -> int:
    """Export with a helper, writing at offsets of the file ``target`` (fd, where to start)."""
    fd, offset = target
    count = 0
    placed: list[tuple[int, int, int, int]] = []  # helper's chunk, offset, low, high
    helper = _Helper(store, signer, "export", plan, since, until, event, fd)
    try:
        index = 0
        for low, high, remote in plan:
            if remote:
                item = helper.next()
                if item is not None:
                    rows, size = item
                    assert low is not None
                    assert high is not None
                    helper.place(offset)
                    placed.append((index, offset, low, high))
                    index += 1
                    offset += size
                    count += rows
                    continue
                index += 1
            rows, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
            _pwrite(fd, blocks, offset)
            offset += sum(map(len, blocks))
            count += rows
        helper.finish()
    finally:
        helper.close()  # (ended, or stopped here: it writes nothing more)
    for chunk, at, low, high in placed:
        if chunk not in helper.written:  # the helper stopped before writing it
            _, blocks = _chunk_bytes(store, fast, since, until, event, low, high)
            _pwrite(fd, blocks, at)
    out.seek(0, os.SEEK_END)
    return count


def purge(store: ReceiptStore, before: int | str) -> int:
    """Delete receipts recorded before ``before`` (see ``ReceiptStore.purge``)."""
    cut = _as_time(before)
    assert cut is not None
    return store.purge(cut)


# --------------------------------------------------------------------------- command line


def _signer(required: bool) -> ReceiptSigner | None:
    try:
        return ReceiptSigner.from_env()
    except ValueError:
        if required:
            raise
        return None


def _fail(message: str) -> int:
    print(f"consent: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_export(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        signer = _signer(required=False)
        store = open_store(args.store, signer)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = export(store, out, args.format, since, until, args.event, signer=signer)
            print(f"Exported {n} receipts to {args.output}", file=sys.stderr)
        else:
            export(store, sys.stdout, args.format, since, until, args.event, signer=signer)
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`consent export ... | head`): stop quietly, with the status a
        # program ended by SIGPIPE has (as the command line's other commands do).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except StoreUnavailable as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        signer = _signer(required=True)
        assert signer is not None
        expect = parse_head(args.expect_head) if args.expect_head else None
        if args.file:
            result = verify_file(args.file, signer, expect_head=expect)
        else:
            result = verify_store(open_store(args.store, signer), signer, expect_head=expect)
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc}")
    if result.ok:
        print(result.message())
    else:
        for finding in result.findings:
            print(finding.line())
        more = result.finding_count - len(result.findings)
        if more:
            print(f"and {more} more findings")
        n = result.finding_count
        print(f"BROKEN: {n} finding{'s' if n != 1 else ''}; {result.count} receipts read")
    for incident in result.incidents:
        print("\n".join(incident.lines()))
    if result.ok and result.head is not None:
        print(f"head: seq {result.head.seq} hash {result.head.hash}")
    elif result.ok and args.file:
        print(
            "no chain head: the receipts are genuine and linked, but the file does not show "
            "that it holds the whole log (a filtered export, or one cut short)"
        )
    if result.ok and result.checkpoint is not None:
        cp = result.checkpoint
        print(
            f"purged: {cp.count} receipts recorded before {format_time(cp.before)}, up to seq "
            f"{cp.seq} (signed checkpoint of {format_time(cp.time)}); the log starts after it"
        )
    if result.ok and result.count and result.keyed_from is None:
        print(
            "links: unkeyed, as earlier versions wrote them (the next decision recorded "
            "switches the log to keyed links)"
        )
    elif result.ok and result.switched:
        print(f"links: keyed from seq {result.keyed_from} on (signed switch record)")
    for note in result.notes:
        print(note)
    return EXIT_OK if result.ok else EXIT_FINDING


def cmd_incident(args: argparse.Namespace) -> int:
    try:
        signer = _signer(required=True)
        assert signer is not None
        store = open_store(args.store, signer)
        reason = args.reason.strip()
        if not reason:
            raise ValueError("--reason must say what happened")
        incident = record_incident(store, signer, reason=reason, by=args.by or None)
    except NothingToRecord:
        return _fail("nothing to record: the log verifies and its chain head is sound")
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    print(f"Incident recorded at seq {incident.seq}; recording continues after it.")
    print("\n".join(incident.lines()))
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    try:
        signer = _signer(required=True)
        before = parse_time(args.before)
        store = open_store(args.store, signer)
    except ValueError as exc:
        return _fail(str(exc))
    assert signer is not None
    if before > time.time():
        return _fail(f"--before {args.before} is in the future; a retention cut-off is a past date")
    try:
        result = verify_store(store, signer)
        if not result.ok:
            print(f"refusing to purge a broken log: {result.message()}")
            return EXIT_FINDING
        n = store.purge(before)
        checkpoint = store.chain_state().checkpoint
    except StoreUnavailable as exc:
        return _fail(str(exc))
    where = f"; the log now starts after seq {checkpoint.seq}" if checkpoint else ""
    print(f"Purged {n} receipts recorded before {format_time(before)}{where}")
    for incident in result.incidents:
        if checkpoint is not None and incident.seq <= checkpoint.seq:
            print(
                f"The incident marker at seq {incident.seq} (recorded "
                f"{format_time(incident.time)}: {incident.reason}) was purged with them."
            )
    return EXIT_OK


def cmd_create_store(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.store)
    except ValueError as exc:
        return _fail(str(exc))

    async def prepare() -> bool:
        try:
            return await store.open()  # logs why, when it cannot
        finally:
            await store.close()

    if not asyncio.run(prepare()):
        return _fail(f"the receipt store {redact_url(args.store)} could not be prepared")
    print(f"Receipt store ready: {redact_url(args.store)}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``export``, ``verify``, ``incident``, ``purge`` and ``create-store`` to the
    ``consent`` command."""
    times = (
        "Times are YYYY-MM-DD (midnight UTC) or RFC 3339 (2026-11-25T12:00:00Z). "
        "Keys come from CONSENT_SECRET_KEY (comma-separated; all verify)."
    )
    p = subparsers.add_parser(
        "export",
        help="write the consent-receipt log as JSON Lines or CSV",
        description=(
            "Stream the receipt log, oldest first. Every row carries its signature, chain "
            "hashes and signed body, so the export can be verified on its own. " + times
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--since", metavar="TIME", help="receipts at or after TIME")
    p.add_argument("--until", metavar="TIME", help="receipts before TIME")
    p.add_argument("--event", choices=EVENTS, help="only this kind of decision")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "verify",
        help="prove the consent-receipt log intact",
        description=(
            "Check every receipt's signature, keyed link and place, and the signed chain "
            "head. Exit 0 and print 'OK: N receipts verified' and the head (keep it "
            "elsewhere), or exit 1 and list every finding. Incident markers are reported "
            "with what they cover. " + times
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", metavar="URL", help="verify the log in this store")
    source.add_argument("--file", metavar="EXPORT", help="verify an export (.jsonl or .csv)")
    p.add_argument(
        "--expect-head",
        metavar="HEAD",
        help=(
            "a head kept from an earlier run (SEQ:HASH, the 'head: seq N hash H' line, or a "
            "file holding it): the log must still pass through it (finds a rollback)"
        ),
    )
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "incident",
        help="record a signed incident marker, so that recording resumes after damage",
        description=(
            "After the log was found damaged (decisions answered 503: the chain head is "
            "missing or does not match the newest receipt) and you have investigated: verify "
            "the log, then append a signed marker saying what was found, how many receipts are "
            "affected, why (--reason) and by whom (--by). Recording continues after it, and "
            "consent verify reports it and what it covers from then on. Needs "
            "CONSENT_SECRET_KEY. Exits 2 when there is nothing to record."
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.add_argument("--reason", required=True, metavar="TEXT", help="what happened, in words")
    p.add_argument("--by", metavar="NAME", help="who records it")
    p.set_defaults(func=cmd_incident)

    p = subparsers.add_parser(
        "purge",
        help="delete receipts older than a retention cut-off",
        description=(
            "Verify the log, then delete the receipts recorded before TIME and write a signed "
            "checkpoint so the remaining log still verifies. " + times
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.add_argument("--before", required=True, metavar="TIME", help="retention cut-off")
    p.set_defaults(func=cmd_purge)

    p = subparsers.add_parser(
        "create-store",
        help="create the receipt store's tables (once, with an owner role)",
        description=(
            "Create the tables of the receipt store at URL if they do not exist, as the site "
            "does when it first connects. Run it once with a role that may create them; the "
            "site's own role then needs only the grants in docs/operations.md (Privileges)."
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.set_defaults(func=cmd_create_store)

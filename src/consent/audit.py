"""Export, verify and purge the consent-receipt log (``consent export|verify|purge``).

Verification recomputes everything a stored receipt claims: the signature over its body, its
chain hash, its link to the previous receipt, that its indexed columns match the signed body,
and, for a store, that the log ends where the signed chain head says it ends and starts where
the signed purge checkpoint says it starts. It reports the first receipt at fault.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import codecs
import contextlib
import csv
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
from dataclasses import dataclass
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
    chain_hash,
    format_time,
)
from .store import ReceiptStore, StoreDamaged, StoreUnavailable, open_store
from .store.base import ReceiptRow, redact_url, row_values, values_in_batches

__all__ = [
    "CSV_COLUMNS",
    "EVENTS",
    "VerifyResult",
    "export",
    "parse_time",
    "purge",
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

    def check(self, values: Values) -> bool:
        """Signature, chain hash and columns of a sealed row, checked without parsing.

        In a canonical body every top-level key occurs once, none of them occurs inside the
        nested objects, and a quote inside a string is escaped, so ``"event":"given"`` occurs
        in the text exactly when the body's event is ``given``. False means: take the full way.
        """
        _, receipt_id, subject_id, ts, event, body, kid, signature, prev_hash, hash_ = values
        if not self._signed(body, kid, signature):
            return False
        if type(prev_hash) is not str or type(hash_) is not str:
            return False
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

    def verified(self, row: ReceiptRow) -> bool:
        """:meth:`check` for a :class:`ReceiptRow`."""
        return self.check(row_values(row))

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

    Applied to the receipt fields, some of which come from the visitor (user agent, page);
    the chain fields and the signed body are written verbatim.
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
            try:
                fields = _csv_fields(row.to_stored())
            except ValueError:
                raw = _raw_fields(row)
                fields = {column: _csv_cell(raw.get(column)) for column in CSV_COLUMNS}
            writer.writerow(
                [
                    fields[column] if column in _CHAIN_FIELDS else _csv_safe(fields[column])
                    for column in CSV_COLUMNS
                ]
            )
            count += 1
        return count
    fast = _Fast(signer)
    write = out.write
    plan = _plan(store, state, workers, every=2, tail=False)
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
    """The JSON Lines export of any row (with its line feed)."""
    line = fast.line(row)
    if line is None:
        try:
            data = row.to_stored().to_dict()
        except ValueError:
            data = _raw_fields(row)
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    return line


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a verification. ``first_bad`` names the first receipt at fault (its id,
    else ``"seq N"``), ``seq`` its position; ``reason`` says what is wrong."""

    ok: bool
    count: int
    first_bad: str | None = None
    reason: str = ""
    seq: int | None = None
    receipt_id: str | None = None
    head: ChainHead | None = None
    checkpoint: Checkpoint | None = None  # where a purge left the log to start

    def message(self) -> str:
        if self.ok:
            return f"OK: {self.count} receipts verified"
        if self.receipt_id is not None:
            return f"BROKEN at receipt {self.receipt_id} (seq {self.seq}): {self.reason}"
        if self.seq is not None:
            return f"BROKEN at seq {self.seq}: {self.reason}"
        return f"BROKEN: {self.reason}"


class _Broken(Exception):
    def __init__(self, reason: str, seq: int | None = None, receipt_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.seq = seq
        self.receipt_id = receipt_id


def _check_row(row: ReceiptRow, signer: ReceiptSigner) -> StoredReceipt:
    """Signature, hash and body-vs-columns of one row; raises _Broken."""

    def broken(reason: str) -> _Broken:
        return _Broken(reason, row.seq, row.receipt_id)

    if not signer.knows(row.kid):
        raise broken(
            f"signed by an unknown key (kid {row.kid}); is a retired key missing from "
            "CONSENT_SECRET_KEY?"
        )
    if not signer.verify(row.body, row.kid, row.signature):
        raise broken("signature does not match the receipt body (receipt edited)")
    if chain_hash(row.prev_hash, row.body, row.kid, row.signature) != row.hash:
        raise broken("hash does not match the receipt (chain fields edited)")
    try:
        stored = row.to_stored()
    except ValueError:
        raise broken("signed body is not a valid receipt") from None
    receipt = stored.receipt
    for name, value in (
        ("receipt_id", receipt.receipt_id),
        ("subject_id", receipt.subject_id),
        ("timestamp", receipt.timestamp),
        ("event", receipt.event),
    ):
        if getattr(row, name) != value:
            raise broken(f"{name} differs from the signed body (edited after signing)")
    return stored


def _stored(row: ReceiptRow) -> StoredReceipt:
    """The parsed receipt of a row that passed the checks."""
    try:
        return row.to_stored()
    except ValueError:
        raise _Broken("signed body is not a valid receipt", row.seq, row.receipt_id) from None


class _Chain:
    """Follows rows in order and checks each one links to the one before."""

    def __init__(self, signer: ReceiptSigner, start: tuple[int, str] | None) -> None:
        self.signer = signer
        self.fast = _Fast(signer)
        # (seq, hash) the next row must follow; None = unknown (partial export).
        self.start = start
        self.last: tuple[int, str, str] | None = None  # seq, hash, receipt_id
        self.count = 0
        self.first_gap: _Broken | None = None
        self.first_row: ReceiptRow | None = None

    def add(self, row: ReceiptRow, *, strict: bool) -> StoredReceipt | None:
        """Check ``row`` and its link; the parsed receipt, or None when the row was verified
        on its body text (:class:`_Fast`)."""
        stored = None if self.fast.verified(row) else _check_row(row, self.signer)
        previous = (self.last[0], self.last[1]) if self.last else self.start
        if self.last is not None and row.seq <= self.last[0]:
            raise _Broken(
                f"out of order: seq {row.seq} follows seq {self.last[0]} "
                "(receipts reordered or duplicated)",
                row.seq,
                row.receipt_id,
            )
        if previous is not None and row.seq != previous[0] + 1:
            gap = _Broken(
                f"seq {previous[0] + 1}"
                + (f"..{row.seq - 1}" if row.seq - 1 > previous[0] + 1 else "")
                + " missing before this receipt (receipts deleted)"
                if row.seq > previous[0] + 1
                else f"unexpected seq {row.seq}, expected {previous[0] + 1}",
                row.seq,
                row.receipt_id,
            )
            if strict:
                raise gap
            if self.first_gap is None:
                self.first_gap = gap
        elif previous is not None and row.prev_hash != previous[1]:
            raise _Broken(
                "prev_hash does not link to the previous receipt "
                "(receipts reordered, deleted or replaced)",
                row.seq,
                row.receipt_id,
            )
        elif previous is None and row.seq == 1 and row.prev_hash != GENESIS_HASH:
            raise _Broken(
                "the first receipt does not link to the genesis hash", row.seq, row.receipt_id
            )
        if self.first_row is None:
            self.first_row = row
        self.last = (row.seq, row.hash, row.receipt_id)
        self.count += 1
        return stored

    def add_batch(
        self,
        batch: list[Values],
        row_from: Callable[[Values], ReceiptRow],
        head: ChainHead | None,
    ) -> None:
        """:meth:`add` (strict) for each row of a store, after checking it does not follow
        the signed ``head``.

        A row that passes :meth:`_Fast.check` and directly follows the previous one (next seq,
        linked hash) is counted without more ado; any other row takes the full way, which
        finds whatever is wrong with it.
        """
        check = self.fast.check
        head_seq = head.seq if head is not None else None
        previous = (self.last[0], self.last[1]) if self.last else self.start
        last = None
        count = 0
        for values in batch:
            if (
                previous is not None
                and values[0] == previous[0] + 1
                and values[8] == previous[1]
                and (head_seq is None or values[0] <= head_seq)
                and type(values[0]) is int
                and check(values)
            ):
                previous = (values[0], values[9])
                last = values
                count += 1
                if self.first_row is None:
                    self.first_row = row_from(values)
                continue
            # The full way, from where the quick one got to.
            if last is not None:
                self.last = (last[0], last[9], last[1])
                self.count += count
                last, count = None, 0
            row = row_from(values)
            if head is not None and row.seq > head.seq:
                raise _Broken(
                    f"receipt after the signed chain head (seq {head.seq})",
                    row.seq,
                    row.receipt_id,
                )
            self.add(row, strict=True)
            previous = (self.last[0], self.last[1]) if self.last else self.start
        if last is not None:
            self.last = (last[0], last[9], last[1])
            self.count += count

    def join(self, summary: _Summary | None, store: ReceiptStore) -> bool:
        """Take the helper's summary of a chunk whose rows all passed :meth:`_Fast.check`
        and link one to the next (:func:`_check_chunk`); False when there is none or the
        chunk does not follow on from the rows so far (then check the chunk again here)."""
        if summary is None:
            return False
        count, first, last_seq, last_hash, last_id = summary
        if first is None:
            return True  # no rows in that range
        first = tuple(first)  # (a list, through JSON)
        previous = (self.last[0], self.last[1]) if self.last else self.start
        if previous is None or first[0] != previous[0] + 1 or first[8] != previous[1]:
            return False
        if self.first_row is None:
            self.first_row = _batches(store)[1](first)
        self.last = (last_seq, last_hash, last_id)
        self.count += count
        return True

    def end(self) -> tuple[int, str]:
        if self.last is not None:
            return self.last[0], self.last[1]
        return self.start if self.start is not None else (0, GENESIS_HASH)


def _check_head(head: ChainHead | None, chain: _Chain, signer: ReceiptSigner) -> None:
    end_seq, end_hash = chain.end()
    if head is None:
        if chain.count or end_seq:
            raise _Broken("the signed chain head is missing")
        return
    if not head.verify(signer):
        raise _Broken("the chain head signature does not verify (head edited)")
    if head.seq > end_seq:
        raise _Broken(
            f"log truncated: the signed chain head records seq {head.seq} "
            f"but the log ends at seq {end_seq} (latest receipts deleted)",
            end_seq + 1,
        )
    if head.seq < end_seq:
        raise _Broken(
            f"receipts after the signed chain head (seq {head.seq})",
            head.seq + 1,
        )
    if head.hash != end_hash:
        last_id = chain.last[2] if chain.last else None
        raise _Broken("hash differs from the signed chain head", end_seq, last_id)


def _result(exc: _Broken, count: int) -> VerifyResult:
    first = exc.receipt_id or (f"seq {exc.seq}" if exc.seq is not None else None)
    return VerifyResult(
        ok=False,
        count=count,
        first_bad=first,
        reason=exc.reason,
        seq=exc.seq,
        receipt_id=exc.receipt_id,
    )


def verify_store(
    store: ReceiptStore, signer: ReceiptSigner, *, workers: int | None = None
) -> VerifyResult:
    """Verify the whole log held by ``store`` (raises StoreUnavailable when unreachable; a
    store missing a part it was created with is a finding).

    ``workers``: how many processes may share the work on a large log (None: one per CPU,
    at most two; the result is the same).
    """
    try:
        return _verify_store(store, signer, workers)
    except StoreDamaged as exc:
        return VerifyResult(ok=False, count=0, reason=str(exc))


def _verify_store(store: ReceiptStore, signer: ReceiptSigner, workers: int | None) -> VerifyResult:
    state = store.chain_state()
    chain = _Chain(signer, state.start())
    plan: _Plan | None = None
    try:
        if state.checkpoint is not None and not state.checkpoint.verify(signer):
            raise _Broken("the purge checkpoint signature does not verify (checkpoint edited)")
        head = state.head
        plan = _plan(store, state, workers, every=2, tail=True)
        if plan is None:
            batches, row_from = _batches(store)
            for batch in batches:
                chain.add_batch(batch, row_from, head)
        else:
            # Two processes: the helper checks its chunks (its share of seq ranges) the quick
            # way; this one checks the others, then takes each of the helper's in order,
            # where it links to the one before. A chunk the helper could not prove, or that
            # does not link, is checked here again, the usual way: the first finding and its
            # message are the same as in one process.
            helper = _Helper(store, signer, "verify", plan)
            try:
                for low, high, remote in plan:
                    if remote and chain.join(helper.next(), store):
                        continue
                    batches, row_from = _batches(store, max_seq=high, min_seq=low)
                    for batch in batches:
                        chain.add_batch(batch, row_from, head)
            finally:
                helper.close()
        _check_head(head, chain, signer)
    except _Broken as exc:
        if plan is not None and store.chain_state().checkpoint != state.checkpoint:
            # A purge ran meanwhile; the two processes may have read different logs.
            return verify_store(store, signer, workers=1)
        return _result(exc, chain.count)
    return VerifyResult(
        ok=True, count=chain.count, reason="", head=state.head, checkpoint=state.checkpoint
    )


def _json_rows(
    lines: Iterator[tuple[int, str]],
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise _Broken(f"line {number}: not valid JSON") from None
        if not isinstance(data, dict):
            raise _Broken(f"line {number}: not a JSON object")
        yield number, line, data


def _row_from(number: int, data: Mapping[str, Any]) -> ReceiptRow:
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
        raise _Broken(f"line {number}: field {exc.args[0]} missing") from None
    except (TypeError, ValueError):
        raise _Broken(f"line {number}: seq and timestamp must be integers") from None


def _compare(given: Mapping[str, Any], expected: Mapping[str, Any], row: ReceiptRow) -> None:
    """Every field of an exported row is the signed body's, and none is missing or added."""
    if given.keys() - _CHAIN_FIELDS != expected.keys() - _CHAIN_FIELDS:
        odd = sorted((given.keys() ^ expected.keys()) - set(_CHAIN_FIELDS))
        raise _Broken(
            f"fields {', '.join(odd)} added or removed after export", row.seq, row.receipt_id
        )
    for name, value in given.items():
        if name in _CHAIN_FIELDS:
            continue
        if expected[name] != value:
            raise _Broken(
                f"{name} differs from the signed body (edited after signing)",
                row.seq,
                row.receipt_id,
            )


def _head_from(data: Mapping[str, Any]) -> tuple[ChainHead | None, Checkpoint | None]:
    try:
        head_data = data.get("chain_head")
        cp_data = data.get("checkpoint")
        head = ChainHead(**head_data) if head_data else None
        checkpoint = Checkpoint(**cp_data) if cp_data else None
    except TypeError:
        raise _Broken("the chain head line is malformed") from None
    return head, checkpoint


def _verify_jsonl(lines: Iterator[tuple[int, str]], signer: ReceiptSigner) -> VerifyResult:
    chain = _Chain(signer, None)
    trailer: tuple[ChainHead | None, Checkpoint | None] | None = None
    try:
        fast = chain.fast
        for number, line, data in _json_rows(lines):
            if trailer is not None:
                raise _Broken(f"line {number}: receipts after the chain head line")
            if "chain_head" in data:
                trailer = _head_from(data)
                continue
            row = _row_from(number, data)
            stored = chain.add(row, strict=False)
            if stored is not None:
                _compare(data, stored.to_dict(), row)
            elif line != fast.text(row):
                # Not the line export writes for this row: compare field by field with the
                # (authentic, canonical) body.
                expected = fast.fields(row)
                _compare(data, expected if expected is not None else _stored(row).to_dict(), row)
        if trailer is not None:
            head, checkpoint = trailer
            if checkpoint is not None and not checkpoint.verify(signer):
                raise _Broken("the purge checkpoint signature does not verify")
            start_seq, start_hash = (
                (checkpoint.seq, checkpoint.hash) if checkpoint else (0, GENESIS_HASH)
            )
            first = chain.first_row
            if first is not None and first.seq != start_seq + 1:
                raise _Broken(
                    f"export starts at seq {first.seq}, the log starts at seq {start_seq + 1} "
                    "(receipts deleted)",
                    first.seq,
                    first.receipt_id,
                )
            if first is not None and first.prev_hash != start_hash:
                raise _Broken(
                    "the first receipt does not link to the start of the log",
                    first.seq,
                    first.receipt_id,
                )
            if chain.first_gap is not None:
                raise chain.first_gap
            if first is None:
                chain.start = (start_seq, start_hash)
            _check_head(head, chain, signer)
    except _Broken as exc:
        return _result(exc, chain.count)
    head, checkpoint = trailer if trailer else (None, None)
    return VerifyResult(ok=True, count=chain.count, head=head, checkpoint=checkpoint)


def _verify_csv(lines: Iterator[tuple[int, str]], signer: ReceiptSigner) -> VerifyResult:
    chain = _Chain(signer, None)
    reader = csv.DictReader(line for _, line in lines)
    try:
        missing = [c for c in _CHAIN_FIELDS if c not in (reader.fieldnames or ())]
        if missing:
            raise _Broken(f"CSV export lacks the columns {', '.join(missing)}")
        for index, record in enumerate(reader, start=2):
            for k, v in record.items():
                if k not in _CHAIN_FIELDS and v and v[0] in _CSV_FORMULA:
                    # The export prefixes such a cell with "'": this one was edited since, and
                    # a spreadsheet would run it as a formula.
                    raise _Broken(
                        f"CSV row {index}: {k} is a formula without its protecting quote "
                        "(edited after export)"
                    )
            data = {
                k: (v or "") if k in _CHAIN_FIELDS else _csv_unsafe(v or "")
                for k, v in record.items()
                if k is not None
            }
            row = _row_from(index, data)
            stored = chain.add(row, strict=False) or _stored(row)
            _compare(data, _csv_fields(stored), row)
    except _Broken as exc:
        return _result(exc, chain.count)
    return VerifyResult(ok=True, count=chain.count)


def verify_file(path: str | Path, signer: ReceiptSigner) -> VerifyResult:
    """Verify an export (JSON Lines, or CSV).

    Every receipt's signature, hash and fields are checked, and each receipt that directly
    follows another (consecutive seq) must link to it. A complete JSON Lines export, which ends
    with the signed chain head, must also hold every receipt from the start of the log to the
    head; a filtered export may skip receipts.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.read(1)
        handle.seek(0)
        lines = enumerate(handle, start=1)
        if first in ("{", "\n", ""):
            return _verify_jsonl(lines, signer)
        return _verify_csv(lines, signer)


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
# A chunk checked by the helper: (rows, first row's values, last seq, last hash, last id).
_Summary = tuple[int, "Values | None", int, str, str]


def _plan(
    store: ReceiptStore, state: Any, workers: int | None, *, every: int, tail: bool
) -> _Plan | None:
    """The chunks of seq ranges (the helper takes all but one of every ``every``), or None
    to do everything in this process. The first chunk has no lower limit (rows before the
    start of the log are read too) and, with ``tail``, a last one takes whatever follows
    the head."""
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
    if tail:
        plan.append((head.seq + 1, None, False))
    return plan


def _check_chunk(store: ReceiptStore, fast: _Fast, low: int, high: int) -> _Summary | None:
    """The helper's check of one chunk: its summary when every row passes
    :meth:`_Fast.check` and links to the one before it, else None."""
    batches, _ = _batches(store, max_seq=high, min_seq=low)
    check = fast.check
    first: Values | None = None
    last_seq, last_hash, last_id = 0, "", ""
    count = 0
    for batch in batches:
        for values in batch:
            seq = values[0]
            if type(seq) is not int or not check(values):
                return None
            if first is None:
                first = values
            elif seq != last_seq + 1 or values[8] != last_hash:
                return None
            last_seq, last_hash, last_id = seq, values[9], values[1]
            count += 1
    return count, first, last_seq, last_hash, last_id


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
        if args.file:
            result = verify_file(args.file, signer)
        else:
            result = verify_store(open_store(args.store, signer), signer)
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc}")
    print(result.message())
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
    return EXIT_OK if result.ok else EXIT_FINDING


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
    """Add ``export``, ``verify``, ``purge`` and ``create-store`` to the ``consent`` command."""
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
            "Check every receipt's signature, hash and link, and the signed chain head. "
            "Exit 0 and print 'OK: N receipts verified', or exit 1 and name the first "
            "receipt at fault. " + times
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", metavar="URL", help="verify the log in this store")
    source.add_argument("--file", metavar="EXPORT", help="verify an export (.jsonl or .csv)")
    p.set_defaults(func=cmd_verify)

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

"""The export formats: a row's JSON Lines line and CSV record, and the lines of a range of rows."""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator
from typing import Any, get_args

from ..receipts import (
    Event,
    StoredReceipt,
    format_time,
)
from ..store import ReceiptStore
from ..store.base import ReceiptRow
from ..store.chain import (
    RECORD_EVENTS,
    record_fields,
)
from .fast import _Fast
from .rows import _batches

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

EVENTS: tuple[str, ...] = get_args(Event)

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


_WRITE_ROWS = 32
_SUBJECT = operator.itemgetter(2)  # a row's subject_id in its values (store.base.row_values)


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
    no limit), streamed in blocks of text: ``(number of receipts, text)``. A block's chain
    records (an empty ``subject_id``, which a receipt never has) are written but not counted,
    so an export reports the number ``verify`` does."""
    signed_lines = fast.signed_lines
    batches, row_from = _batches(store, since, until, event, max_seq=max_seq, min_seq=min_seq)
    for batch in batches:
        lines = signed_lines(batch)
        if None in lines:
            for index, line in enumerate(lines):
                if line is None:
                    lines[index] = _line(row_from(batch[index]), fast)
        subjects = list(map(_SUBJECT, batch))
        for i in range(0, len(lines), _WRITE_ROWS):
            block = lines[i : i + _WRITE_ROWS]
            receipts = len(block) - subjects[i : i + _WRITE_ROWS].count("")
            yield receipts, "".join(block)  # type: ignore[arg-type]


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


def _stored(row: ReceiptRow) -> StoredReceipt | None:
    try:
        return row.to_stored()
    except ValueError:
        return None


def _csv_expected(row: ReceiptRow) -> dict[str, str]:
    """The CSV fields export writes for a sound row."""
    stored = None if row.event in RECORD_EVENTS else _stored(row)
    if stored is not None:
        return _csv_fields(stored)
    raw = _raw_fields(row)
    return {column: _csv_cell(raw.get(column)) for column in CSV_COLUMNS}

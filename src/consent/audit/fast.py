"""Sealed rows checked and exported on their body text, without parsing it.

Export and verification stream millions of rows, and parsing every body into a pydantic model
(and dumping it again) costs several times more than everything else together. Almost every
row is what ``consent.store.chain.seal`` wrote: the canonical JSON of a receipt that was validated
when it was sealed, signed with the receipt key. For such a row the fields can be read and
checked on the body text itself. Anything else (an unknown key, a signature that does not
match, a body that is not what sealing writes) goes the full way, so every finding and every
message stays the same.
"""

from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring
from typing import Any

from ..receipts import (
    Controller,
    Purpose,
    Receipt,
    ReceiptSigner,
)
from ..store.base import ReceiptRow, row_values
from ..store.chain import (
    link_hash,
)
from .rows import Values

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


class _Fast:
    """Rows checked on the body text, and their export lines written from it.

    The checks take a row's values as the store returned them (:data:`Values`): a value of an
    unexpected type (a number or a blob where text belongs) makes them answer False, and the
    caller then takes the full way with the :class:`ReceiptRow`.
    """

    def __init__(self, signer: ReceiptSigner | None) -> None:
        # Where each column was found in the last body (see _has).
        self._at = [0, 0, 0, 0, 0]
        self._signer = signer

    def _signed(self, body: Any, kid: Any, signature: Any) -> bool:
        """True when ``signature`` is the receipt signature of ``body`` by key ``kid``."""
        if type(kid) is not str or type(body) is not str or type(signature) is not str:
            return False
        return self._signer is not None and self._signer.verify(body, kid, signature)

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
        Values after the tenth (the statistics row, ``iter_values(stats=True)``) are left out.
        """
        seq, receipt_id, subject_id, ts, event, body, kid, signature, prev_hash, hash_ = values[:10]
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
        if not self.authentic(row) and (self._signer is not None or self.fields(row) is None):
            return None
        return self.text(row)

    def signed_lines(self, batch: list[Values]) -> list[str | None]:
        """:meth:`line` of each row of a batch of values that is authentic and of the usual
        types, straight from its values; None for any other row (then :meth:`line` decides).
        One call per batch: export runs this for every row of the log."""
        if self._signer is None:
            return [None] * len(batch)
        verify = self._signer.verify
        lines: list[str | None] = []
        append = lines.append
        for seq, _, _, _, _, body, kid, signature, prev_hash, hash_ in batch:
            if (
                type(body) is not str
                or type(kid) is not str
                or type(signature) is not str
                or type(seq) is not int
                or type(prev_hash) is not str
                or type(hash_) is not str
                or not verify(body, kid, signature)
                # kid is a known key id and signature is base64url: both plain. The hashes
                # were not checked: written as they are only when they are (ASCII letters
                # and digits).
                or not (prev_hash + hash_).encode("utf-8", "replace").isalnum()
            ):
                append(None)
                continue
            append(
                f'{body[:-1]},"seq":{seq},"kid":"{kid}","signature":"{signature}",'
                f'"prev_hash":"{prev_hash}","hash":"{hash_}","body":{encode_basestring(body)}}}\n'
            )
        return lines

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

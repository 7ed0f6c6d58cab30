"""Export and verification in batches of row values give what the row-by-row way gives."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio

from consent.audit import _Fast, _line, export, verify_store
from consent.receipts import ReceiptSigner
from consent.store import open_store

from .conftest import TEST_KEY, execute_sql, make_receipt

SIGNER = ReceiptSigner([TEST_KEY])


def _store(tmp_path: Path, n: int = 30) -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}"

    async def fill() -> None:
        store = open_store(url, SIGNER)
        try:
            for i in range(n):
                subject = f'odd "subject" \\ {i}' if i % 7 == 3 else f"subject-{i}"
                await store.append(
                    make_receipt(
                        subject_id=subject,
                        event=("given", "refused", "withdrawn")[i % 3],
                        page="/ü\u2028" if i % 5 == 1 else "/",
                    )
                )
        finally:
            await store.close()

    anyio.run(fill)
    return url


def _row_by_row(url: str, signer: ReceiptSigner | None) -> str:
    """The export lines as the previous, one-row-at-a-time code wrote them."""
    store = open_store(url, SIGNER)
    fast = _Fast(signer)
    return "".join(_line(row, fast) for row in store.iter_raw())


def test_export_matches_the_row_by_row_lines(tmp_path: Path) -> None:
    url = _store(tmp_path)
    # Unusual rows: a tampered body, a bad signature, a hash with a quote, a blob body.
    execute_sql(
        url,
        "UPDATE consent_receipts SET body = replace(body, 'subject-4', 'subject-X') WHERE seq = 5",
        "UPDATE consent_receipts SET signature = 'x' || signature WHERE seq = 9",
        "UPDATE consent_receipts SET hash = 'a\"b' WHERE seq = 12",
        "UPDATE consent_receipts SET body = CAST(body AS BLOB) WHERE seq = 15",
        "UPDATE consent_receipts SET ts = '17' WHERE seq = 18",
    )
    store = open_store(url, SIGNER)
    for signer in (SIGNER, None):
        out = io.StringIO()
        assert export(store, out, signer=signer) == 30
        lines = out.getvalue()
        trailer = lines[lines.rindex('{"chain_head"') :]
        assert lines[: -len(trailer)] == _row_by_row(url, signer)
        assert json.loads(trailer)["chain_head"]["seq"] == 30


def _finding(url: str, *statements: str) -> str:
    execute_sql(url, *statements)
    return verify_store(open_store(url, SIGNER), SIGNER).message()


def test_unusual_values_are_reported_as_before(tmp_path: Path) -> None:
    """A value of another type than the store writes takes the full way."""
    cases = [
        (
            "UPDATE consent_receipts SET body = CAST(body AS BLOB) WHERE seq = 6",
            "(seq 6): signature does not match the receipt body (receipt edited)",
        ),
        (
            "UPDATE consent_receipts SET receipt_id = CAST(receipt_id AS BLOB) WHERE seq = 6",
            "(seq 6): receipt_id differs from the signed body (edited after signing)",
        ),
        (
            "UPDATE consent_receipts SET ts = ts + 1.5 WHERE seq = 6",
            "(seq 6): timestamp differs from the signed body (edited after signing)",
        ),
        (
            "UPDATE consent_receipts SET prev_hash = CAST(prev_hash AS BLOB) WHERE seq = 6",
            "(seq 6): hash does not match the receipt (chain fields edited)",
        ),
    ]
    for i, (statement, expected) in enumerate(cases):
        base = tmp_path / str(i)
        base.mkdir()
        url = _store(base, 10)
        assert expected in _finding(url, statement)


def test_a_bad_row_in_the_middle_of_a_batch(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    url = _store(tmp_path / "a")
    message = _finding(url, "DELETE FROM consent_receipts WHERE seq = 20")
    assert message.endswith("(seq 21): seq 20 missing before this receipt (receipts deleted)")
    assert verify_store(open_store(url, SIGNER), SIGNER).count == 19
    (tmp_path / "b").mkdir()
    url = _store(tmp_path / "b")
    message = _finding(url, "UPDATE consent_receipts SET hash = 'x' WHERE seq = 25")
    assert "(seq 25): hash does not match" in message
    assert verify_store(open_store(url, SIGNER), SIGNER).count == 24

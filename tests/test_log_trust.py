"""Trust in the receipt log: what someone who can write the database, but does not hold the
signing key, can and cannot hide, against real SQLite files and the test PostgreSQL server.

The attacker's moves are plain SQL: delete receipts, renumber and re-link the ones after them
(the unkeyed sha256 link is all anyone can compute without the key), delete or re-point the
chain head, restore an older copy of it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from consent.audit import VerifyResult, export, verify_file, verify_store
from consent.receipts import (
    GENESIS_HASH,
    ChainHead,
    ReceiptSigner,
    StoredReceipt,
    canonical_json,
    chain_hash,
)
from consent.store import StoreUnavailable, open_store

from .conftest import ROOT, TEST_KEY, execute_sql, make_receipt, record_receipts
from .helpers import run_consent

SIGNER = ReceiptSigner([TEST_KEY])


def _fill(url: str, n: int = 6, **overrides: Any) -> list[StoredReceipt]:
    events = ("given", "refused", "updated", "withdrawn")
    return record_receipts(
        url,
        [
            make_receipt(subject_id=f"visitor-{i}", event=events[i % 4], **overrides)
            for i in range(n)
        ],
    )


def _append(url: str) -> StoredReceipt:
    (stored,) = _fill(url, 1)
    return stored


def _verify(url: str) -> VerifyResult:
    return verify_store(open_store(url, SIGNER), SIGNER)


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:"):
        import sqlite3

        from consent.store.sqlite import path_from_url

        conn = sqlite3.connect(path_from_url(url))
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url) as pg:
        return pg.execute(sql).fetchall()  # type: ignore[arg-type]


def _count(url: str) -> int:
    return int(_query(url, "SELECT COUNT(*) FROM consent_receipts")[0][0])


_NO_HEAD = (
    "UPDATE consent_chain SET head_seq = NULL, head_hash = NULL, head_kid = NULL,"
    " head_signature = NULL"
)


def _delete_and_relink(url: str, seq: int) -> None:
    """Delete receipt ``seq``, renumber the ones after it and link them again as anyone can
    (sha256 over prev_hash, body, kid and signature: no key needed)."""
    execute_sql(url, f"DELETE FROM consent_receipts WHERE seq = {seq}")
    rows = _query(
        url,
        f"SELECT seq, body, kid, signature FROM consent_receipts WHERE seq > {seq} ORDER BY seq",
    )
    (before,) = _query(url, f"SELECT hash FROM consent_receipts WHERE seq = {seq - 1}")
    prev = before[0]
    statements = []
    for old_seq, body, kid, signature in rows:
        new_hash = chain_hash(prev, body, kid, signature)
        statements.append(
            f"UPDATE consent_receipts SET seq = {old_seq - 1}, prev_hash = '{prev}',"
            f" hash = '{new_hash}' WHERE seq = {old_seq}"
        )
        prev = new_hash
    execute_sql(url, *statements)


def _point_head_at_the_end(url: str) -> None:
    """Move the head's seq and hash to the newest row (its signature cannot be redone)."""
    ((seq, hash_),) = _query(
        url, "SELECT seq, hash FROM consent_receipts ORDER BY seq DESC LIMIT 1"
    )
    execute_sql(url, f"UPDATE consent_chain SET head_seq = {seq}, head_hash = '{hash_}'")


def _consent(*args: str, key: str | None = TEST_KEY) -> subprocess.CompletedProcess[str]:
    return run_consent(*args, key=key)


# --------------------------------------------------------------------------- 1. keyed chain


def test_a_relinked_deletion_is_found_without_an_append(store_url: str) -> None:
    """The chain is keyed: renumbering and re-linking after a deleted receipt is found even
    when no decision followed, and the first receipt it names is the first one moved."""
    rows = _fill(store_url, 6)
    _delete_and_relink(store_url, 4)  # the visitor's "withdrawn" receipt
    execute_sql(store_url, _NO_HEAD)
    result = _verify(store_url)
    assert not result.ok
    assert (result.seq, result.receipt_id) == (4, rows[4].receipt_id), result.message()


@pytest.mark.parametrize("head", ["deleted", "pointed at the new end"])
def test_the_next_decision_does_not_sign_over_a_deletion(
    store_url: str, head: str, caplog: pytest.LogCaptureFixture
) -> None:
    _fill(store_url, 6)
    _delete_and_relink(store_url, 4)
    if head == "deleted":
        execute_sql(store_url, _NO_HEAD)
    else:
        _point_head_at_the_end(store_url)
    with (
        caplog.at_level(logging.ERROR, logger="consent"),
        pytest.raises(StoreUnavailable) as raised,
    ):
        _append(store_url)
    assert type(raised.value).__name__ == "ChainBroken"
    assert "chain head" in str(raised.value)
    assert _count(store_url) == 5  # nothing recorded
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("consent incident" in r.getMessage() for r in errors), errors
    assert not _verify(store_url).ok  # and still found


@pytest.mark.parametrize(
    "damage",
    [
        "newest receipts deleted",
        "head signature spoilt",
        "every receipt deleted",
        "head deleted",
    ],
)
def test_recording_stops_when_the_head_does_not_match_the_log(store_url: str, damage: str) -> None:
    _fill(store_url, 6)
    statements = {
        "newest receipts deleted": ["DELETE FROM consent_receipts WHERE seq >= 5"],
        "head signature spoilt": ["UPDATE consent_chain SET head_signature = 'x'"],
        "every receipt deleted": ["DELETE FROM consent_receipts"],
        "head deleted": [_NO_HEAD],
    }[damage]
    execute_sql(store_url, *statements)
    before = _count(store_url)
    for _ in range(2):  # and again: it stays stopped
        with pytest.raises(StoreUnavailable) as raised:
            _append(store_url)
        assert type(raised.value).__name__ == "ChainBroken"
    assert _count(store_url) == before


def test_two_processes_advance_the_head_and_neither_stops_the_other(tmp_path: Path) -> None:
    """Another writer legitimately moving the head is not damage."""
    from .conftest import append_from_processes

    url = f"sqlite:///{tmp_path}/shared.db"
    _fill(url, 2)
    append_from_processes(url, TEST_KEY, processes=2, each=60)
    _fill(url, 2)
    result = _verify(url)
    assert (result.ok, result.count) == (True, 124), result.message()


def test_a_decision_after_the_damage_is_answered_503_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from consent import ConsentMiddleware

    from .helpers import EXAMPLE_POLICY

    url = f"sqlite:///{tmp_path}/site.db"
    site = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    app = ConsentMiddleware(site, policy=EXAMPLE_POLICY, secret_key=TEST_KEY, store=url)
    origin = {"Origin": "http://testserver"}
    with TestClient(app, base_url="http://testserver") as client:
        for _ in range(3):
            assert (
                client.post("/_consent", json={"accept": "all"}, headers=origin).status_code == 200
            )
        execute_sql(url, "DELETE FROM consent_receipts WHERE seq = 3", _NO_HEAD)
        with caplog.at_level(logging.ERROR, logger="consent"):
            client.cookies.clear()
            answer = client.post("/_consent", json={"accept": []}, headers=origin)
        assert answer.status_code == 503
        assert "set-cookie" not in answer.headers
        assert any(
            "chain head is missing" in r.getMessage() and r.levelno == logging.ERROR
            for r in caplog.records
        )
        # The operator investigates, then resumes on purpose.
        done = _consent("incident", "--store", url, "--reason", "receipt 3 lost", "--by", "Ops")
        assert done.returncode == 0, done.stderr
        client.cookies.clear()
        assert client.post("/_consent", json={"accept": []}, headers=origin).status_code == 200
    assert _verify(url).ok


def test_an_incident_marker_resumes_recording_and_is_reported_for_ever(store_url: str) -> None:
    rows = _fill(store_url, 6)
    _delete_and_relink(store_url, 4)
    execute_sql(store_url, _NO_HEAD)
    with pytest.raises(StoreUnavailable):
        _append(store_url)

    done = _consent(
        "incident",
        "--store",
        store_url,
        "--reason",
        "a migration script deleted a receipt",
        "--by",
        "Jo Operator",
    )
    assert done.returncode == 0, done.stderr
    assert "incident recorded" in done.stdout.lower()
    later = [_append(store_url) for _ in range(2)]

    done = _consent("verify", "--store", store_url)
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert out.startswith("OK: 7 receipts verified")
    assert "incident" in out
    assert "a migration script deleted a receipt" in out
    assert "Jo Operator" in out
    assert "the signed chain head is missing" in out  # what was found
    assert "(seq 4)" in out
    assert rows[4].receipt_id in out
    result = _verify(store_url)
    assert result.ok
    assert len(result.incidents) == 1
    assert result.incidents[0].by == "Jo Operator"
    assert result.incidents[0].affected >= 2  # the moved receipts

    # An export carries the marker, and verifies with it.
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"incident-{os.getpid()}-{id(rows)}.jsonl"
    try:
        with path.open("w", encoding="utf-8") as out_file:
            export(open_store(store_url), out_file)
        from_file = verify_file(path, SIGNER)
        assert from_file.ok, from_file.message()
        assert len(from_file.incidents) == 1
    finally:
        path.unlink(missing_ok=True)

    # Damage after the marker is not covered by it.
    execute_sql(store_url, f"DELETE FROM consent_receipts WHERE seq = {later[0].seq}")
    assert _consent("verify", "--store", store_url).returncode == 1


def test_an_incident_is_refused_when_there_is_nothing_to_record(store_url: str) -> None:
    _fill(store_url, 3)
    done = _consent("incident", "--store", store_url, "--reason", "just because")
    assert done.returncode == 2
    assert "nothing to record" in done.stderr
    assert _count(store_url) == 3
    assert _consent("incident", "--store", store_url, "--reason", "x", key=None).returncode == 2


def test_after_truncation_the_incident_keeps_the_lost_numbers(store_url: str) -> None:
    """Numbers are never reused: the marker follows the head that was found, so the gap it
    covers stays visible."""
    _fill(store_url, 6)
    execute_sql(store_url, "DELETE FROM consent_receipts WHERE seq >= 5")
    done = _consent("incident", "--store", store_url, "--reason", "disk restored")
    assert done.returncode == 0, done.stderr
    stored = _append(store_url)
    assert stored.seq == 8  # 7 is the marker; 5 and 6 stay missing
    done = _consent("verify", "--store", store_url)
    assert done.returncode == 0, done.stdout
    assert "seq 5..6 missing" in done.stdout
    assert "2 receipts" in done.stdout


def _legacy_log(url: str, n: int) -> list[tuple[int, str]]:
    """``n`` receipts chained as earlier versions did (unkeyed sha256 links), with their
    signed head: what an existing site's store holds."""

    async def create() -> None:
        store = open_store(url, SIGNER)
        try:
            assert await store.open()
        finally:
            await store.close()

    anyio.run(create)
    prev, statements, links = GENESIS_HASH, [], []
    for seq in range(1, n + 1):
        receipt = make_receipt(subject_id=f"old-{seq}", timestamp=1_700_000_000 + seq)
        body = canonical_json(receipt)
        kid, signature = SIGNER.sign(body)
        digest = chain_hash(prev, body, kid, signature)
        quoted = body.replace("'", "''")
        statements.append(
            "INSERT INTO consent_receipts (seq, receipt_id, subject_id, ts, event, body, kid,"
            f" signature, prev_hash, hash) VALUES ({seq}, '{receipt.receipt_id}',"
            f" '{receipt.subject_id}', {receipt.timestamp}, '{receipt.event}', '{quoted}',"
            f" '{kid}', '{signature}', '{prev}', '{digest}')"
        )
        links.append((seq, digest))
        prev = digest
    head = ChainHead.make(n, prev, SIGNER)
    statements.append(
        "INSERT INTO consent_chain (id, head_seq, head_hash, head_kid, head_signature)"
        f" VALUES (1, {head.seq}, '{head.hash}', '{head.kid}', '{head.signature}')"
    )
    execute_sql(url, *statements)
    return links


def test_an_earlier_versions_log_keeps_verifying_and_switches_to_keyed_links(
    store_url: str,
) -> None:
    _legacy_log(store_url, 4)
    before = _verify(store_url)
    assert (before.ok, before.count, before.keyed_from) == (True, 4, None), before.message()
    new = _append(store_url)
    assert new.seq == 6  # seq 5 is the signed switch record
    result = _verify(store_url)
    assert (result.ok, result.count, result.keyed_from) == (True, 5, 5), result.message()
    done = _consent("verify", "--store", store_url)
    assert "keyed" in done.stdout

    # A downgrade without the key: the switch record removed and the new receipt re-linked
    # the unkeyed way. The signed head no longer matches; deleting it is found as well.
    _delete_and_relink(store_url, 5)
    downgraded = _verify(store_url)
    assert not downgraded.ok
    assert "chain head" in downgraded.reason
    execute_sql(store_url, _NO_HEAD)
    assert not _verify(store_url).ok
    with pytest.raises(StoreUnavailable):
        _append(store_url)


def test_a_keyed_log_cannot_be_rewritten_in_the_unkeyed_format(store_url: str) -> None:
    rows = _fill(store_url, 4)
    # Re-link every receipt the unkeyed way (as an earlier version would have written them).
    prev, statements = GENESIS_HASH, []
    for stored in rows:
        digest = chain_hash(prev, stored.body, stored.kid, stored.signature)
        statements.append(
            f"UPDATE consent_receipts SET prev_hash = '{prev}', hash = '{digest}'"
            f" WHERE seq = {stored.seq}"
        )
        prev = digest
    execute_sql(store_url, *statements, _NO_HEAD)
    result = _verify(store_url)
    assert not result.ok
    with pytest.raises(StoreUnavailable):
        _append(store_url)


def test_the_head_to_keep_and_expect_head(store_url: str, tmp_path: Path) -> None:
    """A rollback of rows and head together (an older copy of the store) is found only
    against a head kept elsewhere."""
    _fill(store_url, 4)
    saved = _query(
        store_url, "SELECT head_seq, head_hash, head_kid, head_signature FROM consent_chain"
    )[0]
    _fill(store_url, 2)
    done = _consent("verify", "--store", store_url)
    assert done.returncode == 0
    kept = tmp_path / "head.txt"
    kept.write_text(done.stdout)  # the whole output: the head line is found in it
    (head_line,) = [line for line in done.stdout.splitlines() if line.startswith("head: ")]
    assert _consent("verify", "--store", store_url, "--expect-head", str(kept)).returncode == 0
    assert _consent("verify", "--store", store_url, "--expect-head", head_line[6:]).returncode == 0
    early = f"{saved[0]}:{saved[1]}"  # the short form, of an earlier head: still on the way
    assert _consent("verify", "--store", store_url, "--expect-head", early).returncode == 0

    # Roll back to the state of seq 4: rows and head together.
    execute_sql(
        store_url,
        "DELETE FROM consent_receipts WHERE seq > 4",
        f"UPDATE consent_chain SET head_seq = {saved[0]}, head_hash = '{saved[1]}',"
        f" head_kid = '{saved[2]}', head_signature = '{saved[3]}'",
    )
    assert _consent("verify", "--store", store_url).returncode == 0  # the limit
    done = _consent("verify", "--store", store_url, "--expect-head", str(kept))
    assert done.returncode == 1
    assert "seq 6" in done.stdout
    assert "rolled back" in done.stdout
    bad = _consent("verify", "--store", store_url, "--expect-head", "not a head")
    assert bad.returncode == 2


def test_memory_store_stops_recording_too() -> None:
    async def run() -> None:
        store = open_store("memory://", SIGNER)
        await store.append(make_receipt())
        await store.append(make_receipt())
        log = store._log  # type: ignore[attr-defined]
        del log.rows[-1]  # the newest receipt, as a database writer could
        with pytest.raises(StoreUnavailable) as raised:
            await store.append(make_receipt())
        assert type(raised.value).__name__ == "ChainBroken"

    anyio.run(run)


# --------------------------------------------------------------------------- 2. under load

_WRITER = r"""
import asyncio, sys, uuid
from consent.receipts import Receipt, ReceiptSigner
from consent.store import open_store

url, key, template = sys.argv[1:4]

async def main():
    store = open_store(url, ReceiptSigner([key]), timeout=30)
    base = Receipt.from_body(template)
    await store.open()
    print("ready", flush=True)
    i = 0
    while True:
        batch = [
            store.append(base.model_copy(update={"receipt_id": str(uuid.uuid4()),
                                                 "subject_id": f"w-{i}-{j}"}))
            for j in range(4)
        ]
        await asyncio.gather(*batch)
        i += 1

asyncio.run(main())
"""


def test_verify_and_purge_while_decisions_are_recorded(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from consent.cli import main

    _fill(store_url, 20, timestamp=1_600_000_000)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url, TEST_KEY, canonical_json(make_receipt())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        store = open_store(store_url, SIGNER)
        seen = set()
        for _ in range(30):
            result = verify_store(store, SIGNER)
            assert result.ok, result.message()
            seen.add(result.count)
        assert len(seen) > 5  # the log grew while it was being verified
        monkeypatch.setenv("CONSENT_SECRET_KEY", TEST_KEY)
        for cut in ("2020-09-13T12:26:45Z", "2020-09-13T12:26:50Z"):
            assert main(["purge", "--store", store_url, "--before", cut]) == 0
            assert "Purged" in capsys.readouterr().out
    finally:
        writer.kill()
        writer.communicate()
    assert _verify(store_url).ok


# --------------------------------------------------------------------------- 3. every finding


def test_verify_names_every_bad_receipt(store_url: str) -> None:
    rows = _fill(store_url, 9)
    execute_sql(
        store_url,
        "UPDATE consent_receipts SET body = replace(body, 'visitor-1', 'visitor-X') WHERE seq = 2",
        "UPDATE consent_receipts SET event = 'withdrawn' WHERE seq = 5",
        "DELETE FROM consent_receipts WHERE seq = 7",
    )
    result = _verify(store_url)
    assert not result.ok
    assert [(f.seq, f.receipt_id) for f in result.findings] == [
        (2, rows[1].receipt_id),
        (5, rows[4].receipt_id),
        (8, rows[7].receipt_id),
    ]
    assert result.finding_count == 3
    done = _consent("verify", "--store", store_url)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"BROKEN at receipt {rows[1].receipt_id} (seq 2): signature")
    assert lines[1].startswith(f"BROKEN at receipt {rows[4].receipt_id} (seq 5): event differs")
    assert lines[2].startswith(f"BROKEN at receipt {rows[7].receipt_id} (seq 8): seq 7 missing")
    assert "3 findings" in done.stdout


def test_many_findings_are_listed_up_to_a_cap_then_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/many.db"
    _fill(url, 130)
    execute_sql(url, "UPDATE consent_receipts SET subject_id = 'someone-else'")
    result = _verify(url)
    assert (result.finding_count, len(result.findings)) == (130, 100)
    done = _consent("verify", "--store", url)
    assert done.returncode == 1
    assert sum(line.startswith("BROKEN at receipt") for line in done.stdout.splitlines()) == 100
    assert "and 30 more findings" in done.stdout


def test_a_file_names_every_bad_receipt_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    rows = _fill(url, 6)
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        export(open_store(url), out)
    lines = path.read_text("utf-8").splitlines(keepends=True)
    for index in (1, 4):
        record = json.loads(lines[index])
        record["event"] = "withdrawn" if record["event"] != "withdrawn" else "given"
        lines[index] = json.dumps(record) + "\n"
    path.write_text("".join(lines), "utf-8")
    result = verify_file(path, SIGNER)
    assert [f.receipt_id for f in result.findings] == [rows[1].receipt_id, rows[4].receipt_id]


# --------------------------------------------------------------------------- 4. duplicates


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path, list[StoredReceipt]]:
    url = f"sqlite:///{tmp_path}/dup.db"
    rows = _fill(url, 4)
    paths = []
    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"log.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as out:
            export(open_store(url), out, fmt)
        assert verify_file(path, SIGNER).ok
        paths.append(path)
    return paths[0], paths[1], rows


def test_a_jsonl_key_given_twice_is_a_finding(
    exported: tuple[Path, Path, list[StoredReceipt]],
) -> None:
    jsonl, _, rows = exported
    lines = jsonl.read_text("utf-8").splitlines(keepends=True)
    lines[1] = '{"event":"withdrawn",' + lines[1][1:]  # the first of two wins in some readers
    jsonl.write_text("".join(lines), "utf-8")
    result = verify_file(jsonl, SIGNER)
    assert not result.ok
    assert result.receipt_id == rows[1].receipt_id or "line 2" in result.reason
    assert "event" in result.reason
    assert "twice" in result.reason


def _rewrite_csv(path: Path, change: Any) -> None:
    with path.open(encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    change(table)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(table)


def test_a_csv_column_given_twice_is_a_finding(
    exported: tuple[Path, Path, list[StoredReceipt]],
) -> None:
    _, path, _ = exported

    def first_event_withdrawn(table: list[list[str]]) -> None:
        table[0].insert(0, "event")  # what a spreadsheet shows first
        for row in table[1:]:
            row.insert(0, "withdrawn")

    _rewrite_csv(path, first_event_withdrawn)
    result = verify_file(path, SIGNER)
    assert not result.ok
    assert "event" in result.reason
    assert "twice" in result.reason


def test_csv_cells_beyond_the_header_are_a_finding(
    exported: tuple[Path, Path, list[StoredReceipt]],
) -> None:
    _, path, _rows = exported

    def extra_cell(table: list[list[str]]) -> None:
        table[3].append("withdrawn")

    _rewrite_csv(path, extra_cell)
    result = verify_file(path, SIGNER)
    assert not result.ok
    assert "CSV row 4" in result.reason
    assert "beyond the header" in result.reason


# --------------------------------------------------------------------------- 5. CSV cells

_FORMULA = '=HYPERLINK("http://evil.example/","open")'


def test_every_csv_cell_is_neutralised_and_chain_columns_are_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    rows = _fill(url, 6)
    planted = {"kid": 1, "signature": 2, "prev_hash": 3, "hash": 4, "body": 5}
    execute_sql(
        url,
        *(
            f"UPDATE consent_receipts SET {column} = '{_FORMULA}' WHERE seq = {seq}"
            for column, seq in planted.items()
        ),
    )
    path = tmp_path / "log.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        export(open_store(url), out, "csv")
    with path.open(encoding="utf-8", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert cells.count("'" + _FORMULA) == 5
    result = verify_file(path, SIGNER)
    assert not result.ok
    bad = {f.seq for f in result.findings}
    assert {1, 2, 3, 4, 5} <= bad, result.findings

    # A chain cell whose protecting quote was taken away is reported as such.
    def unquoted_kid(table: list[list[str]]) -> None:
        column = table[0].index("kid")
        assert table[1][column] == "'" + _FORMULA
        table[1][column] = _FORMULA

    _rewrite_csv(path, unquoted_kid)
    result = verify_file(path, SIGNER)
    assert "kid is a formula without its protecting quote" in result.reason
    assert rows[0].receipt_id  # (the rows were recorded)


def test_a_signature_that_starts_with_a_dash_is_quoted_and_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dash.db"
    for i in range(2000):
        receipt = make_receipt(subject_id=f"dash-{i}")
        if SIGNER.sign(canonical_json(receipt))[1].startswith("-"):
            break
    else:
        raise AssertionError("no signature starting with '-' in 2,000 tries")

    async def run() -> None:
        store = open_store(url, SIGNER)
        try:
            await store.append(receipt)
        finally:
            await store.close()

    anyio.run(run)
    path = tmp_path / "log.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        export(open_store(url), out, "csv")
    with path.open(encoding="utf-8", newline="") as handle:
        (record,) = list(csv.DictReader(handle))
    assert record["signature"].startswith("'-")
    assert verify_file(path, SIGNER).ok
    # An export written before cells were neutralised (the dash verbatim) still verifies.
    path.write_text(path.read_text("utf-8").replace(",'-", ",-"), "utf-8")
    assert verify_file(path, SIGNER).ok

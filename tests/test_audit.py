"""Export, verification and purge: tampering is found and the first bad receipt named."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from consent import audit
from consent.audit import export, parse_time, verify_file, verify_store
from consent.audit.lines import CSV_COLUMNS
from consent.receipts import ReceiptSigner, StoredReceipt
from consent.store import ReceiptStore, StoreUnavailable, open_store

from .conftest import TEST_KEY, execute_sql, make_receipt, record_receipts
from .helpers import consent_with_reader_gone, run_consent

SIGNER = ReceiptSigner([TEST_KEY])


def _fill(url: str, n: int = 6, start: int = 1_700_000_000) -> list[StoredReceipt]:
    return record_receipts(
        url,
        [
            make_receipt(
                subject_id=f"visitor-{i}",
                timestamp=start + 3600 * i,
                event="refused" if i % 2 else "given",
            )
            for i in range(n)
        ],
    )


def _verify(url: str) -> audit.VerifyResult:
    return verify_store(open_store(url, SIGNER), SIGNER)


# --------------------------------------------------------------------------- tampering


def test_intact_log_verifies(store_url: str) -> None:
    _fill(store_url)
    result = _verify(store_url)
    assert result.ok
    assert result.count == 6
    assert result.message() == "OK: 6 receipts verified"


def test_edited_body_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    execute_sql(
        store_url,
        'UPDATE consent_receipts SET body = replace(body, \'"event":"refused"\', '
        '\'"event":"given"\') WHERE seq = 4',
    )
    result = _verify(store_url)
    assert not result.ok
    assert result.first_bad == rows[3].receipt_id
    assert result.seq == 4
    assert "signature" in result.reason
    assert result.message().startswith(f"BROKEN at receipt {rows[3].receipt_id} (seq 4): ")


def test_edited_column_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    execute_sql(store_url, "UPDATE consent_receipts SET event = 'given' WHERE seq = 2")
    result = _verify(store_url)
    assert (result.ok, result.first_bad, result.seq) == (False, rows[1].receipt_id, 2)
    assert "event differs from the signed body" in result.reason


def test_edited_hash_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    execute_sql(store_url, f"UPDATE consent_receipts SET hash = '{'f' * 64}' WHERE seq = 5")
    result = _verify(store_url)
    assert (result.first_bad, result.seq) == (rows[4].receipt_id, 5)
    assert "hash" in result.reason


def test_resigned_with_another_key_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    result = verify_store(open_store(store_url, SIGNER), ReceiptSigner(["someone-else"]))
    assert (result.first_bad, result.seq) == (rows[0].receipt_id, 1)
    assert "unknown key" in result.reason


def test_deleted_row_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    execute_sql(store_url, "DELETE FROM consent_receipts WHERE seq = 3")
    result = _verify(store_url)
    assert not result.ok
    assert (result.first_bad, result.seq) == (rows[3].receipt_id, 4)
    assert "seq 3 missing" in result.reason


def test_deleted_first_row_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    execute_sql(store_url, "DELETE FROM consent_receipts WHERE seq = 1")
    result = _verify(store_url)
    assert (result.first_bad, result.seq) == (rows[1].receipt_id, 2)


def test_deleted_and_renumbered_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    execute_sql(
        store_url,
        "DELETE FROM consent_receipts WHERE seq = 3",
        "UPDATE consent_receipts SET seq = seq - 1 WHERE seq = 4",
        "UPDATE consent_receipts SET seq = seq - 1 WHERE seq = 5",
        "UPDATE consent_receipts SET seq = seq - 1 WHERE seq = 6",
    )
    result = _verify(store_url)
    assert (result.first_bad, result.seq) == (rows[3].receipt_id, 3)
    assert "prev_hash" in result.reason


def test_swapped_pair_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    execute_sql(
        store_url,
        "UPDATE consent_receipts SET seq = -1 WHERE seq = 3",
        "UPDATE consent_receipts SET seq = 3 WHERE seq = 4",
        "UPDATE consent_receipts SET seq = 4 WHERE seq = -1",
    )
    result = _verify(store_url)
    assert not result.ok
    assert (result.first_bad, result.seq) == (rows[3].receipt_id, 3)


def test_deleted_tail_is_found(store_url: str) -> None:
    _fill(store_url)
    execute_sql(store_url, "DELETE FROM consent_receipts WHERE seq >= 5")
    result = _verify(store_url)
    assert not result.ok
    assert result.seq == 5
    assert "truncated" in result.reason
    assert result.message().startswith("BROKEN at seq 5: log truncated")


def test_deleted_tail_stops_recording_and_stays_visible(store_url: str) -> None:
    _fill(store_url)
    execute_sql(store_url, "DELETE FROM consent_receipts WHERE seq >= 5")
    with pytest.raises(StoreUnavailable, match=r"seq 5\.\.6 missing"):
        _fill(store_url, n=1)  # no new head signed over the truncated end
    result = _verify(store_url)
    assert (result.ok, result.seq) == (False, 5)
    assert "truncated" in result.reason


def test_forged_head_is_found(store_url: str) -> None:
    _fill(store_url)
    execute_sql(
        store_url,
        "DELETE FROM consent_receipts WHERE seq = 6",
        "UPDATE consent_chain SET head_seq = 5, head_hash = "
        "(SELECT hash FROM consent_receipts WHERE seq = 5)",
    )
    result = _verify(store_url)
    assert not result.ok
    assert "head signature" in result.reason


def test_purge_then_verify(store_url: str) -> None:
    rows = _fill(store_url)
    store = open_store(store_url, SIGNER)
    assert audit.purge(store, rows[3].receipt.timestamp) == 3
    result = verify_store(store, SIGNER)
    assert result.ok, result.message()
    assert result.count == 3
    # Deleting more of the prefix by hand is still caught.
    execute_sql(store_url, "DELETE FROM consent_receipts WHERE seq = 4")
    result = verify_store(store, SIGNER)
    assert (result.first_bad, result.seq) == (rows[4].receipt_id, 5)


def test_forged_checkpoint_is_found(store_url: str) -> None:
    rows = _fill(store_url)
    store = open_store(store_url, SIGNER)
    store.purge(rows[2].receipt.timestamp)
    execute_sql(store_url, "UPDATE consent_chain SET cp_count = 0")
    result = verify_store(store, SIGNER)
    assert not result.ok
    assert "checkpoint" in result.reason


# --------------------------------------------------------------------------- export


def test_parse_time() -> None:
    assert parse_time("2026-11-25") == 1_795_564_800
    assert parse_time("2026-11-25") == parse_time("2026-11-25T00:00:00Z")
    assert parse_time("2026-11-25T12:00:00Z") == 1_795_608_000
    assert parse_time("2026-11-25t12:00:00z") == 1_795_608_000
    assert parse_time("2026-11-25T13:00:00+01:00") == parse_time("2026-11-25T12:00:00Z")
    assert parse_time("2026-11-25T12:00:00") == parse_time("2026-11-25T12:00:00Z")
    assert parse_time(" 1795608000 ") == 1_795_608_000
    for bad in ("yesterday", "2026-13-01", "25/11/2026", ""):
        with pytest.raises(ValueError, match="invalid time"):
            parse_time(bad)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> tuple[str, list[StoredReceipt]]:
    url = f"sqlite:///{tmp_path}/consent.db"
    return url, _fill(url)


def test_export_jsonl_round_trip(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path
) -> None:
    url, rows = sqlite_store
    out = io.StringIO()
    assert export(open_store(url), out) == 6  # no key needed to export
    lines = out.getvalue().splitlines()
    assert len(lines) == 7
    records = [json.loads(line) for line in lines[:6]]
    for record, stored in zip(records, rows, strict=True):
        assert record == stored.to_dict()
        assert record["body"] == stored.body
        assert {"seq", "kid", "signature", "prev_hash", "hash", "time"} <= set(record)
    trailer = json.loads(lines[6])
    assert trailer["chain_head"]["seq"] == 6
    assert trailer["checkpoint"] is None

    path = tmp_path / "export.jsonl"
    path.write_text(out.getvalue(), encoding="utf-8")
    result = verify_file(path, SIGNER)
    assert result.ok, result.message()
    assert result.count == 6


def _export_file(url: str, path: Path, **filters: object) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        export(open_store(url), out, **filters)  # type: ignore[arg-type]
    return path


def _rewrite(path: Path, change: object) -> None:
    lines = path.read_text("utf-8").splitlines(keepends=True)
    path.write_text("".join(change(lines)), encoding="utf-8")  # type: ignore[operator]


def test_verify_file_finds_tampering(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path
) -> None:
    url, rows = sqlite_store

    def edited_field(lines: list[str]) -> list[str]:
        record = json.loads(lines[2])
        record["event"] = "given" if record["event"] == "refused" else "refused"
        lines[2] = json.dumps(record) + "\n"
        return lines

    def edited_body(lines: list[str]) -> list[str]:
        lines[2] = lines[2].replace('\\"language\\":\\"en\\"', '\\"language\\":\\"fr\\"')
        return lines

    def changed_fields(
        change: Callable[[dict[str, Any]], None],
    ) -> Callable[[list[str]], list[str]]:
        def edit(lines: list[str]) -> list[str]:
            record = json.loads(lines[2])
            change(record)
            lines[2] = json.dumps(record) + "\n"
            return lines

        return edit

    cases = {
        "edited field": (edited_field, rows[2].receipt_id, "event differs"),
        "removed field": (
            changed_fields(lambda r: r.pop("page")),
            rows[2].receipt_id,
            "fields page added or removed",
        ),
        "added field": (
            changed_fields(lambda r: r.update(note="consented by phone")),
            rows[2].receipt_id,
            "fields note added or removed",
        ),
        "edited body": (edited_body, rows[2].receipt_id, "signature"),
        "deleted line": (lambda ls: ls[:2] + ls[3:], rows[3].receipt_id, "missing"),
        "swapped lines": (
            lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]],
            rows[2].receipt_id,
            "out of order",
        ),
        "deleted tail": (lambda ls: ls[:4] + ls[6:], None, "truncated"),
        "deleted first": (lambda ls: ls[1:], rows[1].receipt_id, "starts at seq 2"),
    }
    for name, (change, first_bad, reason) in cases.items():
        path = _export_file(url, tmp_path / f"{name}.jsonl")
        _rewrite(path, change)
        result = verify_file(path, SIGNER)
        assert not result.ok, name
        # Every finding is listed; this one among them.
        assert any(
            reason in found.reason and first_bad in (None, found.receipt_id)
            for found in result.findings
        ), (name, result.findings)


def test_filtered_export_verifies_what_it_holds(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path
) -> None:
    url, rows = sqlite_store
    path = _export_file(url, tmp_path / "refused.jsonl", event="refused")
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [r["seq"] for r in records] == [2, 4, 6]  # no chain head line: not complete
    assert verify_file(path, SIGNER).ok

    path = _export_file(
        url,
        tmp_path / "window.jsonl",
        since=rows[1].receipt.time,
        until=rows[4].receipt.time,
    )
    assert [json.loads(line)["seq"] for line in path.read_text("utf-8").splitlines()] == [2, 3, 4]
    assert verify_file(path, SIGNER).ok
    _rewrite(path, lambda ls: [ls[0], ls[2]])  # a gap is fine in a filtered export...
    assert verify_file(path, SIGNER).ok
    path = _export_file(url, tmp_path / "window.jsonl", since="2000-01-01")
    _rewrite(path, lambda ls: [ls[0], ls[2].replace('"seq":3', '"seq":2')])
    result = verify_file(path, SIGNER)  # ...but consecutive rows must link
    assert (result.ok, result.first_bad) == (False, rows[2].receipt_id)
    assert "prev_hash" in result.reason


def test_a_log_checked_with_another_key_is_not_called_edited(
    sqlite_store: tuple[str, list[StoredReceipt]],
) -> None:
    """Verifying with a key that did not sign the log names the unknown key, for the receipts
    and for the chain head, and accuses nobody of editing anything."""
    url, _ = sqlite_store
    other = ReceiptSigner(["another-key-that-signed-nothing-here-0123456789"])
    result = verify_store(open_store(url, other), other)
    assert not result.ok
    lines = [finding.line() for finding in result.findings]
    assert any("chain head is signed by an unknown key" in line for line in lines), lines
    assert not any("edited" in line for line in lines), lines


def test_export_csv_round_trip(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path
) -> None:
    url, rows = sqlite_store
    path = _export_file(url, tmp_path / "export.csv", fmt="csv")
    with path.open(encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == 6
    for record, stored in zip(records, rows, strict=True):
        assert record["receipt_id"] == stored.receipt_id
        assert record["body"] == stored.body
        assert record["granted"] == " ".join(stored.receipt.granted)
        assert record["seq"] == str(stored.seq)
        # (a signature may start with "-": then, as every cell, it is quoted for spreadsheets)
        signature = record["signature"].removeprefix("'")
        assert SIGNER.verify(record["body"], record["kid"], signature)
    result = verify_file(path, SIGNER)
    assert result.ok, result.message()
    assert result.count == 6

    text = path.read_text("utf-8")
    path.write_text(text.replace(rows[1].receipt.time, "2020-01-01T00:00:00Z"), "utf-8")
    result = verify_file(path, SIGNER)
    assert (result.ok, result.first_bad) == (False, rows[1].receipt_id)


def test_csv_cells_cannot_become_formulas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"

    async def run() -> None:
        store = open_store(url, SIGNER)
        try:
            await store.append(make_receipt(user_agent='=HYPERLINK("http://evil")'))
            await store.append(make_receipt(subject_id="-leading-dash"))
        finally:
            await store.close()

    anyio.run(run)
    path = _export_file(url, tmp_path / "x.csv", fmt="csv")
    with path.open(encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert records[0]["user_agent"].startswith("'=")
    assert records[1]["subject_id"] == "'-leading-dash"
    assert records[0]["body"].startswith("{")
    assert verify_file(path, SIGNER).ok
    # With its protecting quote taken away the cell would run as a formula: not the export.
    path.write_text(path.read_text("utf-8").replace("'=HYPERLINK", "=HYPERLINK"), "utf-8")
    result = verify_file(path, SIGNER)
    assert not result.ok
    assert "user_agent is a formula without its protecting quote" in result.reason


def test_export_rejects_bad_arguments(sqlite_store: tuple[str, list[StoredReceipt]]) -> None:
    url, _ = sqlite_store
    with pytest.raises(ValueError, match="format"):
        export(open_store(url), io.StringIO(), fmt="xml")
    with pytest.raises(ValueError, match="event"):
        export(open_store(url), io.StringIO(), event="maybe")
    with pytest.raises(ValueError, match="invalid time"):
        export(open_store(url), io.StringIO(), since="soon")


def test_export_after_purge_verifies(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path
) -> None:
    url, rows = sqlite_store
    open_store(url, SIGNER).purge(rows[2].receipt.timestamp)
    path = _export_file(url, tmp_path / "after.jsonl")
    trailer = json.loads(path.read_text("utf-8").splitlines()[-1])
    assert trailer["checkpoint"]["seq"] == 2
    result = verify_file(path, SIGNER)
    assert result.ok, result.message()
    assert result.count == 4


# --------------------------------------------------------------------------- command line


def _consent(*args: str, key: str | None = TEST_KEY) -> subprocess.CompletedProcess[str]:
    return run_consent(*args, key=key)


def test_cli_verify_export_purge(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path
) -> None:
    url, rows = sqlite_store
    done = _consent("verify", "--store", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "OK: 6 receipts verified"

    export_path = tmp_path / "log.jsonl"
    done = _consent("export", "--store", url, "--output", str(export_path), key=None)
    assert done.returncode == 0, done.stderr
    done = _consent("verify", "--file", str(export_path))
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, "OK: 6 receipts verified")
    assert done.stdout.splitlines()[1].startswith("head: seq 6 ")
    assert "no chain head" not in done.stdout  # it has one
    # Cut short before its chain head, it still verifies but does not claim to be complete.
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(export_path.read_text().splitlines(keepends=True)[:4]))
    done = _consent("verify", "--file", str(cut))
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, "OK: 4 receipts verified")
    assert done.stdout.splitlines()[1].startswith("no chain head: ")

    done = _consent("export", "--store", url, "--format", "csv", "--event", "given")
    assert done.returncode == 0, done.stderr
    assert len(list(csv.DictReader(io.StringIO(done.stdout)))) == 3

    done = _consent("purge", "--store", url, "--before", rows[2].receipt.time)
    assert done.returncode == 0, done.stderr
    assert "Purged 2 receipts" in done.stdout
    done = _consent("verify", "--store", url)
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, "OK: 4 receipts verified")

    assert done.stdout.splitlines()[2].startswith("purged: 2 receipts recorded before ")
    assert consent_with_reader_gone("export", "--store", url) == (141, b"")

    execute_sql(url, "UPDATE consent_receipts SET event = 'withdrawn' WHERE seq = 5")
    done = _consent("verify", "--store", url)
    assert done.returncode == 1
    assert done.stdout.strip().startswith(f"BROKEN at receipt {rows[4].receipt_id} (seq 5): ")
    done = _consent("purge", "--store", url, "--before", rows[5].receipt.time)
    assert done.returncode == 1
    assert "refusing to purge" in done.stdout
    assert _consent("verify", "--store", url).returncode == 1  # nothing was purged


@pytest.mark.parametrize("table", ["consent_chain", "consent_receipts"])
def test_a_receipt_store_missing_a_table_is_a_finding_not_an_error(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path, table: str
) -> None:
    """A table dropped from a file the store created is damage (exit 1, and purge refuses);
    a file that never was a receipt store is a usage error (exit 2)."""
    url, rows = sqlite_store
    execute_sql(url, f"DROP TABLE {table}")
    done = _consent("verify", "--store", url)
    assert done.returncode == 1
    assert done.stdout.startswith(f"BROKEN: SQLite receipt store {url[len('sqlite:///') :]}: ")
    assert f"no such table: {table}" in done.stdout
    done = _consent("purge", "--store", url, "--before", rows[2].receipt.time)
    assert (done.returncode, "refusing to purge" in done.stdout) == (1, True)

    other = tmp_path / "other.db"
    execute_sql(f"sqlite:///{other}", "CREATE TABLE notes (text)")
    done = _consent("verify", "--store", f"sqlite:///{other}")
    assert done.returncode == 2
    assert "no such table" in done.stderr


def test_create_store_prepares_an_empty_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    done = _consent("create-store", "--store", url, key=None)
    assert (done.returncode, done.stdout.strip()) == (0, f"Receipt store ready: {url}")
    assert _consent("verify", "--store", url).stdout.startswith("OK: 0 receipts verified")
    assert _consent("create-store", "--store", url, key=None).returncode == 0  # again: no change
    assert _consent("create-store", "--store", "ftp://x/y", key=None).returncode == 2


def test_cli_usage_errors(sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path) -> None:
    url, _ = sqlite_store
    done = _consent("verify", "--store", url, key=None)
    assert done.returncode == 2
    assert "CONSENT_SECRET_KEY" in done.stderr
    assert _consent("purge", "--store", url, "--before", "2030-01-01", key=None).returncode == 2
    assert _consent("verify").returncode == 2  # neither --store nor --file
    assert _consent("verify", "--store", url, "--file", "x.jsonl").returncode == 2
    assert _consent("export", "--store", "ftp://x/y").returncode == 2
    assert _consent("export", "--store", url, "--since", "soon").returncode == 2
    assert _consent("purge", "--store", url).returncode == 2
    future = _consent("purge", "--store", url, "--before", "2999-01-01")
    assert future.returncode == 2
    assert "future" in future.stderr
    assert _consent("verify", "--file", str(tmp_path / "missing.jsonl")).returncode == 2
    missing_db = f"sqlite:///{tmp_path}/nope.db"
    assert _consent("verify", "--store", missing_db).returncode == 2


def test_cli_in_process(
    sqlite_store: tuple[str, list[StoredReceipt]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consent.cli import main

    url, _ = sqlite_store
    monkeypatch.setenv("CONSENT_SECRET_KEY", f"new-key,{TEST_KEY}")  # rotated: old still verifies
    assert main(["verify", "--store", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 6 receipts verified\nhead: seq 6 hash ")
    assert main(["export", "--store", url, "--since", "2100-01-01"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.postgres
def test_cli_against_postgres(pg_url: str) -> None:
    rows = _fill(pg_url)
    done = _consent("verify", "--store", pg_url)
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, "OK: 6 receipts verified")
    execute_sql(pg_url, "DELETE FROM consent_receipts WHERE seq = 2")
    done = _consent("verify", "--store", pg_url)
    assert done.returncode == 1
    assert rows[2].receipt_id in done.stdout


def test_memory_store_has_the_same_semantics() -> None:
    async def run() -> ReceiptStore:
        store = open_store("memory://", SIGNER)
        assert await store.open()
        for i in range(5):
            await store.append(make_receipt(timestamp=100 * i))
        assert (await store.latest_for_subject("subject-1")).seq == 5  # type: ignore[union-attr]
        shared = open_store("memory://audit-test", SIGNER)
        await shared.append(make_receipt())
        assert open_store("memory://audit-test").count() == 1
        return store

    store = anyio.run(run)
    assert verify_store(store, SIGNER).ok
    assert store.purge(250) == 3
    result = verify_store(store, SIGNER)
    assert (result.ok, result.count) == (True, 2)
    out = io.StringIO()
    assert export(store, out) == 2


def test_unreadable_row_is_exported_and_flagged(
    sqlite_store: tuple[str, list[StoredReceipt]], tmp_path: Path
) -> None:
    url, rows = sqlite_store
    execute_sql(url, "UPDATE consent_receipts SET body = '{broken' WHERE seq = 2")
    for fmt in ("jsonl", "csv"):
        path = _export_file(url, tmp_path / f"broken.{fmt}", fmt=fmt)
        result = verify_file(path, SIGNER)
        assert (result.ok, result.first_bad) == (False, rows[1].receipt_id), fmt


@pytest.mark.parametrize(
    "content",
    ["", "\n", ",".join(CSV_COLUMNS) + "\r\n"],
    ids=["empty", "blank-line", "csv-header-only"],
)
def test_a_file_without_receipts_or_head_is_not_reported_ok(tmp_path: Path, content: str) -> None:
    """An empty file (or an export whose filter matched nothing) proves nothing: verify says
    so and exits 1, rather than "OK: 0 receipts verified"."""
    path = tmp_path / "handed-over.jsonl"
    path.write_text(content)
    done = _consent("verify", "--file", str(path))
    assert done.returncode == 1, done.stdout
    assert "the file holds no receipts and no chain head: there is nothing to verify" in done.stdout
    assert not done.stdout.startswith("OK")

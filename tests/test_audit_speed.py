"""Export and verification in batches of row values give what the row-by-row way gives."""

from __future__ import annotations

import importlib
import io
import json
import multiprocessing.spawn
import pickle
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from consent.audit import export, verify_file, verify_store
from consent.audit import parallel as audit_parallel
from consent.audit.chain import _Chain
from consent.audit.fast import _Fast
from consent.audit.lines import _line
from consent.audit.parallel import _Worker
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
            "(seq 6): hash does not match the row's seq, prev_hash and signature",
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
    result = verify_store(open_store(url, SIGNER), SIGNER)
    assert (result.count, result.finding_count) == (29, 1)  # read on after the finding
    (tmp_path / "b").mkdir()
    url = _store(tmp_path / "b")
    message = _finding(url, "UPDATE consent_receipts SET hash = 'x' WHERE seq = 25")
    assert "(seq 25): hash does not match" in message
    result = verify_store(open_store(url, SIGNER), SIGNER)
    # The row itself, and the next one, whose prev_hash no longer links to it.
    assert [f.seq for f in result.findings] == [25, 26]


# --------------------------------------------------------------------------- two processes


def _parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes from 20 receipts on, in chunks of 8 seqs, the worker's from the second."""
    monkeypatch.setattr(audit_parallel, "_PARALLEL_MIN_ROWS", 20)
    monkeypatch.setattr(audit_parallel, "_CHUNK_ROWS", 8)
    monkeypatch.setattr(audit_parallel, "_HEAD_START", 1)


@pytest.fixture(scope="module")
def log_60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("log60")
    _store(base, 60)
    return base / "log.db"


def _copy(log: Path, tmp_path: Path) -> str:
    target = tmp_path / "copy.db"
    shutil.copyfile(log, target)
    return f"sqlite:///{target}"


def _export_file(url: str, path: Path, workers: int, signer: ReceiptSigner | None) -> bytes:
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("")
        assert export(open_store(url, SIGNER), out, signer=signer, workers=workers) == 60
    return path.read_bytes()


def test_export_in_two_processes_writes_the_same_file(
    log_60: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    # Unusual rows in chunks of both processes (chunks: ..8, 9..16 the worker's, 17..24, ...).
    execute_sql(
        url,
        "UPDATE consent_receipts SET signature = 'x' || signature WHERE seq IN (5, 12, 41)",
        "UPDATE consent_receipts SET body = CAST(body AS BLOB) WHERE seq = 13",
    )
    taken = _taken(monkeypatch)
    for signer in (SIGNER, None):
        one = _export_file(url, tmp_path / "one.jsonl", 1, signer)
        assert taken == []
        two = _export_file(url, tmp_path / "two.jsonl", 2, signer)
        assert taken == [8, 8, 8, 4]  # the worker made its four chunks (9..16, ..., 57..60)
        taken.clear()
        assert one == two
        assert one.count(b"\n") == 61
        text = io.StringIO()  # not a file
        export(open_store(url, SIGNER), text, signer=signer, workers=2)
        assert text.getvalue().encode() == one
        appended = tmp_path / "appended.jsonl"  # appending
        appended.write_bytes(b"first\n")
        with open(appended, "a", encoding="utf-8", newline="") as out:
            export(open_store(url, SIGNER), out, signer=signer, workers=2)
        assert appended.read_bytes() == b"first\n" + one
        assert taken == [8, 8, 8, 4] * 2
        taken.clear()


def _taken(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each chunk the worker made, as this process takes them."""
    taken: list[int] = []
    take = _Worker.next

    def record(worker: _Worker, **options: Any) -> Any:
        result = take(worker, **options)
        if result is not None:
            taken.append(result[0])
        return result

    monkeypatch.setattr(_Worker, "next", record)
    return taken


def test_export_chunks_do_not_come_back_through_the_pool(
    log_60: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker writes its chunks into the output file itself, at the offsets this process
    gives it: what comes back through the pool is each chunk's size, and no temporary file
    is made."""
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    spools = tmp_path / "spools"
    spools.mkdir()
    monkeypatch.setenv("TMPDIR", str(spools))  # (read by the worker when it starts)
    one = _export_file(url, tmp_path / "one.jsonl", 1, SIGNER)
    results: list[Any] = []
    take = _Worker.next

    def record(worker: _Worker, **options: Any) -> Any:
        result = take(worker, **options)
        if result is not None:
            results.append(result)
        return result

    monkeypatch.setattr(_Worker, "next", record)
    assert _export_file(url, tmp_path / "two.jsonl", 2, SIGNER) == one
    assert [len(pickle.dumps(result)) < 100 for result in results] == [True] * 4
    assert sum(size for _, size in results) < len(one) / 2
    assert list(spools.iterdir()) == []


def test_export_when_the_worker_cannot_write_the_file(
    log_60: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output file replaced at its path before the worker opens it: the worker writes
    nothing (it is not the file this process writes), and its chunks are made here."""
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    one = _export_file(url, tmp_path / "one.jsonl", 1, SIGNER)
    path = tmp_path / "two.jsonl"
    take = _Worker.next
    replaced: list[bool] = []

    def replace(worker: _Worker, **options: Any) -> Any:
        if not replaced:  # the name gets another file before the worker writes
            (tmp_path / "other.jsonl").write_bytes(b"")
            (tmp_path / "other.jsonl").replace(path)
            replaced.append(True)
        return take(worker, **options)

    monkeypatch.setattr(_Worker, "next", replace)
    with open(path, "w+", encoding="utf-8", newline="") as out:
        assert export(open_store(url, SIGNER), out, signer=SIGNER, workers=2) == 60
        out.seek(0)
        assert out.buffer.read() == one
    assert path.read_bytes() == b""


def test_an_export_stopped_midway_leaves_no_files(
    log_60: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    spools = tmp_path / "spools"
    spools.mkdir()
    monkeypatch.setenv("TMPDIR", str(spools))
    blocks = audit_parallel._export_blocks
    calls: list[int] = []

    def failing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:  # this process's third chunk: the worker has made some ahead
            raise OSError("disk full")
        return blocks(*args)

    monkeypatch.setattr(audit_parallel, "_export_blocks", failing)
    with pytest.raises(OSError, match="disk full"):
        _export_file(url, tmp_path / "two.jsonl", 2, SIGNER)
    assert list(spools.iterdir()) == []


def test_export_when_the_worker_fails(
    log_60: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    one = _export_file(url, tmp_path / "one.jsonl", 1, SIGNER)
    store = open_store(url, SIGNER)
    store.url = f"sqlite:///{tmp_path / 'missing.db'}"  # the worker cannot open it
    with open(tmp_path / "two.jsonl", "w", encoding="utf-8", newline="") as out:
        assert export(store, out, signer=SIGNER, workers=2) == 60
    assert (tmp_path / "two.jsonl").read_bytes() == one


def _verify_both(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    one = verify_store(open_store(url, SIGNER), SIGNER, workers=1)
    joined: list[bool] = []
    join = _Chain.join

    def record(chain: _Chain, *args: Any) -> bool:
        joined.append(join(chain, *args))
        return joined[-1]

    monkeypatch.setattr(_Chain, "join", record)
    two = verify_store(open_store(url, SIGNER), SIGNER, workers=2)
    if two.ok:
        assert joined == [True] * 4  # the worker's four chunks, taken as checked there
    assert (one.ok, one.count, one.message()) == (two.ok, two.count, two.message())
    assert one.findings == two.findings
    return two.message()


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        ((), "OK: 60 receipts verified"),
        # in a chunk of the worker's (9..16, 25..32, 41..48), first and second half of the log
        (
            ("UPDATE consent_receipts SET event = 'x' WHERE seq = 14",),
            "(seq 14): event differs from the signed body",
        ),
        (
            ("UPDATE consent_receipts SET body = body || ' ' WHERE seq = 45",),
            "(seq 45): signature does not match the receipt body (receipt edited)",
        ),
        (("DELETE FROM consent_receipts WHERE seq = 41",), "(seq 42): seq 41 missing"),
        (("DELETE FROM consent_receipts WHERE seq = 48",), "(seq 49): seq 48 missing"),
        (
            ("DELETE FROM consent_receipts WHERE seq BETWEEN 9 AND 16",),
            "(seq 17): seq 9..16 missing",
        ),
        (("UPDATE consent_receipts SET hash = 'h' WHERE seq = 32",), "(seq 32): hash does not"),
        # in one of this process's chunks, and at the edges of the log
        (("UPDATE consent_receipts SET prev_hash = 'p' WHERE seq = 20",), "(seq 20): hash"),
        (("DELETE FROM consent_receipts WHERE seq = 60",), "log truncated"),
        (("UPDATE consent_chain SET head_seq = 50",), "chain head signature does not verify"),
        # statistics columns, in a chunk of the worker's and in one of this process's
        (
            ("UPDATE consent_stats SET language = 'xx' WHERE seq = 14",),
            "(seq 14): statistics columns differ from the signed body: language",
        ),
        (("DELETE FROM consent_stats WHERE seq = 45",), "(seq 45): no statistics row"),
        (
            ("UPDATE consent_stats SET seq = 0 WHERE seq = 20",),
            "(seq 20): no statistics row (consent_stats) for this receipt",
        ),
    ],
)
def test_verify_in_two_processes_finds_the_same(
    log_60: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    statements: tuple[str, ...],
    expected: str,
) -> None:
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    if statements:
        execute_sql(url, *statements)
    assert expected in _verify_both(url, monkeypatch)


def test_verify_when_the_worker_fails(
    log_60: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    execute_sql(url, "UPDATE consent_receipts SET event = 'x' WHERE seq = 46")
    store = open_store(url, SIGNER)
    store.url = f"sqlite:///{tmp_path / 'missing.db'}"
    result = verify_store(store, SIGNER, workers=2)
    assert "(seq 46): event differs" in result.message()
    assert (result.count, result.finding_count) == (60, 1)


def test_without_a_worker_process(
    log_60: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No process can be started (here: a missing executable): everything in this process."""
    _parallel(monkeypatch)
    url = _copy(log_60, tmp_path)
    one = _export_file(url, tmp_path / "one.jsonl", 1, SIGNER)
    missing = str(tmp_path / "no-python")
    monkeypatch.setattr(multiprocessing.spawn, "get_executable", lambda: missing)
    taken = _taken(monkeypatch)
    assert _export_file(url, tmp_path / "two.jsonl", 2, SIGNER) == one
    execute_sql(url, "UPDATE consent_receipts SET event = 'x' WHERE seq = 46")
    result = verify_store(open_store(url, SIGNER), SIGNER, workers=2)
    assert "(seq 46): event differs" in result.message()
    assert (result.count, result.finding_count) == (60, 1)
    assert taken == []


def test_a_purge_during_a_two_process_export_starts_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _parallel(monkeypatch)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    base = 1_700_000_000

    async def fill() -> None:
        store = open_store(url, SIGNER)
        try:
            for i in range(60):
                await store.append(make_receipt(subject_id=f"s-{i}", timestamp=base + i))
        finally:
            await store.close()

    anyio.run(fill)
    export_module = importlib.import_module("consent.audit.export")
    two_process = export_module._export_parallel
    runs: list[int] = []

    def purged_meanwhile(*args: Any, **kwargs: Any) -> int:
        count = two_process(*args, **kwargs)
        runs.append(count)
        assert open_store(url, SIGNER).purge(base + 10) == 10  # the operator's purge
        return count

    monkeypatch.setattr(export_module, "_export_parallel", purged_meanwhile)
    path = tmp_path / "export.jsonl"
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("")
        assert export(open_store(url, SIGNER), out, signer=SIGNER, workers=2) == 50
    assert runs == [60]  # the two-process export ran once and was then redone
    monkeypatch.setattr(export_module, "_export_parallel", two_process)
    again = tmp_path / "again.jsonl"
    with open(again, "w", encoding="utf-8", newline="") as out:
        assert export(open_store(url, SIGNER), out, signer=SIGNER, workers=1) == 50
    assert path.read_bytes() == again.read_bytes()
    result = verify_file(path, SIGNER)
    assert result.ok, result.message
    assert result.count == 50

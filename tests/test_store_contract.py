"""What every receipt store does, whatever keeps it: each test runs against the memory store, a
real SQLite file and a real PostgreSQL server.

What only one backend has (SQLite's WAL syncs and lock file, PostgreSQL's chain lock, timeouts
and privileges) is tested in ``test_store_sqlite.py`` and ``test_store_postgres.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from consent.audit import verify_store
from consent.receipts import GENESIS_HASH, ReceiptSigner
from consent.store import ReceiptStore, StoreUnavailable, open_store
from consent.store.base import VALUES_BATCH, ReceiptRow

from .conftest import TEST_KEY, append_from_processes, execute_sql, make_receipt
from .pg import free_port

pytestmark = pytest.mark.anyio

SIGNER = ReceiptSigner([TEST_KEY])

POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


def _fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        # A named memory store: a second open_store of the URL sees the same log, as a second
        # process would see the same file or database.
        return f"memory://contract-{uuid.uuid4().hex}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/consent.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["memory", "sqlite", POSTGRES])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each backend."""
    return _fresh_url(request, tmp_path)


@pytest.fixture(params=["sqlite", POSTGRES])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store that other processes can open too (not the memory store)."""
    return _fresh_url(request, tmp_path)


@pytest.fixture(params=["sqlite", POSTGRES])
def unavailable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that cannot be reached: a file where its directory should be, or a server
    address where nothing listens (the memory store cannot be unavailable)."""
    if request.param == "sqlite":
        blocker = tmp_path / "data"
        blocker.write_text("a file where the directory should be")
        return f"sqlite:///{blocker}/consent.db"
    request.getfixturevalue("pg_server")  # PostgreSQL installed (else skipped)
    return f"postgresql://postgres@127.0.0.1:{free_port()}/consent?connect_timeout=2"


def _open(url: str) -> ReceiptStore:
    return open_store(url, SIGNER)


# --------------------------------------------------------------------------- append and read


async def test_append_and_read_back(url: str) -> None:
    store = _open(url)
    assert await store.open()
    try:
        first = await store.append(make_receipt(subject_id="alice"))
        second = await store.append(make_receipt(subject_id="bob", event="refused", granted=[]))
        third = await store.append(make_receipt(subject_id="alice", event="updated"))
        assert (first.seq, second.seq, third.seq) == (1, 2, 3)
        assert first.prev_hash == GENESIS_HASH
        assert second.prev_hash == first.hash
        assert third.prev_hash == second.hash
        assert SIGNER.verify(second.body, second.kid, second.signature)

        assert await store.latest_for_subject("alice") == third
        assert await store.latest_for_subject("nobody") is None
        assert await store.get(second.receipt_id) == second
        assert await store.get("00000000-0000-4000-8000-000000000000") is None
    finally:
        await store.close()

    # Durable: a new store object (another process, after a restart) sees the same log.
    again = _open(url)
    assert again.count() == 3
    assert [r.receipt_id for r in again.iter_rows()] == [
        first.receipt_id,
        second.receipt_id,
        third.receipt_id,
    ]
    assert [r.receipt for r in again.iter_rows()] == [first.receipt, second.receipt, third.receipt]
    assert verify_store(again, SIGNER).ok


async def test_the_chain_head_is_signed_and_follows_each_append(url: str) -> None:
    store = _open(url)
    try:
        assert await store.open()
        assert store.chain_state().head is None
        for n in range(1, 4):
            stored = await store.append(make_receipt())
            head = store.chain_state().head
            assert head is not None
            assert (head.seq, head.hash) == (n, stored.hash)
            assert head.verify(SIGNER)
            assert not head.verify(ReceiptSigner(["another-key"]))
        assert store.chain_state().checkpoint is None
    finally:
        await store.close()


async def test_the_body_is_stored_byte_for_byte(url: str) -> None:
    store = _open(url)
    try:
        stored = await store.append(
            make_receipt(user_agent='Mözilla/5.0 ✓ "quoted" \\ back', page="https://e.org/ü")
        )
    finally:
        await store.close()
    (row,) = store.iter_raw()
    assert row.body == stored.body
    assert row == ReceiptRow.from_stored(stored)
    assert verify_store(store, SIGNER).ok


async def test_a_rejected_append_writes_nothing(url: str) -> None:
    store = _open(url)
    try:
        first = await store.append(make_receipt())
        with pytest.raises(ValueError, match=r"rejected|duplicate"):
            await store.append(make_receipt(receipt_id=first.receipt_id))  # duplicate id
        assert store.count() == 1
        head = store.chain_state().head
        assert head is not None
        assert head.seq == 1
        second = await store.append(make_receipt())
        assert (second.seq, second.prev_hash) == (2, first.hash)
    finally:
        await store.close()
    assert verify_store(store, SIGNER).ok


async def test_concurrent_tasks_keep_one_chain(url: str) -> None:
    # 250 at once: a backend with group commit writes most of them in one batch.
    store = _open(url)
    try:
        async with anyio.create_task_group() as tg:
            for i in range(250):
                tg.start_soon(store.append, make_receipt(subject_id=f"s{i}"))
    finally:
        await store.close()
    assert store.count() == 250
    rows = list(store.iter_rows())
    assert [r.seq for r in rows] == list(range(1, 251))
    assert len({r.receipt.subject_id for r in rows}) == 250
    head = store.chain_state().head
    assert head is not None
    assert (head.seq, head.hash) == (250, rows[-1].hash)
    assert verify_store(store, SIGNER).ok


def test_two_processes_share_one_chain(shared_url: str) -> None:
    append_from_processes(shared_url, TEST_KEY, processes=2, each=100)
    store = _open(shared_url)
    rows = list(store.iter_rows())
    assert [r.seq for r in rows] == list(range(1, 201))
    assert {r.receipt.subject_id.split("-")[0] for r in rows} == {"p0", "p1"}
    result = verify_store(store, SIGNER)
    assert result.ok, result.message()
    assert result.count == 200


async def test_a_visitors_history(url: str) -> None:
    store = _open(url)
    try:
        await store.open()
        mine = [
            await store.append(make_receipt(subject_id="mine", timestamp=1_700_000_000 + i))
            for i in range(3)
        ]
        await store.append(make_receipt(subject_id="someone-else"))
        found = await store.history_for_subject("mine")
        assert [s.receipt_id for s in found] == [s.receipt_id for s in reversed(mine)]
        assert [s.receipt_id for s in await store.history_for_subject("mine", 2)] == [
            mine[2].receipt_id,
            mine[1].receipt_id,
        ]
        assert await store.history_for_subject("nobody") == []
        assert [r.seq for r in store.iter_subject("mine")] == [s.seq for s in mine]
    finally:
        await store.close()


# --------------------------------------------------------------------------- reading the log


async def _fill(store: ReceiptStore, count: int) -> None:
    try:
        for i in range(count):
            event = "refused" if i % 3 == 0 else "given"
            await store.append(make_receipt(timestamp=1000 + i, event=event))
    finally:
        await store.close()


async def test_filters_and_streaming(url: str) -> None:
    store = _open(url)
    await _fill(store, 60)
    assert store.count() == 60
    assert [r.seq for r in store.iter_raw()] == list(range(1, 61))
    window = list(store.iter_rows(since=1010, until=1020))
    assert [r.receipt.timestamp for r in window] == list(range(1010, 1020))
    refused = list(store.iter_raw(event="refused"))
    assert len(refused) == 20
    assert {r.event for r in refused} == {"refused"}
    assert [r.seq for r in store.iter_raw(max_seq=3)] == [1, 2, 3]
    assert [r.seq for r in store.iter_raw(since=1050, event="given", max_seq=55)] == [
        51,
        53,
        54,
    ]


async def test_iter_values_gives_the_rows_of_iter_raw(url: str) -> None:
    store = _open(url)
    await _fill(store, 60)
    rows = list(store.iter_raw())
    batches = list(store.iter_values())
    assert all(0 < len(batch) <= VALUES_BATCH for batch in batches)
    assert [store.row_from_values(values) for batch in batches for values in batch] == rows
    # the same filters as iter_raw, and min_seq
    filtered = [
        store.row_from_values(values)
        for batch in store.iter_values(since=1010, until=1040, event="given", max_seq=30)
        for values in batch
    ]
    assert filtered == list(store.iter_raw(since=1010, until=1040, event="given", max_seq=30))
    assert [
        store.row_from_values(values).seq
        for batch in store.iter_values(min_seq=57)
        for values in batch
    ] == [57, 58, 59, 60]


async def test_iter_values_with_statistics_rows(url: str) -> None:
    """``stats=True``: each row followed by its statistics row (None where it has none), in
    the same query; a store that keeps no statistics columns says so."""
    store = _open(url)
    await _fill(store, 12)
    if url.startswith("memory:"):
        with pytest.raises(ValueError, match="no statistics columns"):
            store.iter_values(stats=True)
        return
    execute_sql(url, "DELETE FROM consent_stats WHERE seq = 5")
    rows = [values for batch in store.iter_values(max_seq=8, stats=True) for values in batch]
    assert [store.row_from_values(values[:10]) for values in rows] == list(
        store.iter_raw(max_seq=8)
    )
    assert [len(values) for values in rows] == [19] * 8
    assert [values[0] for values in rows if values[10] is None] == [5]
    for values in rows:
        if values[10] is not None:  # ts, subject_id, event as the receipt's columns
            assert tuple(values[10:13]) == (values[3], values[2], values[4])


# --------------------------------------------------------------------------- purge


async def test_purge_leaves_a_signed_checkpoint_and_a_verifiable_log(url: str) -> None:
    store = _open(url)
    try:
        # Timestamps out of order, as with several writers: a purge deletes a prefix only.
        stamps = [100, 200, 150, 300, 250]
        stored = [await store.append(make_receipt(timestamp=t)) for t in stamps]

        assert store.purge(before=50) == 0
        assert store.chain_state().checkpoint is None
        plan = store.purge_plan(before=260)
        assert (plan.count, plan.first, plan.last, plan.oldest, plan.newest) == (
            3,
            1,
            3,
            100,
            200,
        )
        assert store.count() == 5  # a plan deletes nothing
        assert store.purge(before=200) == 1  # seq 1 only; seq 2 is not older than 200
        assert store.purge(before=260) == 2  # seq 2 and 3; seq 5 (250) follows seq 4 (300)
        checkpoint = store.chain_state().checkpoint
        assert checkpoint is not None
        assert (checkpoint.seq, checkpoint.hash) == (3, stored[2].hash)
        assert checkpoint.count == 3
        assert checkpoint.before == 260
        assert checkpoint.verify(SIGNER)
        assert [r.seq for r in store.iter_rows()] == [4, 5]
        result = verify_store(store, SIGNER)
        assert result.ok, result.message()
        assert result.count == 2

        later = await store.append(make_receipt(timestamp=400))
        assert later.seq == 6
        assert verify_store(store, SIGNER).ok

        assert store.purge(before=10**10) == 3  # everything
        assert store.count() == 0
        assert store.chain_state().checkpoint.count == 6  # type: ignore[union-attr]
        assert verify_store(store, SIGNER).ok
        again = await store.append(make_receipt())
        assert (again.seq, again.prev_hash) == (7, later.hash)
    finally:
        await store.close()
    assert verify_store(store, SIGNER).ok


# --------------------------------------------------------------------------- faults


async def test_an_unavailable_store_raises_store_unavailable(unavailable_url: str) -> None:
    store = open_store(unavailable_url, SIGNER, timeout=2)
    try:
        assert await store.open() is False  # logged, not raised: the site keeps serving
        with anyio.fail_after(30):
            with pytest.raises(StoreUnavailable):
                await store.append(make_receipt())
            with pytest.raises(StoreUnavailable):
                await store.latest_for_subject("subject-1")
            with pytest.raises(StoreUnavailable):
                await store.history_for_subject("subject-1")
    finally:
        await store.close()
    # The command line's side: an error, and never a new empty log.
    with pytest.raises(StoreUnavailable):
        store.count()
    with pytest.raises(StoreUnavailable):
        list(store.iter_raw())
    with pytest.raises(StoreUnavailable):
        store.chain_state()


async def test_an_unreadable_row_is_a_store_fault(shared_url: str) -> None:
    store = _open(shared_url)
    try:
        stored = await store.append(make_receipt())
        execute_sql(shared_url, "UPDATE consent_receipts SET body = 'not json' WHERE seq = 1")
        with pytest.raises(StoreUnavailable, match="consent verify"):
            await store.get(stored.receipt_id)
        with pytest.raises(StoreUnavailable, match="consent verify"):
            await store.latest_for_subject(stored.receipt.subject_id)
    finally:
        await store.close()
    result = verify_store(store, SIGNER)
    assert (result.ok, result.first_bad) == (False, stored.receipt_id)

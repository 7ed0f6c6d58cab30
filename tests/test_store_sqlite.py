"""The SQLite receipt store, on real files: what only it does (what every store does is in
``test_store_contract.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from consent.audit import verify_store
from consent.receipts import ReceiptSigner
from consent.store import StoreUnavailable, open_store
from consent.store.sqlite import SQLiteStore, path_from_url

from .conftest import TEST_KEY, make_receipt
from .helpers import commit_under_way

pytestmark = pytest.mark.anyio

SIGNER = ReceiptSigner([TEST_KEY])


def _url(path: Path) -> str:
    return f"sqlite:///{path}"  # absolute path -> sqlite:////...


def _sqlite(url: str) -> SQLiteStore:
    store = open_store(url, SIGNER)
    assert isinstance(store, SQLiteStore)
    return store


async def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = _sqlite(_url(tmp_path / "c.db"))
    try:
        await store.append(make_receipt())
        assert store._conn is not None
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # The web side commits with NORMAL and syncs the WAL file itself (next test); the
        # command line's connections sync inside COMMIT.
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store._defer_sync
        with store._sync_conn() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        await store.close()


def _lock_is_free(path: Path) -> bool:
    import fcntl

    fd = os.open(f"{path}-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases the lock if it was taken here
    return True


def _before_each_sync(monkeypatch: pytest.MonkeyPatch, before: Callable[[int], None]) -> None:
    """Call ``before(fd)`` ahead of every real ``os.fdatasync`` (it may raise instead)."""
    real_sync = os.fdatasync

    def wrapped(fd: int) -> None:
        before(fd)
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", wrapped)


async def test_each_commit_syncs_the_wal_file_after_the_write_lock_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sync.db"
    store = _sqlite(_url(path))
    syncs: list[tuple[str, bool, int]] = []

    def spy(fd: int) -> None:
        # Which file, whether the next writer may go ahead, and how many receipts are in the
        # log as another connection sees it (the commit is done before the sync).
        syncs.append((os.readlink(f"/proc/self/fd/{fd}"), _lock_is_free(path), store.count()))

    _before_each_sync(monkeypatch, spy)
    try:
        for _ in range(3):
            await store.append(make_receipt())
        assert syncs == [(f"{path}-wal", True, n) for n in (1, 2, 3)]
        # A group commit is synced once.
        await asyncio.gather(*(store.append(make_receipt()) for _ in range(5)))
        assert len(syncs) == 4
        assert syncs[-1][2] == 8
    finally:
        await store.close()


async def test_a_failed_wal_sync_fails_its_batch_and_the_store_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _sqlite(_url(tmp_path / "eio.db"))
    failures = [OSError(5, "Input/output error")]

    def failing(fd: int) -> None:
        if failures:
            raise failures.pop()

    _before_each_sync(monkeypatch, failing)
    try:
        with pytest.raises(StoreUnavailable, match="syncing the WAL failed") as failed:
            await store.append(make_receipt(subject_id="unsure"))
        assert failed.value.maybe_recorded
        assert store._conn is None  # dropped, reconnected by the next append
        # Committed but not known to be on disk: the visitor was told it failed (no cookie),
        # and the log keeps it, still a valid chain.
        again = await store.append(make_receipt(subject_id="next"))
        assert again.seq == 2
        assert verify_store(store, SIGNER).ok
    finally:
        await store.close()


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert path_from_url("sqlite:///consent.db") == "consent.db"
    assert path_from_url("sqlite:///data/consent.db") == "data/consent.db"
    assert path_from_url("sqlite:////var/lib/consent.db") == "/var/lib/consent.db"
    for bad in ("sqlite://consent.db", "sqlite:///", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match="sqlite"):
            path_from_url(bad)
    with pytest.raises(ValueError, match="unsupported receipt store URL"):
        open_store("mysql://root:hunter2@db/consent", SIGNER)
    with pytest.raises(ValueError, match="unsupported") as info:
        open_store("redis://user:hunter2@host/0")
    assert "hunter2" not in str(info.value)

    # A relative path is relative to the working directory; missing directories are created.
    monkeypatch.chdir(tmp_path)

    async def record() -> None:
        store = open_store("sqlite:///var/receipts.db", SIGNER)
        try:
            await store.append(make_receipt())
        finally:
            await store.close()

    anyio.run(record)
    assert (tmp_path / "var" / "receipts.db").is_file()


async def test_appends_during_a_commit_go_into_the_next_one_together(tmp_path: Path) -> None:
    store = _sqlite(_url(tmp_path / "g.db"))
    batches: list[int] = []
    commit = store._commit_locked

    def counting(batch: list, signer: ReceiptSigner) -> None:  # type: ignore[type-arg]
        batches.append(len(batch))
        commit(batch, signer)

    store._commit_locked = counting  # type: ignore[method-assign]
    try:
        # Appends that arrive together are committed together.
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(store.append, make_receipt(subject_id=f"a{i}"))
        assert batches == [10]
        # Appends that arrive while a commit runs share the next one.
        store._lock.acquire()  # the writer thread's commit waits until released
        try:
            first = asyncio.ensure_future(store.append(make_receipt(subject_id="first")))
            await commit_under_way(store, 0)
            rest = [
                asyncio.ensure_future(store.append(make_receipt(subject_id=f"b{i}")))
                for i in range(39)
            ]
            await commit_under_way(store, 39)
        finally:
            store._lock.release()
        with anyio.fail_after(10):
            stored = [await first] + [await task for task in rest]
        assert batches == [10, 1, 39]
        assert [s.seq for s in stored] == list(range(11, 51))
        assert (await store.append(make_receipt())).seq == 51  # and it is not stuck
    finally:
        await store.close()
    assert verify_store(store, SIGNER).ok


@pytest.mark.parametrize("cancel_when", ["waiting", "committing", "all waiting"])
async def test_a_cancelled_append_is_recorded_only_if_its_commit_had_begun(
    tmp_path: Path, cancel_when: str
) -> None:
    """A request cancelled while its append waits for the next commit records nothing; one
    cancelled while its batch is being committed is recorded with the others. Either way the
    other appends are answered and the store goes on."""
    store = _sqlite(_url(tmp_path / "x.db"))
    try:
        await store.append(make_receipt(subject_id="before"))
        store._lock.acquire()  # the writer thread's commit waits until released
        try:
            first = asyncio.ensure_future(store.append(make_receipt(subject_id="first")))
            await commit_under_way(store, 0)
            waiting = asyncio.ensure_future(store.append(make_receipt(subject_id="waiting")))
            last = asyncio.ensure_future(store.append(make_receipt(subject_id="last")))
            await commit_under_way(store, 2)
            cancelled = {
                "waiting": [waiting],
                "committing": [first],
                "all waiting": [waiting, last],
            }[cancel_when]
            for task in cancelled:
                task.cancel()
            await asyncio.sleep(0.01)
            still = [e.receipt.subject_id for e in store._pending]
            assert still == {"waiting": ["last"], "committing": ["waiting", "last"]}.get(
                cancel_when, []
            )
        finally:
            store._lock.release()
        with anyio.fail_after(10):
            for task in (first, waiting, last):
                if task in cancelled:
                    with pytest.raises(asyncio.CancelledError):
                        await task
                else:
                    assert (await task).receipt.subject_id in ("first", "waiting", "last")
            await store.append(make_receipt(subject_id="after"))
        assert not store._committing
    finally:
        await store.close()
    recorded = [r.receipt.subject_id for r in store.iter_rows()]
    assert (
        recorded
        == {
            "waiting": ["before", "first", "last", "after"],
            "committing": ["before", "first", "waiting", "last", "after"],
            "all waiting": ["before", "first", "after"],
        }[cancel_when]
    )
    assert verify_store(store, SIGNER).ok


async def test_appends_go_on_after_a_commit_failed_in_the_writer(tmp_path: Path) -> None:
    """The writer thread raising outside of SQLite (not a rejected receipt, not an I/O error)
    answers that batch's appends with 503's error and leaves the store working."""
    store = _sqlite(_url(tmp_path / "w.db"))
    commit = store._commit_locked
    calls = 0

    def flaky(batch: list, signer: ReceiptSigner) -> None:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise MemoryError("no memory for the batch")
        commit(batch, signer)

    store._commit_locked = flaky  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreUnavailable, match="no memory for the batch"):
            await store.append(make_receipt(subject_id="lost"))
        assert (await store.append(make_receipt(subject_id="kept"))).seq == 1
    finally:
        await store.close()
    assert [r.receipt.subject_id for r in store.iter_rows()] == ["kept"]


def test_a_store_serves_one_event_loop_after_another(tmp_path: Path) -> None:
    """As test clients and some servers do: each run gets its receipts, none hangs, also when
    the previous loop stopped with a commit under way."""
    store = _sqlite(_url(tmp_path / "loops.db"))

    async def append(subject: str) -> int:
        return (await store.append(make_receipt(subject_id=subject))).seq

    left: list[asyncio.Future[int]] = []

    async def abandon() -> None:
        store._lock.acquire()  # the commit cannot finish before this loop stops
        left.append(asyncio.ensure_future(append("abandoned")))
        await commit_under_way(store, 0)

    try:
        assert asyncio.run(append("one")) == 1
        asyncio.run(abandon())
        assert left[0].cancelled()  # asyncio.run cancelled the request when it stopped
        store._lock.release()  # the abandoned batch is committed; nobody hears of it
        assert asyncio.run(asyncio.wait_for(append("two"), 10)) == 3
    finally:
        asyncio.run(store.close())
    assert [r.receipt.subject_id for r in store.iter_rows()] == ["one", "abandoned", "two"]


async def test_unwritable_location_then_recovery(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be")
    url = _url(blocker / "consent.db")
    store = _sqlite(url)
    try:
        assert await store.open() is False  # logged, not raised: the site keeps serving
        with pytest.raises(StoreUnavailable, match=r"consent\.db"):
            await store.append(make_receipt())
        with pytest.raises(StoreUnavailable):
            await store.latest_for_subject("subject-1")

        # The operator fixes the location: recording resumes without a restart.
        blocker.unlink()
        stored = await store.append(make_receipt())
        assert stored.seq == 1
    finally:
        await store.close()
    assert verify_store(store, SIGNER).ok


def test_cli_side_never_creates_a_database(tmp_path: Path) -> None:
    store = _sqlite(_url(tmp_path / "typo.db"))
    with pytest.raises(StoreUnavailable, match="no receipt database"):
        store.count()
    with pytest.raises(StoreUnavailable):
        list(store.iter_rows())
    assert not (tmp_path / "typo.db").exists()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _append_as_nobody(url: str) -> int:
    """In a forked child without root's privileges: 10 = append refused after a soft open,
    11 = refused at open, 0 = written (wrong), other = crash."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 3
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

            async def attempt() -> int:
                store = open_store(url, SIGNER, timeout=1)
                opened = await store.open()
                try:
                    await store.append(make_receipt())
                except StoreUnavailable:
                    return 10 if opened else 11
                finally:
                    await store.close()
                return 0

            code = asyncio.run(attempt())
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("dir_writable", [True, False], ids=["file-ro", "file-and-dir-ro"])
def test_read_only_file_is_unavailable_and_untouched(dir_writable: bool) -> None:
    base = Path(tempfile.mkdtemp(prefix="consent-ro-"))
    try:
        base.chmod(0o755)
        folder = base / "db"
        folder.mkdir()
        path = folder / "consent.db"
        url = _url(path)

        async def seed() -> None:
            store = open_store(url, SIGNER)
            try:
                for _ in range(3):
                    await store.append(make_receipt())
            finally:
                await store.close()

        anyio.run(seed)
        assert not Path(f"{path}-wal").exists()  # checkpointed on close
        before = _digest(path)
        path.chmod(0o444)
        folder.chmod(0o777 if dir_writable else 0o555)

        if os.geteuid() == 0:
            # root writes through file modes: try as an unprivileged user instead.
            code = _append_as_nobody(url)
            assert code in (10, 11), code
            if dir_writable:
                assert code == 10  # opened softly, refused to record
        else:

            async def attempt() -> None:
                store = open_store(url, SIGNER, timeout=1)
                try:
                    await store.open()
                    with pytest.raises(StoreUnavailable):
                        await store.append(make_receipt())
                finally:
                    await store.close()

            anyio.run(attempt)

        assert _digest(path) == before
        folder.chmod(0o755)
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("SELECT COUNT(*) FROM consent_receipts").fetchone()[0] == 3
        finally:
            conn.close()
    finally:
        for p in (base, *base.rglob("*")):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def _exists(path: str | Path) -> bool:
    return Path(path).exists()


async def test_appends_queue_on_the_lock_file(tmp_path: Path) -> None:
    import fcntl
    import threading
    import time

    path = tmp_path / "queue.db"
    store = SQLiteStore(f"sqlite:///{path}", ReceiptSigner([TEST_KEY]))
    await store.append(make_receipt())
    lock = Path(f"{path}-lock")
    assert _exists(lock)

    # Another writer holds the queue: the append waits for it, then records.
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.3, os.close, (fd,)).start()
    started = time.monotonic()
    stored = await store.append(make_receipt())
    assert time.monotonic() - started >= 0.25
    assert stored.seq == 2
    await store.close()


async def test_appends_go_ahead_without_the_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nolock.db"
    real_open = os.open

    def refuse_lock(name: str, *args: object) -> int:
        if str(name).endswith("-lock"):
            raise PermissionError(name)
        return real_open(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse_lock)
    store = SQLiteStore(f"sqlite:///{path}", ReceiptSigner([TEST_KEY]))
    assert (await store.append(make_receipt())).seq == 1
    assert not _exists(f"{path}-lock")
    await store.close()

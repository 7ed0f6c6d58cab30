"""The PostgreSQL receipt store, against a real server: what only it does (what every store does
is in ``test_store_contract.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import psycopg
import pytest
from psycopg import sql as psql

from consent import ConsentMiddleware
from consent.audit import verify_store
from consent.receipts import ReceiptSigner
from consent.store import StoreUnavailable, open_store
from consent.store import postgres as pg_store
from consent.store.postgres import PostgresStore

from .conftest import TEST_KEY, make_receipt
from .helpers import EXAMPLE_POLICY, commit_under_way
from .pg import ExternalPg, PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

SIGNER = ReceiptSigner([TEST_KEY])


@pytest.fixture
def own_pg_server(pg_server: PgServer | ExternalPg) -> PgServer:
    """The test server, for tests that stop, freeze or restart it (skipped on an external one)."""
    if isinstance(pg_server, ExternalPg):
        pytest.skip("cannot stop, freeze or restart an external PostgreSQL server")
    return pg_server


def _store(url: str, timeout: float = 5.0) -> PostgresStore:
    store = open_store(url, SIGNER, timeout=timeout)
    assert isinstance(store, PostgresStore)
    return store


async def test_appends_waiting_for_the_chain_lock_read_the_position_after_it(
    pg_url: str,
) -> None:
    # Two store instances (two servers) append while a third party holds the chain lock. Each
    # must read the chain position only once it holds the lock itself, or the second one would
    # link to a stale head and its receipt be rejected.
    stores = [_store(pg_url), _store(pg_url)]
    first = await stores[0].append(make_receipt(subject_id="before"))
    assert await stores[1].open()  # both ready: they wait for the lock, not for the schema
    results: dict[int, object] = {}

    async def append(i: int) -> None:
        try:
            results[i] = await stores[i].append(make_receipt(subject_id=f"waiting-{i}"))
        except Exception as exc:  # reported below, with the other's outcome
            results[i] = exc

    holder = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        await holder.execute("BEGIN")
        await holder.execute("SELECT pg_advisory_xact_lock(%s)", (pg_store.CHAIN_LOCK,))
        async with anyio.create_task_group() as tg:
            tg.start_soon(append, 0)
            tg.start_soon(append, 1)
            await anyio.sleep(0.5)
            assert results == {}, "an append went ahead while another held the chain lock"
            await holder.execute("COMMIT")
    finally:
        await holder.close()
        for store in stores:
            await store.close()

    stored = sorted(results.values(), key=lambda r: getattr(r, "seq", 0))
    assert [getattr(r, "seq", r) for r in stored] == [2, 3]
    assert [r.prev_hash for r in stored] == [first.hash, stored[0].hash]  # type: ignore[union-attr]
    result = verify_store(stores[0], SIGNER)
    assert result.ok, result.message()


async def test_appends_during_a_commit_share_the_next_and_cancelled_ones_are_dropped(
    pg_url: str,
) -> None:
    """Appends that arrive while a batch is written (here: waiting for the chain lock) go into
    the next one together. A request cancelled while waiting for it records nothing; one
    cancelled while its batch is written is recorded with the others."""
    store = _store(pg_url)
    batches: list[list[str]] = []
    commit = store._commit_batch

    async def spy(batch: list, signer: ReceiptSigner) -> None:  # type: ignore[type-arg]
        batches.append([e.receipt.subject_id for e in batch])
        await commit(batch, signer)

    store._commit_batch = spy  # type: ignore[method-assign]
    holder = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        await store.append(make_receipt(subject_id="before"))
        await holder.execute("BEGIN")
        await holder.execute("SELECT pg_advisory_xact_lock(%s)", (pg_store.CHAIN_LOCK,))
        first = asyncio.ensure_future(store.append(make_receipt(subject_id="first")))
        await commit_under_way(store, 0)
        rest = [
            asyncio.ensure_future(store.append(make_receipt(subject_id=f"b{i}"))) for i in range(5)
        ]
        await commit_under_way(store, 5)
        first.cancel()  # its batch is being written: recorded all the same
        rest[0].cancel()  # waiting for the next batch: dropped
        await asyncio.sleep(0.05)
        await holder.execute("COMMIT")
        with anyio.fail_after(10):
            stored = [await task for task in rest[1:]]
            for task in (first, rest[0]):
                with pytest.raises(asyncio.CancelledError):
                    await task
        assert [s.seq for s in stored] == [3, 4, 5, 6]
        assert batches == [["before"], ["first"], ["b1", "b2", "b3", "b4"]]
        assert not store._committing
    finally:
        await holder.close()
        await store.close()
    subjects = [r.receipt.subject_id for r in store.iter_rows()]
    assert subjects == ["before", "first", "b1", "b2", "b3", "b4"]
    assert verify_store(store, SIGNER).ok


async def test_an_append_that_gets_no_answer_in_time_records_nothing(pg_url: str) -> None:
    """The server accepts the append's first statement but does not answer it within the
    store's timeout (here: another session holds the chain lock): the append fails with 503's
    StoreUnavailable saying nothing was recorded, and nothing is, once the lock is free."""
    store = _store(pg_url, timeout=1.0)
    holder = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        first = await store.append(make_receipt(subject_id="before"))
        await holder.execute("BEGIN")
        await holder.execute("SELECT pg_advisory_xact_lock(%s)", (pg_store.CHAIN_LOCK,))
        with (
            anyio.fail_after(30),
            pytest.raises(StoreUnavailable, match="no answer within 1 s") as failed,
        ):
            await store.append(make_receipt(subject_id="stuck"))
        assert not failed.value.maybe_recorded  # COMMIT was never sent
        await holder.execute("COMMIT")
        # The severed session takes the lock, finds its client gone and rolls back.
        with anyio.fail_after(30):
            second = await store.append(make_receipt(subject_id="after"))
        assert (second.seq, second.prev_hash) == (2, first.hash)
    finally:
        await holder.close()
        await store.close()
    assert [r.receipt.subject_id for r in store.iter_rows()] == ["before", "after"]
    assert verify_store(store, SIGNER).ok


async def _slow_commits(url: str, subject_id: str, seconds: float) -> None:
    """Make the COMMIT of a receipt of ``subject_id`` take ``seconds`` on the server: a
    deferred constraint trigger runs at commit time."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "CREATE FUNCTION consent_test_slow() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$"
        )
        await conn.execute(
            "CREATE CONSTRAINT TRIGGER consent_test_slow AFTER INSERT ON consent_receipts"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            f" WHEN (NEW.subject_id = '{subject_id}') EXECUTE FUNCTION consent_test_slow()"
        )


async def test_a_commit_left_unanswered_may_be_recorded_and_says_so(pg_url: str) -> None:
    """COMMIT was sent and its answer did not come within the timeout: the append fails with
    ``maybe_recorded`` set, and indeed the server commits it afterwards. The chain stays
    valid and the next append continues it."""
    store = _store(pg_url, timeout=2.0)
    try:
        first = await store.append(make_receipt(subject_id="before"))
        await _slow_commits(pg_url, "slow", 5)
        with anyio.fail_after(30), pytest.raises(StoreUnavailable) as failed:
            await store.append(make_receipt(subject_id="slow"))
        assert failed.value.maybe_recorded
        assert "no answer within 2 s" in str(failed.value)
        for _ in range(300):  # the server finishes the commit a few seconds later
            if store.count() == 2:
                break
            await anyio.sleep(0.1)
        late = await store.latest_for_subject("slow")
        assert late is not None, "the unanswered commit was not recorded after all"
        assert (late.seq, late.prev_hash) == (2, first.hash)
        third = await store.append(make_receipt(subject_id="after"))
        assert (third.seq, third.prev_hash) == (3, late.hash)
    finally:
        await store.close()
    assert verify_store(store, SIGNER).ok


async def test_an_unconfirmed_decision_is_answered_503_and_logged_by_receipt_id(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the middleware: the visitor is told the choice was not confirmed and is not in
    effect (no consent cookie); the ERROR log names the receipt, which is in the log later."""
    key = "unconfirmed-test-key-0123456789"
    store = PostgresStore(pg_url, ReceiptSigner([key]), timeout=2.0)

    async def page(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = ConsentMiddleware(page, policy=EXAMPLE_POLICY, secret_key=key, store=store)
    origin = {"Origin": "http://site.test"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=mw), base_url="http://site.test"
        ) as client:
            first = await client.post("/_consent", json={"accept": []}, headers=origin)
            assert first.status_code == 200, first.text
            subject = first.json()["receipt"]["subject_id"]
            await _slow_commits(pg_url, subject, 5)
            caplog.set_level(logging.ERROR, logger="consent")
            with anyio.fail_after(30):
                answer = await client.post(
                    "/_consent",
                    json={"accept": ["analytics"]},
                    headers={**origin, "Cookie": first.headers["set-cookie"].split(";")[0]},
                )
        assert answer.status_code == 503
        assert answer.json()["error"] == "consent could not be recorded"
        assert "did not confirm" in answer.json()["detail"]
        assert "nothing was recorded" not in answer.json()["detail"]
        assert answer.headers["retry-after"]
        assert "set-cookie" not in answer.headers
        for _ in range(300):  # the server finishes the commit a few seconds later
            if store.count() == 2:
                break
            await anyio.sleep(0.1)
        late = await store.latest_for_subject(subject)
        assert late is not None
        assert late.receipt.granted == ["analytics"]
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(late.receipt.receipt_id in m and "may have been recorded" in m for m in logged)
    finally:
        await store.close()
    assert verify_store(store, ReceiptSigner([key])).ok


async def test_a_frozen_server_fails_every_call_in_bounded_time(
    own_pg_server: PgServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_store, "RETRY_INTERVAL", 0.0)
    store = _store(pg_url, timeout=1.0)
    try:
        first = await store.append(make_receipt(subject_id="before"))
        with own_pg_server.frozen():
            # Pooled connections (their liveness check), and new ones, get no answer.
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.append(make_receipt(subject_id="frozen")),
                lambda: store.latest_for_subject("before"),
                lambda: store.get(first.receipt.receipt_id),
                lambda: store.append(make_receipt(subject_id="frozen-again")),
            ]
            for call in calls:
                with anyio.fail_after(30), pytest.raises(StoreUnavailable) as failed:
                    await call()
                assert not failed.value.maybe_recorded
            fresh = _store(pg_url, timeout=1.0)
            with anyio.fail_after(30):
                assert await fresh.open() is False
            await fresh.close()
        with anyio.fail_after(30):
            while True:  # the first call after the thaw may still meet a severed session
                with contextlib.suppress(StoreUnavailable):
                    second = await store.append(make_receipt(subject_id="after"))
                    break
                await anyio.sleep(0.1)
        assert (second.seq, second.prev_hash) == (2, first.hash)
    finally:
        await store.close()
    assert [r.receipt.subject_id for r in store.iter_rows()] == ["before", "after"]
    assert verify_store(store, SIGNER).ok


async def test_server_down_then_back(
    own_pg_server: PgServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_store, "RETRY_INTERVAL", 0.0)
    store = _store(pg_url, timeout=2.0)
    try:
        first = await store.append(make_receipt())
        own_pg_server.stop()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="PostgreSQL"):
                await store.append(make_receipt())
            assert time.monotonic() - started < 10
            with pytest.raises(StoreUnavailable):
                await store.latest_for_subject("subject-1")
            with pytest.raises(StoreUnavailable):
                store.count()
            # A new instance starting during the outage opens softly.
            fresh = _store(pg_url, timeout=1.0)
            assert await fresh.open() is False
            await fresh.close()
        finally:
            own_pg_server.start()

        # Recording resumes without restarting the application.
        second = await store.append(make_receipt())
        assert second.seq == 2
        assert second.prev_hash == first.hash
    finally:
        await store.close()
    assert verify_store(store, SIGNER).ok


async def test_restart_between_requests_is_invisible(own_pg_server: PgServer, pg_url: str) -> None:
    store = _store(pg_url)
    try:
        await store.append(make_receipt())
        own_pg_server.stop()
        own_pg_server.start()
        # Pooled connections died with the old server; they are checked and replaced.
        assert (await store.append(make_receipt())).seq == 2
    finally:
        await store.close()


def test_tables_created_once_by_concurrent_openers(pg_url: str) -> None:
    async def open_many() -> None:
        stores = [_store(pg_url) for _ in range(4)]
        try:
            async with anyio.create_task_group() as tg:
                for store in stores:
                    tg.start_soon(store.open)
        finally:
            for store in stores:
                await store.close()

    anyio.run(open_many)
    with psycopg.connect(pg_url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'consent_%'"
        ).fetchone()
    assert found == (5,)  # receipts, chain, the policy archive, the statistics (consent_stats*)


def test_url_options() -> None:
    assert open_store("postgres://u@h/db").url == "postgres://u@h/db"
    store = _store("postgresql://u@h/db?application_name=shop&connect_timeout=9")
    assert store._connect_kwargs == {}  # the URL's own settings win
    with pytest.raises(ValueError, match="invalid PostgreSQL URL") as info:
        open_store("postgresql://u:s3cret@h/db?bogus=1")
    assert "s3cret" not in str(info.value)


@contextlib.contextmanager
def _role(admin_url: str, *grants: str) -> Iterator[str]:
    """A login role with only ``grants`` (SQL after ``GRANT``, ``{role}`` for its name); the
    store URL that connects as it. Dropped afterwards (roles belong to the whole cluster)."""
    role = "site_app_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            psql.SQL("CREATE ROLE {} LOGIN PASSWORD 'app-secret'").format(psql.Identifier(role))
        )
        for grant in grants:
            conn.execute(psql.SQL("GRANT " + grant).format(role=psql.Identifier(role)))
    parts = urlsplit(admin_url)
    url = urlunsplit(parts._replace(netloc=f"{role}:app-secret@{parts.hostname}:{parts.port}"))
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(psql.SQL("DROP OWNED BY {}").format(psql.Identifier(role)))
            conn.execute(psql.SQL("DROP ROLE {}").format(psql.Identifier(role)))


async def test_an_app_role_with_only_the_documented_grants_records_decisions(
    pg_url: str,
) -> None:
    """docs/operations.md, Privileges: the tables created once by an owner, the application's
    role granted only what it needs. It records decisions, and cannot change or delete one."""
    created = await anyio.run_process(  # once, as the owner
        [sys.executable, "-m", "consent.cli", "create-store", "--store", pg_url], check=False
    )
    assert (created.returncode, created.stdout.startswith(b"Receipt store ready")) == (0, True)
    with _role(
        pg_url,
        "SELECT, INSERT ON consent_receipts TO {role}",
        "SELECT, INSERT, UPDATE ON consent_chain TO {role}",
    ) as app_url:
        app = _store(app_url)
        assert await app.open()
        try:
            stored = await app.append(make_receipt(subject_id="visitor"))
            assert stored.seq == 1
        finally:
            await app.close()
        with psycopg.connect(app_url, autocommit=True) as conn:
            for statement in (
                "UPDATE consent_receipts SET event = 'given'",
                "DELETE FROM consent_receipts",
                "CREATE TABLE consent_other (a int)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    assert verify_store(_store(pg_url), SIGNER).ok


async def test_a_failed_connection_keeps_telling_why_while_it_waits_to_retry(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role that may not create the tables: the first call and the ones right after it (before
    the store tries again) name the cause, not an unreachable server; the password is not in
    the message."""
    monkeypatch.setattr(pg_store, "RETRY_INTERVAL", 30.0)
    with _role(pg_url) as app_url:
        app = _store(app_url + "?application_name=x&password=app-secret")
        try:
            messages = []
            for _ in range(2):
                with pytest.raises(StoreUnavailable) as info:
                    await app.append(make_receipt())
                messages.append(str(info.value))
        finally:
            await app.close()
    assert all("permission denied" in m for m in messages), messages
    assert "retrying shortly" in messages[1]
    assert not any("app-secret" in m for m in messages), messages

"""Shared fixtures: the PostgreSQL server, the anyio backend, receipt helpers."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import anyio
import pytest

from consent.receipts import (
    Controller,
    Purpose,
    Receipt,
    ReceiptSigner,
    StoredReceipt,
    canonical_json,
)
from consent.store import open_store
from consent.store.sqlite import path_from_url

from .pg import ENV_URL, ExternalPg, PgServer, create_database, drop_database, find_bindir

TEST_KEY = "test-receipt-key-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_receipt(**overrides: object) -> Receipt:
    """A plausible receipt; any field can be overridden."""
    fields: dict[str, object] = {
        "subject_id": "subject-1",
        "event": "given",
        "granted": ["analytics"],
        "refused": ["marketing"],
        "revision": "rev-1",
        "policy_url": "https://example.org/cookies",
        "method": "banner",
        "jurisdiction": "EU",
        "language": "en",
        "controller": Controller(
            name="Example Ltd", email="privacy@example.org", url="https://example.org"
        ),
        "purposes": [
            Purpose(key="necessary", title="Strictly necessary", necessary=True, granted=True),
            Purpose(key="analytics", title="Analytics", granted=True),
            Purpose(key="marketing", title="Marketing", granted=False, third_parties=["AdCo"]),
        ],
        "page": "https://example.org/",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (test)",
    }
    fields.update(overrides)
    return Receipt.model_validate(fields)


def record_receipts(url: str, receipts: Iterable[Receipt]) -> list[StoredReceipt]:
    """Append ``receipts`` one by one to the store at ``url``, signed with ``TEST_KEY``."""

    async def run() -> list[StoredReceipt]:
        store = open_store(url, ReceiptSigner([TEST_KEY]))
        try:
            return [await store.append(receipt) for receipt in receipts]
        finally:
            await store.close()

    return anyio.run(run)


ROOT = Path(__file__).resolve().parent.parent

_APPENDER = r"""
import asyncio, sys, uuid
from consent.receipts import Receipt, ReceiptSigner
from consent.store import open_store

url, key, tag, count, template = sys.argv[1:6]

async def main():
    store = open_store(url, ReceiptSigner([key]), timeout=30)
    try:
        if not await store.open():
            raise SystemExit("store unavailable")
        print("ready", flush=True)
        sys.stdin.readline()
        base = Receipt.from_body(template)
        for i in range(int(count)):
            update = {"receipt_id": str(uuid.uuid4()), "subject_id": f"{tag}-{i}"}
            await store.append(base.model_copy(update=update))
    finally:
        await store.close()

asyncio.run(main())
"""


def append_from_processes(url: str, key: str, processes: int = 2, each: int = 100) -> None:
    """Append ``each`` receipts from each of ``processes`` OS processes at the same time.

    Every process opens the store, reports ready, then all start appending together. Subject
    ids are ``p<N>-<i>``.
    """
    template = canonical_json(make_receipt())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, url, key, f"p{n}", str(each), template],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                _, err = proc.communicate(timeout=60)
                raise AssertionError(f"appender did not start: {line!r} {err}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def execute_sql(url: str, *statements: str) -> None:
    """Run statements directly against a store's database, in one transaction (tampering)."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(path_from_url(url))
        try:
            with conn:
                for statement in statements:
                    conn.execute(statement)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(url) as pg:
        for statement in statements:
            pg.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | ExternalPg]:
    """A PostgreSQL server for the whole session: CONSENT_TEST_POSTGRES_URL, or a throwaway
    cluster started from the installed binaries (skipped when there are none)."""
    url = os.environ.get(ENV_URL)
    if url:
        yield ExternalPg(url)
        return
    bindir = find_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql or set "
            f"{ENV_URL}"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs PostgreSQL: a skip there would hide a broken setup
        pytest.skip(reason)
    server = PgServer(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer | ExternalPg) -> Iterator[str]:
    """URL of a fresh, empty database on the test server."""
    name = create_database(pg_server)
    try:
        yield pg_server.url(name)
    finally:
        drop_database(pg_server, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty receipt store: an SQLite file, or a database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/consent.db"
    url: str = request.getfixturevalue("pg_url")
    return url

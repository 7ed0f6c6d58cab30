"""Faults: the server is killed mid-load, the store goes away and comes back.

What must hold: a decision answered with a 2xx is in the store, whatever happens afterwards; a
decision that cannot be recorded is answered 503 with a JSON error and no consent cookie; pages
keep being served with non-necessary cookies blocked; recording resumes on its own when the
store returns; and the chain verifies after every fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from consent.store.postgres import RETRY_INTERVAL

from ..pg import ExternalPg, PgServer
from .harness import (
    Launch,
    Outcome,
    Server,
    check_sequence,
    cookieless,
    post_decisions,
    record,
    scaled,
    sqlite_url,
    store_receipts,
    verify_chain,
    warm_all_workers,
)

# --------------------------------------------------------------------------- SIGKILL


async def load_then_kill(
    server: Server, count: int, kill_after: int, concurrency: int = 50
) -> list[Outcome]:
    """Start ``count`` decisions; once ``kill_after`` have been answered, SIGKILL the server
    (supervisor and workers) with ``concurrency`` requests in flight."""
    stop = asyncio.Event()
    answered = 0

    def on_result(outcome: Outcome) -> None:
        nonlocal answered
        if outcome.ok:
            answered += 1
            if answered >= kill_after:
                stop.set()

    load = asyncio.create_task(
        post_decisions(
            [server.base], count, concurrency, stop=stop, on_result=on_result, request_timeout=30
        )
    )
    signal = asyncio.create_task(stop.wait())
    await asyncio.wait({load, signal}, return_when=asyncio.FIRST_COMPLETED)
    assert stop.is_set(), "the load ended before the kill"
    server.kill()
    return await load


def check_after_kill(
    url: str, outcomes: list[Outcome], earlier: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Every answered decision is stored; anything else stored since ``earlier`` (receipt ids
    already there before the load) is an in-flight request whose answer was lost; the chain
    verifies. Returns the figures."""
    answered = {o.receipt_id: o for o in outcomes if o.ok}
    in_flight = {o.index for o in outcomes if o.error and o.error != "not sent"}
    statuses = Counter(o.status for o in outcomes if o.status is not None and not o.ok)
    assert not statuses, f"only 2xx answers or broken connections expected: {statuses}"
    stored = store_receipts(url)
    missing = set(answered) - set(stored)
    assert not missing, f"{len(missing)} answered decisions are not in the store"
    unanswered = [row for rid, row in stored.items() if rid not in answered and rid not in earlier]
    for row in unanswered:
        # The receipt of a request that was in flight when the server died.
        assert int(row["page"].rsplit("/", 1)[1]) in in_flight, row["page"]
    result = verify_chain(url)
    assert result.count == len(stored)
    return {
        "sent": sum(1 for o in outcomes if o.error != "not sent"),
        "answered": len(answered),
        "in_flight": len(in_flight),
        "stored_unanswered": len(unanswered),
        "receipts": len(stored) - len(earlier),
    }


def test_sigkill_mid_load_then_restart(store_url: str, launch: Launch) -> None:
    """SIGKILL of ``uvicorn --workers 2`` under load: every 2xx decision survives, the chain
    verifies; a restarted server continues the same chain."""
    server = launch(store_url, workers=2)
    started = time.monotonic()
    outcomes = asyncio.run(load_then_kill(server, 800, 200))
    figures = check_after_kill(store_url, outcomes)

    restarted = launch(store_url, workers=2, name="restarted")
    more = asyncio.run(post_decisions([restarted.base], 100, 50))
    assert all(o.ok for o in more), Counter(o.status or o.error for o in more)
    stored = store_receipts(store_url)
    assert len(stored) == figures["receipts"] + len(more)
    assert {o.receipt_id for o in more} <= set(stored)
    check_sequence(store_url, stored)
    result = verify_chain(store_url)
    record(
        "fault: SIGKILL mid-load",
        store=store_url.split(":")[0],
        requests=figures["sent"] + len(more),
        after_restart=len(more),
        final_receipts=result.count,
        seconds=round(time.monotonic() - started, 2),
        **figures,
    )


@pytest.mark.slow
def test_repeated_sigkills(store_url: str, launch: Launch) -> None:
    """Kill, restart, kill again: several cycles on one store, the chain verifies after each."""
    cycles = scaled(8, 2)
    started = time.monotonic()
    totals: Counter[str] = Counter()
    for cycle in range(cycles):
        server = launch(store_url, workers=2, name=f"cycle{cycle}")
        kill_after = scaled(400, 50) + 37 * cycle
        earlier = frozenset(store_receipts(store_url)) if cycle else frozenset()
        outcomes = asyncio.run(load_then_kill(server, kill_after * 3, kill_after))
        totals.update(check_after_kill(store_url, outcomes, earlier))
    result = verify_chain(store_url)
    record(
        "fault: repeated SIGKILL",
        store=store_url.split(":")[0],
        cycles=cycles,
        requests=totals["sent"],
        answered=totals["answered"],
        in_flight=totals["in_flight"],
        stored_unanswered=totals["stored_unanswered"],
        receipts=result.count,
        seconds=round(time.monotonic() - started, 2),
    )


# --------------------------------------------------------------------------- the store goes away

RETURNING = 1  # decision_for(1) == ["analytics"]: the returning visitor granted analytics only


def consent_cookie(outcome: Outcome) -> str:
    (header,) = [h for h in outcome.set_cookies if h.startswith("consent=")]
    return header.split(";", 1)[0]


def names(response: httpx.Response) -> set[str]:
    return {h.partition("=")[0] for h in response.headers.get_list("set-cookie")}


def check_outage(server: Server, returning: str) -> int:
    """While the store is unavailable: decisions are refused with 503 and change nothing,
    pages are served with non-necessary cookies blocked. Returns the number of refused
    decisions."""
    outcomes = asyncio.run(post_decisions([server.base], 20, 10))
    for outcome in outcomes:
        assert outcome.status == 503, (outcome.status, outcome.body, outcome.error)
        assert isinstance(outcome.body, dict), outcome.body
        assert outcome.body.get("error"), outcome.body
        assert outcome.set_cookies == [], "no consent cookie without a receipt"
        assert outcome.retry_after
    refused = len(outcomes)
    held = {"Cookie": f"{returning}; stats_vid=1; px_uid=2; font_size=3; tracker=4"}
    with httpx.Client(base_url=server.base, cookies=cookieless(), timeout=30) as client:
        origin = {"Origin": server.base}
        form = client.post(
            "/_consent",
            data={"accept": "all", "next": "/"},
            headers={**origin, **held},
            follow_redirects=False,
        )
        withdraw = client.delete("/_consent", headers={**origin, **held})
        for response in (form, withdraw):
            refused += 1
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"]
            assert "set-cookie" not in response.headers
            assert response.headers.get("retry-after")
        # A new visitor: the page is served, only the necessary cookie is set.
        page = client.get("/")
        assert page.status_code == 200
        assert names(page) == {"session"}
        # A returning visitor: the earlier choice (analytics only) still applies.
        page = client.get("/", headers=held)
        assert page.status_code == 200
        assert "<!doctype html>" in page.text
        assert names(page) - {"px_uid", "font_size"} == {"session", "stats_vid"}
        for header in page.headers.get_list("set-cookie"):
            if header.startswith(("px_uid=", "font_size=")):
                assert "Max-Age=0" in header, "refused categories may only be expired"
        seen = client.get("/seen", headers=held).json()
        assert seen["decided"] is True
        assert set(seen["cookies"]) == {"consent", "stats_vid"}
        assert client.get("/_consent", headers=held).json()["granted"] == ["analytics"]
    return refused


def wait_until_recording(server: Server, timeout: float = 30) -> tuple[int, float]:
    """POST until a decision is recorded again; returns (503 answers meanwhile, seconds)."""
    started = time.monotonic()
    refused = 0
    with httpx.Client(base_url=server.base, cookies=cookieless(), timeout=30) as client:
        while True:
            response = client.post(
                "/_consent", json={"accept": []}, headers={"Origin": server.base}
            )
            if response.status_code == 200:
                resumed = time.monotonic() - started
                # That answer came from one worker. A worker whose last connection attempt
                # failed refuses at once for RETRY_INTERVAL before trying again; wait that out
                # so the check that follows measures every worker.
                time.sleep(RETRY_INTERVAL + 0.5)
                return refused, resumed
            assert response.status_code == 503, response.text
            refused += 1
            assert time.monotonic() - started < timeout, "recording did not resume"
            time.sleep(0.2)


def check_recovered(server: Server, url: str, before: int, recovered: int) -> int:
    after = asyncio.run(post_decisions([server.base], 20, 10))
    assert all(o.ok for o in after), Counter(o.status or o.error for o in after)
    stored = store_receipts(url)
    assert len(stored) == before + recovered + len(after), "nothing recorded during the outage"
    result = verify_chain(url)
    return result.count


@contextlib.contextmanager
def sqlite_gone(db: Path, server: Server) -> Iterator[None]:
    """Make an SQLite store unwritable for a running server, in a way that works as root.

    Permissions do not stop root, and a process that holds the file open keeps writing to it
    wherever it is moved. So: the workers may no longer write any file (``RLIMIT_FSIZE`` 0, as
    when the disk is full), which fails the next write and makes the store drop its connection;
    and the database file is moved away with a directory put in its place, so reconnecting
    fails too. Everything is put back on exit.
    """
    pids = server.worker_pids()
    assert pids
    previous = {pid: resource.prlimit(pid, resource.RLIMIT_FSIZE) for pid in pids}
    moved = db.with_name(db.name + ".away")
    try:
        for pid, (_soft, hard) in previous.items():
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
        os.rename(db, moved)
        db.mkdir()
        yield
    finally:
        if db.is_dir():
            shutil.rmtree(db)
        if moved.exists():
            os.rename(moved, db)
        for pid, limits in previous.items():
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)


def test_sqlite_store_goes_away_and_comes_back(tmp_path: Path, launch: Launch) -> None:
    db = tmp_path / "consent.db"
    url = sqlite_url(db)
    server = launch(url, workers=2)
    before = warm_all_workers(server.base, 2)
    assert all(o.ok for o in before)
    assert len({o.worker for o in before}) == 2, "both workers hold a store connection"
    returning = consent_cookie(before[RETURNING])

    started = time.monotonic()
    with sqlite_gone(db, server):
        refused = check_outage(server, returning)
    outage = time.monotonic() - started

    recovered, seconds = wait_until_recording(server)
    assert recovered == 0, "an SQLite store is usable again at once"
    receipts = check_recovered(server, url, len(before), 1)
    record(
        "fault: SQLite store unwritable, then back",
        refused_503=refused,
        outage_seconds=round(outage, 2),
        resumed_after_seconds=round(seconds, 2),
        receipts=receipts,
    )


def test_sqlite_file_moved_away_under_a_live_server(tmp_path: Path, launch: Launch) -> None:
    db = tmp_path / "consent.db"
    server = launch(sqlite_url(db), workers=2)
    warm = warm_all_workers(server.base, 2)
    assert all(o.ok for o in warm)
    assert len({o.worker for o in warm}) == 2, "both workers hold a store connection"
    os.rename(db, tmp_path / "moved-away.db")
    db.mkdir()
    outcomes = asyncio.run(post_decisions([server.base], 10, 5))
    assert [o.status for o in outcomes] == [503] * 10


@contextlib.contextmanager
def pg_stopped(pg_server: PgServer) -> Iterator[None]:
    """The server shut down (``pg_ctl stop -m fast``): connections are closed and refused."""
    pg_server.stop()
    try:
        yield
    finally:
        pg_server.start()


@pytest.mark.postgres
@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_postgres_goes_away_and_comes_back(
    pg_server: PgServer | ExternalPg, pg_url: str, launch: Launch, outage: str
) -> None:
    """``stopped``: the server shuts down. ``frozen``: every process of the cluster is stopped
    (SIGSTOP), so connections stay open and nothing answers, as when the database host hangs
    or the network drops every packet. Either way decisions are refused with 503 in bounded
    time, pages are served, and recording resumes by itself."""
    if isinstance(pg_server, ExternalPg):
        pytest.skip("cannot stop or freeze an external PostgreSQL server")
    server = launch(pg_url, workers=2)
    before = asyncio.run(post_decisions([server.base], 20, 10))
    assert all(o.ok for o in before)
    returning = consent_cookie(before[RETURNING])

    started = time.monotonic()
    with pg_stopped(pg_server) if outage == "stopped" else pg_server.frozen():
        first = asyncio.run(post_decisions([server.base], 1, 1))
        first_refusal = time.monotonic() - started
        assert first[0].status == 503, (first[0].status, first[0].error)
        refused = 1 + check_outage(server, returning)
        seconds_out = time.monotonic() - started

    recovered, seconds = wait_until_recording(server)
    receipts = check_recovered(server, pg_url, len(before), 1)
    record(
        f"fault: PostgreSQL {outage}, then back",
        refused_503=refused + recovered,
        first_refusal_seconds=round(first_refusal, 2),
        outage_seconds=round(seconds_out, 2),
        resumed_after_seconds=round(seconds, 2),
        receipts=receipts,
    )

"""Load: many concurrent consent decisions against real uvicorn servers sharing one store.

Every decision answered with a 2xx must be in the store exactly once, the receipt the client got
must be the stored one, and the whole chain must verify.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from .harness import (
    Launch,
    Outcome,
    check_sequence,
    decision_for,
    post_decisions,
    record,
    scaled,
    store_receipts,
    verify_chain,
)
from .mixed import run_visitors


def check_recorded(url: str, outcomes: list[Outcome]) -> int:
    """Every POST succeeded and left exactly its receipt; the chain verifies. Returns the
    number of receipts held."""
    failed = Counter(o.status or o.error for o in outcomes if not o.ok)
    assert not failed, f"failed requests: {failed}"
    events = Counter(o.body["event"] for o in outcomes)
    assert set(events) <= {"given", "refused"}, f"every POST comes from a new visitor: {events}"
    assert len({o.subject_id for o in outcomes}) == len(outcomes)
    ids = [o.receipt_id for o in outcomes]
    assert None not in ids
    assert len(set(ids)) == len(ids), "a receipt id was answered twice"
    stored = store_receipts(url)
    assert len(stored) == len(outcomes)
    assert set(stored) == set(ids)
    for outcome in outcomes:
        row = stored[outcome.receipt_id or ""]
        answered = outcome.body["receipt"]
        assert row["subject_id"] == outcome.subject_id
        assert row["granted"] == sorted(decision_for(outcome.index))
        assert row["page"] == f"/p/{outcome.index}"
        assert (row["seq"], row["hash"], row["signature"]) == (
            answered["seq"],
            answered["hash"],
            answered["signature"],
        )
        assert [c for c in outcome.set_cookies if c.startswith("consent=")], "no consent cookie"
    check_sequence(url, stored)
    result = verify_chain(url)
    assert result.count == len(outcomes)
    return result.count


@pytest.mark.slow
def test_load_two_workers_one_store(store_url: str, launch: Launch) -> None:
    """2,000 decisions (at full size) from 50 concurrent clients through ``uvicorn --workers 2``."""
    count, concurrency = scaled(2000, 100), 50
    server = launch(store_url, workers=2)
    started = time.monotonic()
    outcomes = asyncio.run(post_decisions([server.base], count, concurrency))
    elapsed = time.monotonic() - started
    receipts = check_recorded(store_url, outcomes)
    workers = Counter(o.worker for o in outcomes)
    assert len(workers) == 2, f"both workers should have answered: {workers}"
    record(
        "load: uvicorn --workers 2",
        store=store_url.split(":")[0],
        requests=count,
        concurrency=concurrency,
        receipts=receipts,
        per_worker=sorted(workers.values()),
        seconds=round(elapsed, 2),
        per_second=round(count / elapsed),
    )


def test_acceptance_two_processes_200_at_once(store_url: str, launch: Launch) -> None:
    """The acceptance case: 200 decisions at the same moment, sent to two separate server
    processes (two ports) sharing one store -> 200 receipts and a chain that verifies."""
    count = 200
    first = launch(store_url, name="first")
    second = launch(store_url, name="second")
    started = time.monotonic()
    outcomes = asyncio.run(post_decisions([first.base, second.base], count, count, keepalive=True))
    elapsed = time.monotonic() - started
    receipts = check_recorded(store_url, outcomes)
    assert receipts == count
    assert len({o.worker for o in outcomes}) == 2
    record(
        "acceptance: two processes",
        store=store_url.split(":")[0],
        requests=count,
        concurrency=count,
        receipts=receipts,
        seconds=round(elapsed, 2),
    )


@pytest.mark.slow
def test_returning_visitors_mixed_traffic(store_url: str, launch: Launch) -> None:
    """Returning visitors, each with its own cookie jar, change their minds, withdraw, load
    pages and fetch their receipts, through two workers: every answered decision is recorded
    with the right event, each visitor's latest receipt matches its cookie, and every page
    obeys the visitor's latest choice."""
    visitors, rounds = scaled(400, 20), 6
    server = launch(store_url, workers=2)
    started = time.monotonic()
    summary = asyncio.run(run_visitors(server.base, visitors, rounds, concurrency=50))
    elapsed = time.monotonic() - started
    stored = store_receipts(store_url)
    assert len(stored) == summary.decisions
    summary.check_against(stored)
    result = verify_chain(store_url)
    record(
        "mixed: returning visitors",
        store=store_url.split(":")[0],
        visitors=visitors,
        requests=summary.requests,
        decisions=summary.decisions,
        receipts=result.count,
        seconds=round(elapsed, 2),
    )

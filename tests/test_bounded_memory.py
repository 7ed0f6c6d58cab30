"""Nothing a visitor sends grows a worker's memory for good.

Every cache the middleware keeps is bounded by count and by size. A burst of requests with
1 MB headers (uvicorn with httptools accepts them), each different, goes through a real
middleware in front of a page; what is still allocated afterwards (``tracemalloc``, after a
garbage collection) must stay far below what the burst sent. Before these bounds, each of these
bursts left tens of megabytes behind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from collections.abc import Callable

import pytest
from starlette.types import Receive, Scope, Send

from consent import ConsentMiddleware

from .helpers import EXAMPLE_POLICY
from .test_middleware import run_raw

KEY = "memory-test-key-0123456789abcdef0123"
MB = 1 << 20
BURST = 20  # requests of about 1 MB each (sent twice): 20 MB of distinct headers
# Retained after the burst: what these caches may hold once filled is far less (see
# docs/performance.md); before the bounds, each of these bursts kept 20 to 80 MB.
RETAINED_MAX = 4 * MB
PAGE = (
    b"<!doctype html><html><head><title>t</title></head><body>"
    b'<script type="text/plain" data-consent="analytics">1</script></body></html>'
)


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"set-cookie", b"sessionid=1; Path=/"),
                (b"set-cookie", b"px_uid=1; Path=/"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": PAGE})


def scope_for(
    cookie: bytes, query: bytes = b"", accept_language: bytes = b"en", path: str = "/"
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [
            (b"host", b"testserver"),
            (b"cookie", cookie),
            (b"accept-language", accept_language),
        ],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }


def retained(app: ConsentMiddleware, scopes: Callable[[int], Scope], count: int) -> int:
    """Bytes still allocated after ``count`` requests (each sent twice, so that caches that
    keep what comes back see it come back)."""

    async def burst() -> None:
        for i in range(count):
            for _ in range(2):
                sent = await run_raw(app, scopes(i))
                assert sent[0]["status"] == 200

    asyncio.run(run_raw(app, scope_for(b"sessionid=warm")))  # what every request needs, loaded
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(burst())
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.fixture
def app(caplog: pytest.LogCaptureFixture) -> ConsentMiddleware:
    caplog.set_level(logging.ERROR, logger="consent")  # (thousands of undeclared names)
    return ConsentMiddleware(page, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")


def unique(i: int, size: int = MB) -> bytes:
    return f"{i:08d}".encode() * (size // 8)


@pytest.mark.parametrize(
    "scopes",
    [
        # one long undeclared cookie name
        pytest.param(lambda i: scope_for(b"x" + unique(i) + b"=1"), id="long-name"),
        # a long consent cookie value (a forgery)
        pytest.param(lambda i: scope_for(b"consent=" + unique(i)), id="long-consent-value"),
        # a long query string and Accept-Language (the language and page caches)
        pytest.param(
            lambda i: scope_for(b"sessionid=1", query=b"q=" + unique(i), accept_language=unique(i)),
            id="long-query-and-language",
        ),
        # a long path (the no-JavaScript form of a first visit holds the page's address)
        pytest.param(
            lambda i: scope_for(b"sessionid=1", path="/" + unique(i).decode()),
            id="long-path",
        ),
        # many distinct undeclared names of up to 250 characters (a 1 MB header of them)
        pytest.param(
            lambda i: scope_for(
                b"; ".join(b"n%09d" % (i * 4000 + j) + b"_" * 240 + b"=1" for j in range(4000))
                if i < 8
                else b"sessionid=1"
            ),
            id="many-names",
        ),
    ],
)
def test_a_burst_of_large_headers_leaves_little_behind(
    app: ConsentMiddleware, scopes: Callable[[int], Scope]
) -> None:
    kept = retained(app, scopes, BURST)
    assert kept < RETAINED_MAX, f"{kept / MB:.1f} MB retained after {BURST} MB sent"


def test_many_small_cookie_headers_that_come_back_stay_within_the_view_budget(
    app: ConsentMiddleware,
) -> None:
    """Headers short enough to be cached (4 KB), made of as many pairs as fit, each sent
    twice: the parsed views are bounded by what they hold, not only by their number."""

    def scopes(i: int) -> Scope:
        return scope_for(b";".join(b"%d=" % (i * 1000 + j) for j in range(700))[:4096])

    kept = retained(app, scopes, 200)
    # (6 MB here, with the caches of names filled too; 21 MB before the views' budget)
    assert kept < 10 * MB, f"{kept / MB:.1f} MB retained"


def test_undeclared_names_are_counted_within_bounds(app: ConsentMiddleware) -> None:
    """``metrics.undeclared`` (which is never emptied) counts long names together, and at
    most a thousand distinct names."""
    from consent.middleware import LONG_NAMES

    for i in range(5):
        asyncio.run(run_raw(app, scope_for(b"y" * (1000 + i) + b"=1; short=1")))
    for i in range(1500):
        asyncio.run(run_raw(app, scope_for(b"name%d=1" % i)))
    counts = app.metrics.undeclared
    assert counts[LONG_NAMES] == 5
    assert counts["short"] == 5
    assert len(counts) <= 1001  # (and "(other names)")
    assert counts["(other names)"] > 0
    assert max(len(name) for name in counts) <= 256

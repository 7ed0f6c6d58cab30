"""Banner injection and script gating on large pages, streamed through the full middleware.

    python benchmarks/html_path.py [--quick] [--rounds N] [--chunk-kb 64]

An ASGI app streams a generated page (20 KB, 200 KB, 2 MB: article text with a gated script
in the head and a gated ``<img data-consent>`` every ~4 KB) in 64 KB ``http.response.body``
messages. Variants, interleaved round by round:

* ``bare``: the app alone (the bytes are only handed on);
* ``consent, granted``: ``ConsentMiddleware`` for a visitor who granted analytics: the
  banner is injected and every gated tag is activated (the tokenizer runs to the end);
* ``consent, no decision``: a first-time visitor: banner and no-JavaScript form injected,
  nothing to activate (the rest of the page passes through once both are placed).

Reports MB/s (min / median / max over rounds), the ratio of the consent variant's time to the
bare app's within each round, and the tracemalloc peak of one request (which must not grow
with the page: the page is never held in memory).

Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from _common import POLICY, SECRET, fmt3, load, machine, table
from html_rewrite import PAGES, page
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consent import ConsentMiddleware
from consent.policy import load_policy
from consent.state import ConsentCookie

SIZES = {"20 KB": 20 * 1024, "200 KB": 200 * 1024, "2 MB": 2 * 1024 * 1024}

GATED_IMG = b'<img data-consent="analytics" data-src="/pixel.gif" alt="">'


def make_page(size: int) -> bytes:
    """An article page with a gated image every ~4 KB."""
    row = PAGES["article"] * 8 + GATED_IMG + b"\n"
    return page(row, size)


def streaming_app(chunks: list[bytes]) -> ASGIApp:
    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/html; charset=utf-8")],
    }
    last = len(chunks) - 1

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start)
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < last})

    return app


def consent_cookie() -> bytes:
    cookie = ConsentCookie([SECRET], load_policy(POLICY))
    state = cookie.decision({"analytics"}, receipt_id=str(uuid.uuid4()), subject_id="bench")
    return b"consent=" + cookie.dumps(state).encode()


def scope_for(cookie: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"example.org"), (b"accept", b"text/html")]
    if cookie:
        headers.append((b"cookie", cookie))
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/article",
        "raw_path": b"/article",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Counter:
    """A send that counts body bytes (and checks the gated tags were activated)."""

    def __init__(self) -> None:
        self.size = 0
        self.activated = 0
        self.injected = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            self.size += len(body)
            self.activated += body.count(b'<img data-consent="analytics" src=')
            self.injected = self.injected or b"/_consent/banner.js" in body


Variant = tuple[ASGIApp, dict[str, Any]]


def variants(chunks: list[bytes]) -> dict[str, Variant]:
    app = streaming_app(chunks)
    mw = ConsentMiddleware(app, policy=POLICY, secret_key=SECRET, store="memory://")
    found = {
        "bare": (app, scope_for(consent_cookie())),
        "consent, granted": (mw, scope_for(consent_cookie())),
        "consent, no decision": (mw, scope_for(None)),
    }
    if len(chunks) == 1:
        # A page sent in one message is rewritten once and then served from the cache of
        # rewritten pages; a page that differs per visitor is rewritten every time, as here.
        uncached = ConsentMiddleware(app, policy=POLICY, secret_key=SECRET, store="memory://")
        assert uncached.injection is not None
        uncached.injection.documents.max_document = -1
        found["consent, granted, not cached"] = (uncached, scope_for(consent_cookie()))
    return found


async def timed(app: ASGIApp, scope: dict[str, Any], repeat: int) -> float:
    send = Counter()
    started = time.perf_counter()
    for _ in range(repeat):
        await app(dict(scope), _receive, send)
    return (time.perf_counter() - started) / repeat


def peak_memory(run: Callable[[], Awaitable[None]]) -> int:
    tracemalloc.start()
    try:
        asyncio.run(run())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--chunk-kb", type=int, default=64)
    parser.add_argument("--budget", type=float, default=0.15, help="seconds per variant per round")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.budget = 3, 0.03
    chunk = args.chunk_kb * 1024

    print(f"machine: {machine()}; load average before: {load()}")
    print(f"pages streamed in {args.chunk_kb} KB chunks; {args.rounds} rounds, interleaved")
    rows = []
    for label, size in SIZES.items():
        document = make_page(size)
        chunks = [document[i : i + chunk] for i in range(0, len(document), chunk)]
        apps = variants(chunks)
        # check the work is really done
        for name, (app, scope) in apps.items():
            sink = Counter()
            asyncio.run(app(dict(scope), _receive, sink))
            expected = document.count(GATED_IMG) if name.startswith("consent, granted") else 0
            assert sink.activated == expected, (name, sink.activated, expected)
            assert sink.injected == name.startswith("consent"), name
        # repetitions per batch from one timed run of the slowest variant
        slowest = asyncio.run(timed(*apps["consent, granted"], 1))
        repeat = max(1, int(args.budget / max(slowest, 1e-6)))
        times: dict[str, list[float]] = {name: [] for name in apps}

        async def rounds(
            apps: dict[str, Variant] = apps,
            repeat: int = repeat,
            times: dict[str, list[float]] = times,
        ) -> None:
            names = list(apps)
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    times[name].append(await timed(*apps[name], repeat))

        asyncio.run(rounds())
        for name, (app, scope) in apps.items():

            async def once(app: ASGIApp = app, scope: dict[str, Any] = scope) -> None:
                await app(dict(scope), _receive, Counter())

            peak = peak_memory(once)
            rate = [len(document) / t / 1e6 for t in times[name]]
            ratio = [t / b for t, b in zip(times[name], times["bare"], strict=True)]
            rows.append(
                [
                    label,
                    name,
                    fmt3(rate, ".0f"),
                    "-" if name == "bare" else fmt3(ratio, ".0f"),
                    f"{peak / 1024:.0f}",
                ]
            )
    print(
        table(
            ["page", "variant", "MB/s min / median / max", "time x bare", "peak KiB"],
            rows,
        )
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

"""Throughput and peak memory of the streaming HTML rewriter.

    python benchmarks/html_rewrite.py [--size-mb 2] [--chunk-kb 64] [--rounds 10]

Streams a generated page through ``consent.html.HtmlRewriter`` in fixed-size chunks,
with and without granted categories (granted categories make ``<img>`` tags with
``data-consent`` interesting), and reports MB/s and the tracemalloc peak of one pass.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from consent.html import HtmlRewriter, banner_tags, consent_mode_default, script_tag

PAGES = {
    # a tag every ~20 bytes: navigation-heavy markup
    "dense": (
        b'<div class="item" data-id="42"><a href="/x?a=1&amp;b=2" title=\'t\'>Link</a>'
        b"<span>Lorem ipsum dolor sit amet, consectetur.</span>"
        b'<img src="/i.png" alt="x"></div>\n'
    ),
    # an article: paragraphs with a few inline tags
    "article": (
        b"<p>Lorem ipsum dolor sit amet, <em>consectetur</em> adipiscing elit, sed do eiusmod "
        b"tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis "
        b'nostrud <a href="/exercitation">exercitation</a> ullamco laboris nisi ut aliquip ex '
        b"ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate.</p>\n"
    ),
}


def page(row: bytes, size: int) -> bytes:
    head = (
        b"<!DOCTYPE html><html><head><meta charset=utf-8><title>bench</title>"
        b'<script src="/app.js"></script></head><body>'
    )
    gated = b'<script type="text/plain" data-consent="analytics" src="/a.js"></script>'
    body = (row * (size // len(row) + 1))[:size]
    return head + gated + body + b"</body></html>"


def run(document: bytes, chunk: int, granted: frozenset[str]) -> int:
    rewriter = HtmlRewriter(
        head_start=script_tag(consent_mode_default(["ad_storage", "analytics_storage"])).encode(),
        head_end=banner_tags("/_consent").encode(),
        body_start=b"<noscript>consent form</noscript>",
        granted=granted,
    )
    total = 0
    for i in range(0, len(document), chunk):
        total += len(rewriter.feed(document[i : i + chunk]))
    return total + len(rewriter.close())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=2.0)
    parser.add_argument("--chunk-kb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    size, chunk = int(args.size_mb * 1024 * 1024), args.chunk_kb * 1024
    print(f"{'page':8} {'granted':8} {'MB/s':>8} {'peak KiB':>9}")
    for name, row in PAGES.items():
        document = page(row, size)
        for granted in (frozenset(), frozenset({"analytics"})):
            started = time.perf_counter()
            for _ in range(args.rounds):
                run(document, chunk, granted)
            rate = args.rounds * len(document) / (time.perf_counter() - started) / 1e6
            tracemalloc.start()
            run(document, chunk, granted)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{name:8} {bool(granted)!s:8} {rate:8.0f} {peak / 1024:9.0f}")


if __name__ == "__main__":
    main()

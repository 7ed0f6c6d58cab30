"""The one-pass path for HTML pages sent in one message, and the cache of rewritten pages.

A page whose whole body arrives in one ``http.response.body`` message is rewritten at once, its
headers filtered and fixed in one pass, and the rewrite kept in a bounded cache keyed on
everything it depends on. These tests hold that path to what the streaming path (which does
each step separately) sends, and show that the cache never hands one visitor's page to another.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from consent import ConsentMiddleware
from consent.html import DocumentCache, HtmlRewriter, csp_script_nonce, rewrite_document

from .helpers import detached_middleware, http_scope

KEY = "test-secret-key-0123456789"

PAGE = (
    b"<!doctype html><html><head><title>Clinic</title>"
    b'<script type="text/plain" data-consent="analytics" src="/stats.js"></script>'
    b"</head><body><h1>Opening hours</h1></body></html>"
)

ACTIVE = b'<script data-consent="analytics" src="/stats.js">'  # the gated script, activated

HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", str(len(PAGE)).encode()),
    (b"etag", b'"v1"'),
    (b"set-cookie", b"sessionid=abc; HttpOnly; Path=/"),
    (b"set-cookie", b"stats_vid=v1; Expires=Wed, 01 Jan 2031 00:00:00 GMT; Path=/"),
    (b"set-cookie", b"px_uid=p1; Max-Age=7776000; Path=/"),
    (b"Set-Cookie", b"px_uid=; Max-Age=0; Path=/"),  # a deletion: always passes
    (b"x-frame-options", b"DENY"),
]


def _middleware() -> ConsentMiddleware:
    return detached_middleware(KEY)


def _scope(cookie: bytes | None, path: str = "/") -> Scope:
    return http_scope(cookie, path=path, scheme="https")


def _serve(
    mw: ConsentMiddleware, scope: Scope, body: bytes, *, chunks: int = 1, headers: Any = None
) -> tuple[dict[bytes, list[bytes]], list[tuple[bytes, bytes]], bytes]:
    """Run one request; the page body is sent in ``chunks`` messages.
    Returns (headers by lower-cased name, the raw header list, the body received)."""
    sent: list[Message] = []

    async def app(inner: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": list(headers or HEADERS)}
        )
        step = -(-len(body) // chunks)
        for i in range(chunks):
            part = body[i * step : (i + 1) * step]
            await send({"type": "http.response.body", "body": part, "more_body": i < chunks - 1})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    mw.app = app
    anyio.run(mw, scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    raw = [(bytes(k), bytes(v)) for k, v in start["headers"]]
    by_name: dict[bytes, list[bytes]] = {}
    for k, v in raw:
        by_name.setdefault(k.lower(), []).append(v)
    received = b"".join(m.get("body", b"") for m in sent[1:] if m["type"] == "http.response.body")
    return by_name, raw, received


def _cookie(mw: ConsentMiddleware, granted: set[str]) -> bytes:
    state = mw.cookie.decision(granted, receipt_id="r-1", subject_id="s-1")
    return f"consent={mw.cookie.dumps(state)}; px_uid=old".encode()


@pytest.mark.parametrize("granted", [None, set(), {"analytics"}, {"analytics", "marketing"}])
def test_one_message_page_matches_the_streamed_page(granted: set[str] | None) -> None:
    mw = _middleware()
    cookie = None if granted is None else _cookie(mw, granted)
    whole, raw, body = _serve(mw, _scope(cookie), PAGE)
    streamed, _, streamed_body = _serve(mw, _scope(cookie), PAGE, chunks=3)

    assert body == streamed_body
    assert b'id="consent-banner-js"' in body or b"/_consent/banner.js" in body
    assert (ACTIVE in body) == bool(granted and "analytics" in granted)
    # Same Set-Cookie headers, in the same order, whichever path the page took.
    assert whole[b"set-cookie"] == streamed[b"set-cookie"]
    kept = {v.split(b"=", 1)[0] for v in whole[b"set-cookie"] if b"Max-Age=0" not in v}
    allowed = {"necessary"} | (granted or set())
    expected = {b"sessionid"} | ({b"stats_vid"} if "analytics" in allowed else set())
    expected |= {b"px_uid"} if "marketing" in allowed else set()
    assert kept == expected
    # One Content-Length, of the body actually sent; the ETag is gone (the body changed).
    assert whole[b"content-length"] == [str(len(body)).encode()]
    assert b"content-length" not in streamed  # streamed: the server chunks it
    assert b"etag" not in whole
    assert b"etag" not in streamed
    assert whole[b"vary"] == streamed[b"vary"] == [b"Cookie"]
    assert whole[b"x-frame-options"] == [b"DENY"]
    # Headers the page did not touch keep their relative order.
    names = [k for k, _ in raw]
    assert names.index(b"content-type") < names.index(b"x-frame-options")


def test_cached_page_is_exactly_the_fresh_rewrite_and_never_another_visitors() -> None:
    mw = _middleware()
    assert mw.injection is not None
    cache = mw.injection.documents
    analytics = _cookie(mw, {"analytics"})
    refused = _cookie(mw, set())

    first = _serve(mw, _scope(analytics), PAGE)
    assert len(cache) == 1
    again = _serve(mw, _scope(analytics), PAGE)
    assert again == first  # served from the cache: byte for byte the same response
    assert len(cache) == 1

    other = _serve(mw, _scope(refused), PAGE)
    assert ACTIVE in first[2]
    assert ACTIVE not in other[2]  # not the analytics visitor's page
    newcomer = _serve(mw, _scope(None, path="/hours"), PAGE)
    assert b"<noscript>" in newcomer[2]
    assert b"<noscript>" not in first[2]
    assert b"next" in newcomer[2]
    assert b"/hours" in newcomer[2]
    elsewhere = _serve(mw, _scope(None, path="/contact"), PAGE)
    assert b"/contact" in elsewhere[2]
    assert b"/hours" not in elsewhere[2]

    # A page that differs per visitor is rewritten for each.
    mine = _serve(mw, _scope(analytics), PAGE.replace(b"Opening hours", b"Hello, Ada"))
    assert b"Hello, Ada" in mine[2]
    assert mine[0][b"content-length"] == [str(len(mine[2])).encode()]


def test_document_cache_is_bounded_and_skips_large_documents() -> None:
    cache = DocumentCache(max_bytes=20_000, max_document=4_000)
    kwargs: dict[str, Any] = {
        "head_start": b"",
        "head_end": b"<HE>",
        "body_start": b"",
        "granted": frozenset(),
        "cache": cache,
    }
    for i in range(40):
        doc = b"<html><head></head><body>" + str(i).encode() * 300 + b"</body></html>"
        out, changed, length = rewrite_document(doc, **kwargs)
        assert out == HtmlRewriter(head_end=b"<HE>").rewrite(doc)
        assert changed
        assert length == str(len(out)).encode()
    assert 0 < len(cache) < 40
    assert cache._size <= cache.max_bytes
    big = b"<html><head></head><body>" + b"x" * 5_000 + b"</body></html>"
    before = len(cache)
    assert rewrite_document(big, **kwargs)[0] == HtmlRewriter(head_end=b"<HE>").rewrite(big)
    assert len(cache) == before  # too large to keep


def test_unusual_header_types_do_not_break_the_page() -> None:
    mw = _middleware()
    headers = [
        (b"content-type", bytearray(b"text/html")),
        (bytearray(b"content-length"), str(len(PAGE)).encode()),
        (b"set-cookie", b"px_uid=p1; Path=/"),
        (b"set-cookie", bytearray(b"sessionid=s1; Path=/")),
    ]
    by_name, _, body = _serve(mw, _scope(None), PAGE, headers=headers)
    assert b"/_consent/banner.js" in body
    assert by_name[b"content-length"] == [str(len(body)).encode()]
    assert by_name[b"set-cookie"] == [b"sessionid=s1; Path=/"]


@pytest.mark.parametrize(
    ("policy", "nonce"),
    [
        (b"default-src 'self'; script-src 'self' 'nonce-abc123'", "abc123"),
        (b"script-src-elem 'nonce-elem1'; script-src 'nonce-other'", "elem1"),
        (b"default-src 'nonce-dflt+/='", "dflt+/="),
        (b"script-src 'self'; default-src 'nonce-unused'", ""),  # script-src governs
        (b"style-src 'nonce-style'", ""),
        (b"SCRIPT-SRC 'NONCE-Upper'", "Upper"),
        (b"script-src 'self', script-src 'nonce-second'", "second"),  # two policies
        (b"script-src 'nonce-first'; script-src 'nonce-ignored'", "first"),
        (b"script-src 'nonce-<bad>'", ""),
        (b"", ""),
    ],
)
def test_csp_script_nonce(policy: bytes, nonce: str) -> None:
    assert csp_script_nonce(policy) == nonce


@pytest.mark.parametrize("chunks", [1, 3])
def test_injected_tags_carry_the_pages_csp_nonce(chunks: int) -> None:
    mw = _middleware()
    assert mw.injection is not None
    headers = [
        *HEADERS,
        (b"content-security-policy-report-only", b"script-src 'nonce-reportonly'"),
        (b"content-security-policy", b"default-src 'self'; script-src 'self' 'nonce-r4nd0m'"),
    ]
    by_name, _, body = _serve(mw, _scope(None), PAGE, chunks=chunks, headers=headers)
    assert body.count(b'nonce="r4nd0m"') == 3  # Consent Mode script, stylesheet, banner script
    assert b"reportonly" not in body
    assert by_name[b"content-security-policy"]  # the policy itself is passed on untouched
    assert len(mw.injection.documents) == 0  # a page with a fresh nonce is not worth keeping

    only_reported = [*HEADERS, (b"content-security-policy-report-only", b"script-src 'nonce-q'")]
    _, _, body = _serve(mw, _scope(None), PAGE, chunks=chunks, headers=only_reported)
    assert body.count(b'nonce="q"') == 3

    _, _, plain = _serve(mw, _scope(None), PAGE, chunks=chunks)
    assert b"nonce=" not in plain


def test_pages_alternating_for_one_visitor_each_get_their_own_rewrite() -> None:
    cache = DocumentCache()
    inserts: dict[str, Any] = {
        "head_start": b"<HS>",
        "head_end": b"<HE>",
        "body_start": b"",
        "granted": frozenset({"analytics"}),
    }
    one = PAGE
    two = PAGE.replace(b"Opening hours", b"Opening hourz")  # same length, one byte differs
    for doc in (one, two, one, two, bytes(bytearray(one))):
        expected = HtmlRewriter(**inserts).rewrite(doc)
        assert rewrite_document(doc, cache=cache, **inserts)[0] == expected
    assert len(cache) == 2


@pytest.mark.parametrize("granted", [None, {"analytics"}])
def test_head_does_not_claim_the_length_get_no_longer_has(granted: set[str] | None) -> None:
    """RFC 9110 8.6: a HEAD answer's Content-Length must be what GET would send. GET answers
    the page rewritten (longer, without the ETag, varying with the consent cookie)."""
    mw = _middleware()
    cookie = None if granted is None else _cookie(mw, granted)
    got, _, body = _serve(mw, _scope(cookie), PAGE)
    assert int(got[b"content-length"][0]) == len(body) > len(PAGE)

    head_scope = _scope(cookie)
    head_scope["method"] = "HEAD"
    head, _, nothing = _serve(mw, head_scope, b"")
    assert nothing == b""
    assert b"content-length" not in head
    assert b"etag" not in head
    assert head[b"vary"] == [b"Cookie"]
    assert head[b"set-cookie"] == got[b"set-cookie"]  # filtered the same way
    assert head[b"x-frame-options"] == [b"DENY"]

    # A HEAD of what GET would not rewrite keeps its headers.
    json_headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    kept, _, _ = _serve(mw, head_scope, b"", headers=json_headers)
    assert kept[b"content-length"] == [b"2"]

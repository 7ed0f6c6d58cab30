"""The shortcuts taken for speed give the same answers as the full way.

Caches in the middleware (per Cookie header, per Set-Cookie name and attributes), the HTML
rewriter's whole-document path, group commit in the stores, and export/verify working on the
body text of sealed receipts.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from consent import ConsentMiddleware
from consent.audit import export, verify_file, verify_store
from consent.audit.fast import _Fast
from consent.cookies import cookie_pairs, is_deletion
from consent.html import (
    HtmlRewriter,
    csp_script_nonce,
    fix_headers,
    html_page_nonce,
    scan_start,
    with_length,
)
from consent.receipts import ReceiptSigner, chain_hash
from consent.store import open_store
from consent.store.base import ReceiptRow
from consent.store.chain import link_kind
from consent.web import filtering as mw_module

from .conftest import TEST_KEY, execute_sql, make_receipt
from .helpers import EXAMPLE_POLICY, detached_middleware, http_scope

KEY = "test-secret-key-0123456789"
SIGNER = ReceiptSigner([TEST_KEY])


# --------------------------------------------------------------------------- middleware


def _scope(cookie: bytes | None, path: str = "/") -> Scope:
    return http_scope(cookie, path=path, scheme="http")


async def _call(mw: ConsentMiddleware, scope: Scope) -> tuple[Scope, list[Message]]:
    seen: list[Scope] = []
    sent: list[Message] = []

    async def app(inner: Scope, receive: Receive, send: Send) -> None:
        seen.append(inner)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"set-cookie", b"px_uid=1; Max-Age=60"),
                    (b"set-cookie", b"stats_vid=2; Expires=Wed, 01 Jan 2031 00:00:00 GMT"),
                    (b"Set-Cookie", b"session=3"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    mw.app = app
    await mw(scope, receive, send)
    return seen[0], sent


def _middleware() -> ConsentMiddleware:
    return detached_middleware(KEY)


def test_cached_header_view_still_rechecks_the_cookie_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mw = _middleware()
    state = mw.cookie.decision({"analytics"}, receipt_id="r-1", subject_id="s-1")
    header = f"consent={mw.cookie.dumps(state)}; stats_vid=v; px_uid=p".encode()
    for _ in range(2):  # a header is kept from the second time it is seen
        inner, _ = anyio.run(_call, mw, _scope(header))
        assert inner["state"]["consent"].allows("analytics")
    assert header in mw.filter._views  # the header was cached

    later = time.time() + mw.cookie.lifetime + 10
    monkeypatch.setattr(time, "time", lambda: later)
    inner, _ = anyio.run(_call, mw, _scope(header))
    assert not inner["state"]["consent"].decided  # expired although the view is cached
    cookies = [v for k, v in inner["headers"] if k == b"cookie"]
    assert cookies == [header.split(b"; ")[0]]  # analytics and marketing cookies dropped


def test_metrics_count_every_request_with_a_cached_view() -> None:
    mw = _middleware()
    for _ in range(3):
        anyio.run(_call, mw, _scope(b"mystery=1; px_uid=2"))
    snapshot = mw.metrics.snapshot()
    assert snapshot["blocked_request"] == {"(undeclared)": 3, "marketing": 3}
    assert snapshot["blocked_response"] == {"analytics": 3, "marketing": 3}
    assert snapshot["undeclared"] == {"mystery": 3}


def test_header_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mw_module, "_VIEW_CACHE_LIMIT", 8)
    mw = _middleware()

    async def many() -> None:
        for i in range(30):
            for _ in range(2):
                await _call(mw, _scope(f"session=s{i}".encode()))

    anyio.run(many)
    assert len(mw.filter._views) == 8
    assert b"session=s29" in mw.filter._views  # the newest stay


def test_headers_sent_once_do_not_push_out_those_that_come_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A header is cached from its second request on, so a stream of headers that never come
    back (an analytics cookie counting page views) leaves returning visitors' headers cached;
    every request is still filtered the same."""
    monkeypatch.setattr(mw_module, "_VIEW_CACHE_LIMIT", 4)
    mw = _middleware()
    returning = b"session=r; px_uid=p"

    async def traffic() -> list[list[tuple[bytes, bytes]]]:
        seen = []
        for i in range(50):
            inner, _ = await _call(mw, _scope(returning))
            seen.append(inner["headers"])
            inner, _ = await _call(mw, _scope(b"session=r; _ga=GA1.1.%d" % i))
            seen.append(inner["headers"])
        return seen

    seen = anyio.run(traffic)
    assert list(mw.filter._views) == [returning]
    assert [v for k, v in seen[-2] if k == b"cookie"] == [b"session=r"]  # px_uid refused
    assert [v for k, v in seen[-1] if k == b"cookie"] == [b"session=r"]  # _ga refused


_HEADERS = st.lists(
    st.sampled_from(
        [
            b"session=a",
            b" consent=x.y",
            b"stats_vid=1 ",
            b"px_uid",
            b"",
            b" ",
            b"=v",
            b' consent="q"',
            b"__Host-lb=n",
            b"\tmystery = 2",
            b"stats_ses_9=\xff",
            b"session=a=b;",
            b"a.b*c=(x)",
        ]
    ),
    max_size=6,
).map(lambda parts: b";".join(parts))


@settings(max_examples=300, deadline=None)
@given(header=_HEADERS, other=_HEADERS)
def test_a_shape_s_matcher_matches_exactly_the_headers_of_that_shape(
    header: bytes, other: bytes
) -> None:
    """A new header is first matched against the shape many visitors sent last: the match
    says yes exactly when cutting the header's values gives that shape's skeleton."""
    skeleton = mw_module._VALUE.sub(b"=", header)
    same = mw_module._VALUE.sub(b"=", other) == skeleton
    assert (mw_module._matcher(skeleton)(other) is not None) is same
    assert mw_module._matcher(skeleton)(header) is not None


@settings(max_examples=300, deadline=None)
@given(headers=st.lists(_HEADERS, min_size=1, max_size=4), guess_after=st.sampled_from([1, 8]))
def test_header_views_built_from_cached_shapes_match_a_fresh_parse(
    headers: list[bytes], guess_after: int
) -> None:
    """Views built from a shape (cached by the header's skeleton, made with the names seen in
    earlier headers, or the shape last found when the header matches it) hold what parsing the
    header afresh with cookie_pairs and the classifier gives, and let through what filtering
    those pairs one by one lets through."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mw_module, "_GUESS_AFTER", guess_after)
        _check_views(headers)


def _check_views(headers: list[bytes]) -> None:
    mw = _middleware()
    undecided = mw.cookie.no_decision
    decided = mw.cookie.decision({"analytics"}, receipt_id=None, subject_id="s")
    for header in headers * 3:
        view = mw.filter.view(header)
        pairs = cookie_pairs(header)
        assert [
            (name, view.parts[at].strip(b" \t")) for at, name, _, _ in view.shape.items
        ] == pairs
        expected = [
            (name, None if name == mw.cookie_name else mw.classifier.match(name))
            for name, _ in pairs
        ]
        assert [(name, match) for _, name, match, _ in view.shape.items] == expected
        assert [is_consent for *_, is_consent in view.shape.items] == [
            name == mw.cookie_name for name, _ in pairs
        ]
        consent = []
        for name, raw in [p for p in pairs if p[0] == mw.cookie_name][:4]:  # the first four
            with contextlib.suppress(UnicodeDecodeError):
                consent.append(raw[len(name) + 1 :].strip(b' \t"').decode("ascii"))
        assert list(view.consent) == consent
        for state in (undecided, decided):
            outcome = view.outcome(state, False, mw.filter)
            kept = [
                raw
                for name, raw in pairs
                if name == mw.cookie_name
                or ((match := mw.classifier.match(name)) is not None and match[0] in state.allowed)
            ]
            assert view.header(outcome) == b"; ".join(kept)
            assert outcome.dropped == (len(kept) < len(pairs))


def test_set_cookie_filter_same_answers_on_repeat() -> None:
    mw = _middleware()
    first = anyio.run(_call, mw, _scope(None))[1][0]["headers"]
    second = anyio.run(_call, mw, _scope(None))[1][0]["headers"]
    assert first == second == [(b"content-type", b"text/plain"), (b"Set-Cookie", b"session=3")]


def test_deletion_check_caches_attributes_but_not_the_time() -> None:
    value = b"a=1; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT"
    assert is_deletion(value, now=1_700_000_000) is False
    assert is_deletion(b"b=2; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT", now=2e9) is True
    assert is_deletion(b"c; Max-Age=0") is True
    assert is_deletion(b"max-age=0") is False  # no attributes at all


def _page_call(mw: ConsentMiddleware, cookie: bytes | None, root_path: str = "") -> list[Message]:
    """A page view of an HTML page with a gated analytics script that sets an analytics and
    a marketing cookie; returns what the middleware sent."""

    async def app(inner: Scope, receive: Receive, send: Send) -> None:
        body = (
            b"<html><head><title>t</title></head><body><p>page</p>"
            b'<script type="text/plain" data-consent="analytics" src="/a.js"></script>'
            b"</body></html>"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"set-cookie", b"stats_vid=1; Path=/"),
                    (b"set-cookie", b"px_uid=2; Max-Age=60"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    mw.app = app
    scope = _scope(cookie)
    scope["root_path"] = root_path
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(mw, scope, receive, send)
    return sent


def test_visitors_with_other_choices_in_turn_each_get_their_own_page() -> None:
    """The page last rewritten and the Set-Cookie names let through are remembered per set
    of allowed categories: a visitor never gets another's rewrite or cookies."""
    mw = _middleware()
    choices = {
        "analytics": {"analytics"},
        "marketing": {"marketing"},
        "both": {"analytics", "marketing"},
        "none": set(),
    }
    cookies = {
        name: f"consent={mw.cookie.dumps(mw.cookie.decision(granted, receipt_id=None, subject_id=name))}".encode()
        for name, granted in choices.items()
    }
    # Each of the two orders makes the other key change between consecutive pages.
    by_root = [(root, name) for root in ("", "/shop", "") for _ in range(2) for name in choices]
    by_choice = [(root, name) for _ in range(2) for name in choices for root in ("", "/shop")]
    for root, name in by_root + by_choice:
        granted = choices[name]
        start, body = _page_call(mw, cookies[name], root)
        set_names = sorted(
            v.split(b"=")[0].decode() for k, v in start["headers"] if k == b"set-cookie"
        )
        expected = {"analytics": "stats_vid", "marketing": "px_uid"}
        assert set_names == sorted(expected[c] for c in granted), (name, root)
        page = body["body"]
        activated = b'<script data-consent="analytics" src="/a.js">' in page
        assert activated == ("analytics" in granted), (name, root)
        assert f'src="{root}/_consent/banner.js"'.encode() in page, (name, root)
        # Consent Mode's update names exactly what this visitor granted.
        assert (b'"ad_storage":"granted"' in page) == ("marketing" in granted)
        assert (b'"analytics_storage":"granted"' in page) == ("analytics" in granted)
        length = dict(start["headers"])[b"content-length"]
        assert int(length) == len(page)


@pytest.mark.parametrize("inject", [True, False])
def test_set_cookie_names_let_through_are_remembered_per_choice_and_by_name(inject: bool) -> None:
    """A response that is not a page goes through the Set-Cookie filter of either path; the
    names remembered as let through never pass for other choices, and a nameless cookie
    whose value looks like such a name is still judged on its own (undeclared: blocked)."""
    sent_cookies = [b"stats_vid=1; Path=/", b"px_uid=2", b"stats_vid", b"px_uid; Path=/"]

    async def app(inner: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json")]
        headers += [(b"set-cookie", value) for value in sent_cookies]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = ConsentMiddleware(
        app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://", inject_banner=inject
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    choices = [{"analytics"}, {"marketing"}, set(), {"analytics", "marketing"}]
    for granted in choices * 3:
        state = mw.cookie.decision(granted, receipt_id=None, subject_id="s")
        sent.clear()
        anyio.run(mw, _scope(f"consent={mw.cookie.dumps(state)}".encode()), receive, send)
        got = [v for k, v in sent[0]["headers"] if k == b"set-cookie"]
        expected = [b"stats_vid=1; Path=/"] * ("analytics" in granted)
        expected += [b"px_uid=2"] * ("marketing" in granted)
        assert got == expected, granted
    assert mw.metrics.snapshot()["undeclared"] == {"": 24}


def test_a_visitor_without_a_decision_after_one_with_the_same_choices_gets_the_form() -> None:
    mw = _middleware()
    decided = mw.cookie.decision(set(), receipt_id=None, subject_id="s")
    cookie = f"consent={mw.cookie.dumps(decided)}".encode()
    for _ in range(2):
        assert b"<noscript>" not in _page_call(mw, cookie)[1]["body"]
        assert b"<noscript>" in _page_call(mw, None)[1]["body"]


# --------------------------------------------------------------------------- HTML

_HEADER_NAMES = [
    b"content-type",
    b"Content-Type",
    b"content-length",
    b"Content-Length",
    b"etag",
    b"content-encoding",
    b"content-security-policy",
    b"content-security-policy-report-only",
    b"content-range",
    b"content-disposition",
    b"set-cookie",
    b"Set-Cookie",
    b"x-other",
]
_HEADER_VALUES = [
    b"text/html",
    b"text/html; charset=utf-8",
    b"text/plain",
    b"12",
    b"gzip",
    b"identity",
    b"script-src 'nonce-abc'",
    b"default-src 'self' 'nonce-xyz'",
    b"bytes 0-1/2",
    b"attachment; filename=a.html",
    b"inline",
    b"a=1; Path=/",
    b"b=2; Max-Age=60",
    b"c=3; Max-Age=0",
    b"nameless",
    b"a",
]


def _page_nonce_reference(method: str, start: Message) -> str | None:
    """Whether a response is a rewritable page (and its scripts' nonce), written out header by
    header with plain name comparisons: the oracle for the header pass of scan_start."""
    if method.upper() == "HEAD":
        return None
    try:
        status = int(start.get("status", 200))
    except (TypeError, ValueError):
        return None
    if status < 200 or status in (204, 205, 206, 304):
        return None
    content_type = None
    nonce = report_only = ""
    for name, value in start.get("headers", ()):
        if not (isinstance(name, bytes | bytearray) and isinstance(value, bytes | bytearray)):
            return None
        name, value = bytes(name).lower(), bytes(value)
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-encoding":
            if any(c.strip().lower() not in (b"", b"identity") for c in value.split(b",")):
                return None
        elif name == b"content-security-policy":
            nonce = nonce or csp_script_nonce(value)
        elif name == b"content-security-policy-report-only":
            report_only = report_only or csp_script_nonce(value)
        elif name == b"content-range" or (
            name == b"content-disposition"
            and value.split(b";", 1)[0].strip().lower() == b"attachment"
        ):
            return None
    if content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"text/html":
        return None
    return nonce or report_only


@settings(max_examples=400, deadline=None)
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(_HEADER_NAMES),
            st.sampled_from(_HEADER_VALUES),
            st.booleans(),
        ),
        max_size=9,
    ),
    method=st.sampled_from(["GET", "HEAD", "head", "POST"]),
    status=st.sampled_from([200, 204, 304, 404, 101, "200", "x"]),
    kept_names=st.sampled_from([(), (b"a",)]),
    changed=st.booleans(),
)
def test_one_header_pass_equals_page_check_and_header_rebuild(
    headers: list[tuple[bytes, bytes, bool]],
    method: str,
    status: Any,
    kept_names: tuple[bytes, ...],
    changed: bool,
) -> None:
    """scan_start and with_length give what the page check written out above, a Set-Cookie
    filter then fix_headers give, and offer every Set-Cookie value not named in kept_names to
    the filter exactly once."""
    raw = [(bytearray(n) if as_array else n, v) for n, v, as_array in headers]
    start = {"type": "http.response.start", "status": status, "headers": raw}
    allowed = frozenset({"analytics"})

    def keep(value: bytes, allowed: frozenset[str]) -> bool:
        offered.append(value)
        return value.startswith(b"a=") or b"Max-Age=0" in value  # a: always kept

    offered: list[bytes] = []
    kept, nonce, layout = scan_start(method, start, keep, allowed, kept_names)
    scan_offered = offered
    offered = []
    assert nonce == _page_nonce_reference(method, start)
    assert html_page_nonce(method, start) == nonce
    cookies = [bytes(v) for n, v in raw if bytes(n).lower() == b"set-cookie"]
    assert scan_offered == [v for v in cookies if not (kept_names and v.startswith(b"a="))]
    expected = [
        (bytes(n), bytes(v))
        for n, v in raw
        if bytes(n).lower() != b"set-cookie" or keep(bytes(v), allowed)
    ]
    passed = kept if kept is not None else raw
    assert passed == expected
    assert all(type(n) is bytes and type(v) is bytes for n, v in passed)
    extra = ((b"vary", b"Cookie"),)
    rebuilt = with_length(expected, layout, b"99", changed, extra)
    assert rebuilt == fix_headers(expected, content_length=b"99", body_changed=changed, extra=extra)


_FRAGMENTS = [
    b"<head>",
    b"</head>",
    b"<body>",
    b"<title>a<b></title>",
    b"<style>x</style>",
    b"<script>s()</script>",
    b'<script type="text/plain" data-consent="analytics" src="/a.js"></script>',
    b'<img data-consent="analytics" data-src="/p.gif">',
    b"<iframe src=y></iframe>",
    b"<!-- <script> -->",
    b"<textarea></head></textarea>",
    b"text",
    b"<a title='<body>'>",
    b"<script",
    b"</title",
    b"<",
]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(_FRAGMENTS), max_size=20),
    granted=st.sampled_from([(), ("analytics",)]),
    body_start=st.sampled_from([b"", b"<noscript>form</noscript>"]),
)
def test_whole_document_rewrite_equals_streaming(
    parts: list[bytes], granted: tuple[str, ...], body_start: bytes
) -> None:
    doc = b"".join(parts)

    def rewriter() -> HtmlRewriter:
        return HtmlRewriter(
            head_start=b"<HS>", head_end=b"<HE>", body_start=body_start, granted=granted
        )

    whole = rewriter()
    streamed = rewriter()
    out = b"".join(streamed.feed(doc[i : i + 7]) for i in range(0, len(doc), 7))
    assert whole.rewrite(doc) == out + streamed.close()
    assert whole.changed == streamed.changed


def test_every_gated_tag_of_a_large_document_is_activated() -> None:
    row = b"<p>text</p>" * 30 + b'<img data-consent="analytics" data-src="/p.gif">\n'
    doc = b"<html><head></head><body>" + row * 2000 + b"</body></html>"
    out = HtmlRewriter(head_end=b"<HE>", granted=("analytics",)).rewrite(doc)
    assert out.count(b'<img data-consent="analytics" src="/p.gif">') == 2000


# --------------------------------------------------------------------------- stores


async def _fill_concurrently(url: str, duplicate_of: str | None = None) -> list[Any]:
    store = open_store(url, SIGNER)
    results: list[Any] = [None] * 20
    try:

        async def one(i: int) -> None:
            receipt = make_receipt(subject_id=f"s{i}")
            if i == 7 and duplicate_of is not None:
                receipt = make_receipt(receipt_id=duplicate_of)
            try:
                results[i] = await store.append(receipt)
            except ValueError as exc:
                results[i] = exc

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
    finally:
        await store.close()
    return results


def _check_group_commit(url: str) -> None:
    first = anyio.run(_fill_concurrently, url)
    assert sorted(r.seq for r in first) == list(range(1, 21))
    # One rejected receipt in a batch does not take the others down.
    second = anyio.run(_fill_concurrently, url, first[0].receipt_id)
    assert isinstance(second[7], ValueError)
    assert sorted(r.seq for i, r in enumerate(second) if i != 7) == list(range(21, 40))
    store = open_store(url, SIGNER)
    result = verify_store(store, SIGNER)
    assert (result.ok, result.count) == (True, 39), result.message()


def test_sqlite_group_commit(tmp_path: Path) -> None:
    _check_group_commit(f"sqlite:///{tmp_path / 'c.db'}")


@pytest.mark.postgres
def test_postgres_group_commit(pg_url: str) -> None:
    _check_group_commit(pg_url)


# --------------------------------------------------------------------------- audit


def _sealed_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}"

    async def fill() -> None:
        store = open_store(url, SIGNER)
        try:
            for i in range(5):
                await store.append(
                    make_receipt(subject_id=f'odd "subject" \\ {i}', page="/ü\u2028")
                )
        finally:
            await store.close()

    anyio.run(fill)
    return url


def test_export_lines_written_from_the_body_match_the_parsed_receipts(tmp_path: Path) -> None:
    url = _sealed_store(tmp_path)
    store = open_store(url, SIGNER)
    for signer in (SIGNER, None):
        out = io.StringIO()
        assert export(store, out, signer=signer) == 5
        lines = out.getvalue().split("\n")[:-1]  # (U+2028 in a value is not a line end)
        for line, row in zip(lines, store.iter_raw(), strict=False):
            assert json.loads(line) == row.to_stored().to_dict()
            assert _Fast(signer).line(row) is not None
        path = tmp_path / "export.jsonl"
        path.write_text(out.getvalue(), encoding="utf-8")
        assert verify_file(path, SIGNER).ok


def test_rows_the_fast_path_cannot_prove_take_the_full_way(tmp_path: Path) -> None:
    url = _sealed_store(tmp_path)
    store = open_store(url, SIGNER)
    rows = list(store.iter_raw())
    fast = _Fast(SIGNER)
    assert all(fast.verified(r, keyed=True) for r in rows)
    assert all(link_kind(SIGNER, r) == "keyed" for r in rows)  # the plain way agrees
    row = rows[2]
    edited = [
        ReceiptRow(**{**row.__dict__, "event": "refused"}),
        ReceiptRow(**{**row.__dict__, "timestamp": row.timestamp + 1}),
        ReceiptRow(**{**row.__dict__, "body": row.body.replace("given", "refused")}),
        ReceiptRow(**{**row.__dict__, "kid": "0" * 12}),
    ]
    assert not any(fast.verified(r, keyed=True) for r in edited)
    assert [fast.line(r) is None for r in edited] == [False, False, True, True]
    # The link: the quick check accepts a row exactly when the chain module's link holds.
    relinked = [
        ReceiptRow(**{**row.__dict__, "seq": row.seq + 1}),
        ReceiptRow(**{**row.__dict__, "prev_hash": rows[0].hash}),
        ReceiptRow(**{**row.__dict__, "hash": rows[1].hash}),
        ReceiptRow(
            **{
                **row.__dict__,
                "hash": chain_hash(row.prev_hash, row.body, row.kid, row.signature),
            }
        ),
    ]
    for candidate in [*rows, *relinked]:
        for keyed in (True, False):
            expected = link_kind(SIGNER, candidate) == ("keyed" if keyed else "unkeyed")
            assert fast.verified(candidate, keyed=keyed) == expected
    assert [link_kind(SIGNER, r) for r in relinked] == [None, None, None, "unkeyed"]

    execute_sql(url, "UPDATE consent_receipts SET event = 'refused' WHERE seq = 3")
    result = verify_store(store, SIGNER)
    assert not result.ok
    assert result.seq == 3
    assert "event differs from the signed body" in result.reason


def test_long_cookie_names_are_parsed_but_not_kept() -> None:
    mw = _middleware()
    long_name = b"x" * 300
    header = b"session=s; " + long_name + b"=1; px_uid=2"
    for _ in range(2):
        view = mw.filter.view(header)
        assert [item[1] for item in view.shape.items] == ["session", "x" * 300, "px_uid"]
    assert long_name.decode() not in mw.filter._names
    assert "px_uid" in mw.filter._names


def test_visitors_sending_the_same_cookies_share_a_shape_but_not_a_decision() -> None:
    """Headers with the same cookies (each visitor's own values) are filtered with one cached
    shape; each consent cookie is still verified on its own: a forged one among genuine ones
    is no decision, and every visitor gets their own choice and subject."""
    mw = _middleware()
    cookie = mw.cookie
    choices = [{"analytics"}, set(), {"analytics", "marketing"}]
    headers = []
    for i, granted in enumerate(choices * 3):
        state = cookie.decision(granted, receipt_id=f"r-{i}", subject_id=f"s-{i}")
        headers.append(
            b"consent=%s; session=v%d; stats_vid=a%d; px_uid=m%d"
            % (cookie.dumps(state).encode(), i, i, i)
        )
    genuine = headers[0].split(b";")[0]
    forged = genuine[:-3] + (b"AAA" if not genuine.endswith(b"AAA") else b"BBB")
    headers.append(headers[0].replace(genuine, forged))

    async def visits() -> list[Scope]:
        return [(await _call(mw, _scope(header)))[0] for header in headers * 2]

    seen = anyio.run(visits)
    assert len(mw.filter._shapes) == 1
    for i, inner in enumerate(seen):
        header = headers[i % len(headers)]
        state = inner["state"]["consent"]
        sent = dict(
            pair.split(b"=", 1)
            for v in (v for k, v in inner["headers"] if k == b"cookie")
            for pair in v.split(b"; ")
        )
        if i % len(headers) == len(headers) - 1:  # the forged one
            assert not state.decided
            assert sorted(sent) == [b"consent", b"session"]
            continue
        n = i % len(headers)
        assert state.subject_id == f"s-{n}"
        assert set(state.granted) == choices[n % 3]
        expected = [b"consent", b"session"]
        expected += [b"stats_vid"] if "analytics" in state.granted else []
        expected += [b"px_uid"] if "marketing" in state.granted else []
        assert sorted(sent) == sorted(expected)
        assert sent[b"session"] == b"v%d" % n
        assert header.startswith(b"consent=" + sent[b"consent"])


def test_the_shapes_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mw_module, "_SHAPE_CACHE_LIMIT", 8)
    mw = _middleware()

    async def many() -> None:
        for i in range(30):
            await _call(mw, _scope(b"session=1; n%d=2" % i))

    anyio.run(many)
    assert len(mw.filter._shapes) == 8
    assert b"session=; n29=" in mw.filter._shapes  # the newest stay

"""Hostile input, generated: property-based fuzzing of the cookie parsers, the consent-cookie
decoder and the decision endpoint (driven in process through the real middleware and a real
SQLite store).

What must hold for every input: no exception escapes, no 500, no header that could split the
response, nothing recorded and no cookie set for a refused body, and a recorded decision grants
exactly what the visitor asked for (never a category that was not named) and is enforced on the
next page.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent import ConsentMiddleware
from consent.cookies import (
    build_deletion,
    cookie_pairs,
    is_deletion,
    parse_cookie_date,
    set_cookie_name,
)
from consent.policy import load_policy
from consent.state import ConsentCookie
from consent.store import ReceiptStore, open_store

from . import launcher
from .asgi import Answer, request
from .harness import KEY, SIGNER, record, scaled, sqlite_url

POLICY = load_policy(launcher.POLICY)
CATEGORIES = frozenset(POLICY.categories)
OPTIONAL = frozenset(POLICY.optional)
NECESSARY = POLICY.necessary
ORIGIN = [(b"origin", b"http://testserver")]
JSON = [*ORIGIN, (b"content-type", b"application/json")]
FORM = [*ORIGIN, (b"content-type", b"application/x-www-form-urlencoded")]
REFUSED = {400, 403, 405, 413, 415, 422}

#: Examples per fuzzer in the quick run, and in the long (``slow``) run.
QUICK = 200
LONG = scaled(2000, 200)


#: Examples run per fuzzer (reported at the end of the module).
EXAMPLES: Counter[str] = Counter()


def fuzz(*args: Any, **kwargs: Any) -> Callable[[Callable[..., None]], Any]:
    """``@given(...)`` with the quick budget; ``long_run(test)`` gives the same test with the
    long budget, marked ``slow``."""

    def decorate(body: Callable[..., None]) -> Any:
        @functools.wraps(body)
        def test(*a: Any, **kw: Any) -> None:
            EXAMPLES[body.__name__] += 1
            body(*a, **kw)

        wrapped = settings(
            max_examples=QUICK,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(given(*args, **kwargs)(test))
        wrapped.long = settings(
            max_examples=LONG,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(given(*args, **kwargs)(test))
        return wrapped

    return decorate


def long_run(test: Any) -> Any:
    return pytest.mark.slow(test.long)


@pytest.fixture(scope="module", autouse=True)
def report_examples() -> Iterator[None]:
    yield
    if EXAMPLES:
        record(
            "fuzz: examples per fuzzer", quick=QUICK, long=LONG, **dict(sorted(EXAMPLES.items()))
        )


# --------------------------------------------------------------------------- the site


@dataclass
class Site:
    app: ConsentMiddleware
    store: ReceiptStore
    runner: asyncio.Runner

    def call(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        *,
        chunk: int = 0,
    ) -> Answer:
        return self.runner.run(request(self.app, method, path, headers, body, chunk=chunk))

    def count(self) -> int:
        return self.store.count()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The reliability site behind the middleware, with a real SQLite store, in process."""
    store = open_store(sqlite_url(tmp_path_factory.mktemp("fuzz") / "consent.db"), SIGNER)
    app = ConsentMiddleware(launcher.site, policy=POLICY, secret_key=KEY, store=store)
    with asyncio.Runner() as runner:
        here = Site(app, store, runner)
        assert here.call("POST", "/_consent", JSON, b'{"accept": []}').status == 200
        try:
            yield here
        finally:
            runner.run(app.endpoints.aclose())


def consent_value(answer: Answer) -> str:
    (header,) = [c for c in answer.set_cookies if c.startswith(b"consent=")]
    return header.split(b";", 1)[0][len(b"consent=") :].decode("ascii")


def check_decision(site: Site, answer: Answer, before: int) -> frozenset[str] | None:
    """The invariants of any POST: a refusal records nothing and sets no cookie; a recorded
    decision sets exactly one consent cookie (plus deletions), is in the store, and the next
    page obeys it. Returns the granted categories, or None for a refusal."""
    after = site.count()
    assert answer.status != 500
    if answer.status in REFUSED:
        assert after == before, "a refused body recorded something"
        assert answer.set_cookies == []
        assert json.loads(answer.body)["error"]
        return None
    assert answer.status in (200, 303), (answer.status, answer.body[:300])
    assert after == before + 1
    others = [c for c in answer.set_cookies if not c.startswith(b"consent=")]
    assert all(is_deletion(c) for c in others), others
    value = consent_value(answer)
    state, subject = site.app.cookie.loads(value)
    assert state.decided
    assert subject
    assert state.granted <= OPTIONAL
    stored = site.runner.run(site.store.latest_for_subject(subject))
    assert stored is not None
    assert stored.receipt.receipt_id == state.receipt_id
    assert stored.receipt.granted == sorted(state.granted)
    assert stored.receipt.refused == sorted(OPTIONAL - state.granted)
    # The decision is enforced: the next page sets only what it allows.
    page = site.call("GET", "/", [(b"cookie", f"consent={value}".encode())])
    for header in page.set_cookies:
        category = launcher.PAGE_COOKIES[set_cookie_name(header)]
        assert category == "necessary" or category in state.granted, header
    return state.granted


def post(site: Site, headers: list[tuple[bytes, bytes]], body: bytes, chunk: int = 0) -> Answer:
    return site.call("POST", "/_consent", headers, body, chunk=chunk)


# --------------------------------------------------------------------------- endpoint bodies

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=utf-8",
            b"Application/JSON",
            b"application/x-www-form-urlencoded",
            b"application/x-www-form-urlencoded; charset=latin-1",
            b"text/plain",
            b"",
            b"multipart/form-data; boundary=x",
            b";application/json",
            b"application/json\x00",
        ]
    ),
    st.binary(max_size=40),
)
VALID_BODIES = [
    b'{"accept": ["analytics"]}',
    b'{"accept": "all", "page": "/x"}',
    b'{"accept": [], "refuse": ["marketing"]}',
    b"accept=analytics&accept=preferences&next=/a",
    b"accept=all",
    b"accept=none&next=//evil.example",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid body with a few bytes flipped, dropped or inserted."""
    body = bytearray(draw(st.sampled_from(VALID_BODIES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        op = draw(st.sampled_from(["flip", "drop", "insert"]))
        if op == "insert" or not body:
            body[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif op == "drop":
            del body[min(at, len(body) - 1)]
        else:
            body[min(at, len(body) - 1)] = draw(st.integers(0, 255))
    return bytes(body)


@fuzz(
    body=st.one_of(st.binary(max_size=1024), mutated(), st.sampled_from(VALID_BODIES)),
    content_type=CONTENT_TYPES,
    chunk=st.integers(0, 64),
    length=st.sampled_from(["none", "true", "short", "long", "junk"]),
)
def test_arbitrary_bodies(
    site: Site, body: bytes, content_type: bytes, chunk: int, length: str
) -> None:
    headers = [*ORIGIN, (b"content-type", content_type)]
    declared = {"true": len(body), "short": max(0, len(body) - 3), "long": len(body) + 5}
    if length in declared:
        headers.append((b"content-length", str(declared[length]).encode()))
    elif length == "junk":
        headers.append((b"content-length", b"12abc"))
    before = site.count()
    answer = post(site, headers, body, chunk)
    check_decision(site, answer, before)


def test_oversized_and_deeply_nested_bodies(site: Site) -> None:
    before = site.count()
    big = b'{"accept": [], "page": "' + b"x" * 20000 + b'"}'
    assert post(site, JSON, big).status == 413
    assert post(site, JSON, big, chunk=1000).status == 413
    lying = [*JSON, (b"content-length", b"10")]
    assert post(site, lying, big, chunk=4096).status == 413
    assert site.count() == before
    # Nesting beyond the recursion limit, within the 16 KiB bound.
    nested = b'{"accept": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    answer = post(site, JSON, nested)
    assert check_decision(site, answer, before) is None
    assert answer.status == 400


@pytest.mark.parametrize(
    "declared",
    [b"-5", b"+25", b"2_5", b" 25", b"25, 25", b"\xef\xbc\x92\xef\xbc\x95", b"0x19", b""],
)
def test_a_content_length_that_is_not_digits_is_refused(site: Site, declared: bytes) -> None:
    """int() would read several of these (and the body is 25 bytes long)."""
    before = site.count()
    body = b'{"accept": ["analytics"]}'
    answer = post(site, [*JSON, (b"content-length", declared)], body)
    assert answer.status == 400
    assert check_decision(site, answer, before) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"accept": [], "page": "\\ud800"}',
        b'{"accept": ["\\udfff"]}',
        b'{"accept": [], "refuse": ["\\ud83d"]}',
    ],
    ids=["page", "accept", "refuse"],
)
def test_lone_surrogates_in_json_strings(site: Site, body: bytes) -> None:
    before = site.count()
    try:
        answer = post(site, JSON, body)
    except UnicodeEncodeError as exc:
        raise AssertionError(f"exception escaped the middleware: {exc!r}") from exc
    assert check_decision(site, answer, before) is None
    assert answer.status == 400


JUNK_NAMES = st.one_of(
    st.sampled_from(
        [
            "analytics\r\nSet-Cookie: injected=1",
            "analytics;",
            "analytics; marketing",
            "analytics,marketing",
            "Analytics",
            " analytics",
            "necessary\n",
            "ALL",
            "all ",
            "none;",
            "marketing\x00",
            "",
        ]
    ),
    st.text(max_size=20),
)
CATEGORY_NAMES = st.one_of(st.sampled_from(sorted(CATEGORIES)), JUNK_NAMES)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
ABSENT = object()


def expected_json(payload: Any) -> frozenset[str] | None:
    """What docs/endpoints.md says a JSON body means: the granted categories, or None when it
    must be refused."""
    if not isinstance(payload, dict) or "accept" not in payload:
        return None
    accept = payload["accept"]
    if accept == "all":
        granted = set(OPTIONAL)
    elif accept == "none":
        granted = set()
    elif isinstance(accept, list) and all(isinstance(a, str) for a in accept):
        granted = set(accept)
    else:
        return None
    refuse = payload.get("refuse", [])
    if not isinstance(refuse, list) or not all(isinstance(r, str) for r in refuse):
        return None
    if (granted | set(refuse)) - CATEGORIES or set(refuse) & NECESSARY or granted & set(refuse):
        return None
    return frozenset(granted - NECESSARY)


@fuzz(
    accept=st.one_of(
        st.just("all"), st.just("none"), st.lists(CATEGORY_NAMES, max_size=6), JSON_VALUES
    ),
    refuse=st.one_of(st.just(ABSENT), st.lists(CATEGORY_NAMES, max_size=4), JSON_VALUES),
    page=st.one_of(st.just(ABSENT), st.text(max_size=200), JSON_VALUES),
    method=st.one_of(st.just(ABSENT), st.sampled_from(["banner", "form", "api", "gpc", "x\r\n"])),
    shape=st.sampled_from(["object", "object", "object", "list", "no accept", "string"]),
)
def test_json_decisions(
    site: Site, accept: Any, refuse: Any, page: Any, method: Any, shape: str
) -> None:
    data: dict[str, Any] = {"accept": accept}
    for name, value in (("refuse", refuse), ("page", page), ("method", method)):
        if value is not ABSENT:
            data[name] = value
    payload: Any = data
    if shape == "list":
        payload = [data]
    elif shape == "no accept":
        payload = {k: v for k, v in data.items() if k != "accept"}
    elif shape == "string":
        payload = json.dumps(data)
    expected = expected_json(payload)
    before = site.count()
    answer = post(site, JSON, json.dumps(payload).encode())
    granted = check_decision(site, answer, before)
    assert granted == expected, (payload, answer.status, answer.body[:200])
    if expected is not None:
        body = json.loads(answer.body)
        assert body["event"] in ("given", "refused", "updated")
        assert body["receipt"]["granted"] == sorted(expected)
        page = data.get("page")
        if isinstance(page, str) and page.startswith("/") and not page.startswith("//"):
            # a path of the site, without its query string or fragment
            kept = page.split("?", 1)[0].split("#", 1)[0][:2000] or None
            assert body["receipt"]["page"] == kept
        else:  # anything else (another site, not a path) is not recorded as the page
            assert body["receipt"]["page"] is None
    else:
        assert answer.status == 422


NEXTS = st.one_of(
    st.sampled_from(
        [
            "/",
            "/article?x=1",
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "/ok\r\nSet-Cookie: injected=1",
            "/ok\nLocation: https://evil.example",
            "/a;b=c",
            "javascript:alert(1)",
            "/\t/evil.example",
            " /x",
            "/%0d%0aSet-Cookie:%20injected=1",
            "/" + "x" * 2100,
        ]
    ),
    st.text(max_size=30),
)
FORM_FIELDS = st.lists(
    st.one_of(
        st.tuples(st.just("accept"), st.one_of(st.sampled_from(["all", "none"]), CATEGORY_NAMES)),
        st.tuples(st.just("next"), NEXTS),
        st.tuples(st.sampled_from(["page", "method", "save", "refuse"]), st.text(max_size=12)),
        st.tuples(st.text(max_size=6), st.text(max_size=12)),
    ),
    max_size=8,
)


def safe_next(value: str) -> bool:
    return (
        value.startswith("/")
        and not value.startswith("//")
        and not any(c in value for c in "\\\r\n\t")
        and len(value) <= 2000
    )


@fuzz(fields=FORM_FIELDS, wants_json=st.booleans(), encoded=st.booleans())
def test_form_decisions(
    site: Site, fields: list[tuple[str, str]], wants_json: bool, encoded: bool
) -> None:
    if encoded:
        body = urlencode(fields).encode()
    else:  # as a careless client sends it: nothing escaped
        body = "&".join(f"{k}={v}" for k, v in fields).encode()
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:  # "%ff" unescaped: not UTF-8 once decoded
        pairs = None
    values = [v for k, v in pairs or () if k == "accept"]
    # A button's value ("all" or "none") decides over the ticked boxes; both at once is an error.
    if "all" in values:
        requested = set(OPTIONAL) if "none" not in values else {"<both all and none>"}
    else:
        requested = set() if "none" in values else {v for v in values if v}
    expected = None if pairs is None or requested - CATEGORIES else frozenset(requested - NECESSARY)
    headers = [*FORM, (b"accept", b"application/json")] if wants_json else FORM
    before = site.count()
    answer = post(site, headers, body)
    granted = check_decision(site, answer, before)
    assert granted == expected, (pairs, answer.status, answer.body[:200])
    if expected is None:
        assert answer.status == (400 if pairs is None else 422)
        return
    if wants_json:
        assert answer.status == 200
        return
    assert answer.status == 303
    location = (answer.get(b"location") or b"").decode("latin-1")
    assert location.startswith("/"), location
    assert not location.startswith("//"), location
    assert "\\" not in location
    nexts = [v for k, v in pairs if k == "next"]
    if nexts and safe_next(nexts[-1]):
        assert unquote(location) == unquote(nexts[-1])
    else:
        assert location == "/"


# --------------------------------------------------------------------------- cross-site


HOSTILE_ORIGINS = [
    b"http://evil.example",
    b"https://evil.example",
    b"http://testserver.evil.example",
    b"http://sub.testserver",
    b"http://testserver:8080",
    b"http://evil.example:80",
    b"null",
    b"file://",
    b"",
]
SAME_ORIGINS = [
    b"http://testserver",
    b"https://testserver",
    b"HTTP://TESTSERVER",
    b"http://testserver/",
]
FETCH_SITES = [None, b"cross-site", b"same-site", b"none", b"Same-Origin", b"same-origin"]


@pytest.mark.parametrize("method", ["json", "form", "delete"])
def test_cross_site_matrix(site: Site, method: str) -> None:
    """Every Origin x Sec-Fetch-Site combination: only same-origin requests are recorded."""
    cases = itertools.product([None, *HOSTILE_ORIGINS, *SAME_ORIGINS], FETCH_SITES)
    for origin, fetch_site in cases:
        headers: list[tuple[bytes, bytes]] = []
        if origin is not None:
            headers.append((b"origin", origin))
        if fetch_site is not None:
            headers.append((b"sec-fetch-site", fetch_site))
        allowed = fetch_site == b"same-origin" or origin in SAME_ORIGINS
        before = site.count()
        if method == "delete":
            answer = site.call("DELETE", "/_consent", headers)
        elif method == "json":
            content = [(b"content-type", b"application/json")]
            answer = post(site, headers + content, b'{"accept": "all"}')
        else:
            content = [(b"content-type", b"application/x-www-form-urlencoded")]
            answer = post(site, headers + content, b"accept=all&next=/")
        check_decision(site, answer, before)
        assert (answer.status != 403) == allowed, (origin, fetch_site, answer.status)


# --------------------------------------------------------------------------- cookie parsers

OCTETS = st.binary(max_size=300)
NAME_OCTETS = st.binary(max_size=12).filter(lambda b: b";" not in b and b"=" not in b)
VALUE_OCTETS = st.binary(max_size=20).filter(lambda b: b";" not in b)


@fuzz(
    header=st.one_of(
        OCTETS,
        st.lists(st.tuples(NAME_OCTETS, VALUE_OCTETS)).map(
            lambda pairs: b"; ".join(n + b"=" + v for n, v in pairs)
        ),
    )
)
def test_cookie_header_parser(header: bytes) -> None:
    pairs = cookie_pairs(header)
    for name, raw in pairs:
        assert raw
        assert raw in header
        assert b";" not in raw
        assert raw == raw.strip(b" \t")
        eq = raw.find(b"=")
        assert name == ("" if eq < 0 else raw[:eq].strip(b" \t").decode("latin-1"))
    # Rebuilding the header from the kept pairs gives the same pairs back (what the middleware
    # does when it drops cookies).
    assert cookie_pairs(b"; ".join(raw for _, raw in pairs)) == pairs


MAX_AGES = st.one_of(
    st.integers(-(10**30), 10**30),
    st.integers(0, 4000).map(lambda n: int("9" * n) if n else 0),
)
DATES = st.integers(-(10**10), 253402300799)


def http_date(ts: int) -> str:
    return formatdate(ts, usegmt=True)


# One expiry attribute, with what each reading makes of it: (text, RFC 6265bis value, Chromium
# value). A value is an int (seconds of Max-Age, or the Expires time), None for an attribute
# that reading finds invalid, or IGNORED for one it skips (longer than 1,024 bytes).
IGNORED = object()
Attribute = tuple[bytes, Any, Any]


def _max_age(n: int) -> Attribute:
    text = str(n).encode()
    return (
        (b"Max-Age=" + text, IGNORED, IGNORED) if len(text) > 1024 else (b"Max-Age=" + text, n, n)
    )


MAX_AGE_ATTRS = st.one_of(
    MAX_AGES.map(_max_age),
    st.sampled_from(
        [
            (b"Max-Age=" + bad, None, None)
            for bad in (b"", b"abc", b"1e9", b"-", b"0x10", b'"0"', b"0 0", b"+-1")
        ]
        + [(b"Max-Age=+5", None, 5), (b"Max-Age=+0", None, 0), (b"Max-Age", None, None)]
    ),
)
EXPIRES_ATTRS = st.one_of(
    st.integers(-11644473600, 253402300799).map(
        lambda ts: (b"Expires=" + http_date(ts).encode(), ts, ts)
    ),
    st.sampled_from(
        [
            (b"Expires=" + bad, None, None)
            for bad in (
                b"bogus",
                b"",
                b"Sat, 31 Feb 1970 00:00:00 GMT",
                b"Thu, 01 Jan 1970 25:00:00 GMT",
            )
        ]
    ),
)
NOISE_ATTRS = st.sampled_from(
    [
        (text, IGNORED, IGNORED)
        for text in (b"Path=/", b"HttpOnly", b"Secure", b"SameSite=Lax", b"Domain=.example", b"")
    ]
)


def _reading(attrs: list[Attribute], side: int, now: float) -> bool:
    """Whether one reading deletes: RFC 6265bis (side 1) goes by the last valid Max-Age, else
    the last valid Expires; Chromium (side 2) by the last Max-Age if it reads as a number, else
    the last Expires."""
    ages = [a[side] for a in attrs if a[0].startswith(b"Max-Age") and a[side] is not IGNORED]
    dates = [a[side] for a in attrs if a[0].startswith(b"Expires") and a[side] is not IGNORED]
    if side == 1:
        ages = [v for v in ages if v is not None]
        dates = [v for v in dates if v is not None]
    if ages and ages[-1] is not None:
        return bool(ages[-1] <= 0)
    return bool(dates and dates[-1] is not None and dates[-1] <= now)


@fuzz(
    name=NAME_OCTETS,
    value=VALUE_OCTETS,
    attrs=st.lists(st.one_of(MAX_AGE_ATTRS, EXPIRES_ATTRS, NOISE_ATTRS), max_size=6),
)
def test_set_cookie_parsers(name: bytes, value: bytes, attrs: list[Attribute]) -> None:
    header = b"; ".join([name + b"=" + value, *(a[0] for a in attrs)])
    assert set_cookie_name(header) == name.strip(b" \t").decode("latin-1")
    now = time.time()
    # A deletion exactly when both readings delete.
    assert is_deletion(header, now) == (_reading(attrs, 1, now) and _reading(attrs, 2, now))


@fuzz(ts=st.integers(-11644473600, 253402300799), text=st.text(max_size=60))
def test_cookie_dates(ts: int, text: str) -> None:
    assert parse_cookie_date(http_date(ts)) == ts
    found = parse_cookie_date(text)
    assert found is None or isinstance(found, int)


@fuzz(
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=20),
    path=st.sampled_from(["/", "/a", "/a/b"]),
    domain=st.sampled_from([None, ".example.org"]),
    secure=st.booleans(),
    prefix=st.sampled_from(["", "__Host-", "__Secure-"]),
)
def test_deletions_are_deletions(
    name: str, path: str, domain: str | None, secure: bool, prefix: str
) -> None:
    header = build_deletion(prefix + name, path=path, domain=domain, secure=secure)
    assert is_deletion(header)
    assert set_cookie_name(header) == prefix + name
    assert b"\r" not in header
    assert b"\n" not in header


def test_set_cookie_with_a_huge_max_age(site: Site) -> None:
    from starlette.types import Receive, Scope, Send

    header = b"stats_vid=1; Max-Age=" + b"9" * 5000

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"set-cookie", header)]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ConsentMiddleware(app, policy=POLICY, secret_key=KEY, store="memory://")
    try:
        answer = site.runner.run(request(middleware, "GET", "/", []))
    except ValueError as exc:
        raise AssertionError(f"exception escaped the middleware: {exc!r}") from exc
    assert answer.status == 200
    assert answer.set_cookies == []  # analytics, and this visitor has not consented


# --------------------------------------------------------------------------- the consent cookie

COOKIE = ConsentCookie([KEY], POLICY)
OTHER_KEY = ConsentCookie(["not-the-site-key-0123456789abcdef"], POLICY)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


def valid_cookie(granted: frozenset[str], n: int) -> tuple[str, Any]:
    state = COOKIE.decision(
        granted, receipt_id=f"00000000-0000-4000-8000-{n:012d}", subject_id=f"subject-{n}"
    )
    return COOKIE.dumps(state), state


@fuzz(
    value=st.one_of(
        st.text(max_size=300),
        st.text(alphabet=B64, max_size=300),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    )
)
def test_arbitrary_cookie_values_mean_no_decision(value: str) -> None:
    state, subject = COOKIE.loads(value)
    assert not state.decided
    assert subject is None
    assert state.granted == frozenset()


@fuzz(
    granted=st.frozensets(st.sampled_from(sorted(OPTIONAL))),
    n=st.integers(0, 10**6),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["replace", "drop", "insert", "swapcase"]),
            st.integers(0, 10**4),
            st.sampled_from(B64),
        ),
        min_size=1,
        max_size=4,
    ),
    cut=st.one_of(st.none(), st.integers(0, 300)),
)
def test_mutated_cookies(
    granted: frozenset[str], n: int, edits: list[tuple[str, int, str]], cut: int | None
) -> None:
    original, state = valid_cookie(granted, n)
    chars = list(original)
    for op, at, char in edits:
        i = at % (len(chars) + 1)
        if op == "insert":
            chars.insert(i, char)
        elif chars and op == "drop":
            del chars[min(i, len(chars) - 1)]
        elif chars and op == "replace":
            chars[min(i, len(chars) - 1)] = char
        elif chars:
            j = min(i, len(chars) - 1)
            chars[j] = chars[j].swapcase()
    mutated = "".join(chars)[:cut] if cut is not None else "".join(chars)
    found, subject = COOKIE.loads(mutated)
    if found.decided:
        # Only a change that decodes to the very same bytes can still verify (base64 has
        # insignificant trailing bits): then it means exactly what the original meant.
        assert (found.granted, found.receipt_id, found.subject_id) == (
            state.granted,
            state.receipt_id,
            state.subject_id,
        )
    else:
        assert subject in (None, state.subject_id)


@fuzz(granted=st.frozensets(st.sampled_from(sorted(OPTIONAL))), n=st.integers(0, 10**6))
def test_forged_and_expired_cookies(granted: frozenset[str], n: int) -> None:
    value, state = valid_cookie(granted, n)
    assert COOKIE.loads(value)[0].decided
    forged = OTHER_KEY.dumps(state)
    assert COOKIE.loads(forged) == (COOKIE.no_decision, None)
    payload, signature = value.rsplit(".", 1)
    assert not COOKIE.loads(f"{payload}.{OTHER_KEY.dumps(state).rsplit('.', 1)[1]}")[0].decided
    assert not COOKIE.loads(payload)[0].decided
    assert not COOKIE.loads(f"{payload}.{signature[:-4]}")[0].decided
    late = time.time() + POLICY.site.consent_cookie.max_age + 60
    assert COOKIE.loads(value, now=late) == (COOKIE.no_decision, None)


@fuzz(
    value=st.binary(max_size=120).filter(lambda b: b";" not in b),
    others=st.sampled_from([b"", b"; stats_vid=1; px_uid=2; font_size=3; tracker=4"]),
)
def test_forged_cookie_through_the_middleware(site: Site, value: bytes, others: bytes) -> None:
    """Whatever a browser sends as its consent cookie, without the key it decides nothing: the
    app sees no non-necessary cookie and the page sets none."""
    cookie = [(b"cookie", b"consent=" + value + others)]
    seen = site.call("GET", "/seen", cookie)
    assert seen.status == 200
    data = json.loads(seen.body)
    assert data["decided"] is False
    assert set(data["cookies"]) <= {"consent"}
    page = site.call("GET", "/", cookie)
    for header in page.set_cookies:
        name = set_cookie_name(header)
        assert launcher.PAGE_COOKIES[name] == "necessary" or is_deletion(header), header
    receipt = site.call("GET", "/_consent/receipt", cookie)
    assert receipt.status == 404


# --------------------------------------------------------------------------- long runs

test_arbitrary_bodies_long = long_run(test_arbitrary_bodies)
test_json_decisions_long = long_run(test_json_decisions)
test_form_decisions_long = long_run(test_form_decisions)
test_mutated_cookies_long = long_run(test_mutated_cookies)
test_forged_cookie_through_the_middleware_long = long_run(test_forged_cookie_through_the_middleware)

"""Property: whatever cookies come and go, none of a non-allowed category survives either direction,
and every allowed one passes intact."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from consent import ConsentMiddleware
from consent.cookies import cookie_pairs, is_deletion, set_cookie_name
from consent.policy import load_policy

from .helpers import EXAMPLE_POLICY

POLICY = load_policy(EXAMPLE_POLICY)
KNOWN = [
    r.name for c in POLICY.categories.values() for r in c.cookies if r.name and r.name != "consent"
]
FROM_PATTERNS = [
    "stats_ses",
    "stats_ses_x1",
    "_ga",
    "_ga_ABC",
    "_gcl_au",
    "yt-remote-fast",
    "__Secure-lang",
]
TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.",
    min_size=1,
    max_size=12,
)
NAMES = st.one_of(st.sampled_from(KNOWN + FROM_PATTERNS), TOKEN)
VALUES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789%+/=", max_size=20)
ATTRS = st.lists(
    st.sampled_from(
        [
            "Path=/",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Partitioned",
            "Priority=High",
            "Max-Age=3600",
            "Max-Age=0",
            "Expires=Wed, 21 Oct 2099 07:28:00 GMT",
            "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "Domain=.lindenhof-clinic.example",
        ]
    ),
    max_size=4,
)


async def exchange(
    mw_app: ConsentMiddleware, cookie_header: bytes, gpc: bool
) -> tuple[list[bytes], list[bytes]]:
    seen: list[bytes] = []
    sent: list[Message] = []
    headers = [(b"host", b"testserver"), (b"cookie", cookie_header)]
    if gpc:
        headers.append((b"sec-gpc", b"1"))
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": headers,
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await mw_app(scope, receive, send)
    seen = [v for k, v in captured_request_headers.pop() if k == b"cookie"]
    out = [v for k, v in sent[0]["headers"] if k.lower() == b"set-cookie"]
    return seen, out


captured_request_headers: list[list[tuple[bytes, bytes]]] = []
RESPONSE_HEADERS: list[list[tuple[bytes, bytes]]] = [[]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    captured_request_headers.append(scope["headers"])
    await send({"type": "http.response.start", "status": 200, "headers": RESPONSE_HEADERS[0]})
    await send({"type": "http.response.body", "body": b"{}"})


MW = ConsentMiddleware(
    app, policy=POLICY, secret_key="property-key-0123456789", store="memory://", inject_banner=False
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request_cookies=st.lists(st.tuples(NAMES, VALUES), max_size=10),
    response_cookies=st.lists(st.tuples(NAMES, VALUES, ATTRS), max_size=8),
    granted=st.sets(st.sampled_from(POLICY.optional)),
    decided=st.booleans(),
    gpc=st.booleans(),
)
def test_no_cookie_of_a_non_allowed_category_survives(
    request_cookies: list[tuple[str, str]],
    response_cookies: list[tuple[str, str, list[str]]],
    granted: set[str],
    decided: bool,
    gpc: bool,
) -> None:
    pairs = [f"{n}={v}" for n, v in request_cookies]
    if decided:
        state = MW.cookie.decision(granted, receipt_id="r", subject_id="s")
        pairs.insert(0, f"consent={MW.cookie.dumps(state)}")
        allowed = POLICY.necessary | granted
    else:
        allowed = set(POLICY.necessary)
    if gpc:
        allowed -= POLICY.sale_or_share
    RESPONSE_HEADERS[0] = [
        (b"set-cookie", "; ".join([f"{n}={v}", *attrs]).encode())
        for n, v, attrs in response_cookies
    ]

    seen, out = asyncio.run(exchange(MW, "; ".join(pairs).encode(), gpc))

    def ok(name: str) -> bool:
        category = MW.classifier.classify(name)
        return name == "consent" or (category is not None and category in allowed)

    # request side: nothing disallowed reached the app, everything allowed did, byte for byte
    assert len(seen) <= 1
    reached = [raw for _, raw in cookie_pairs(seen[0])] if seen else []
    expected = [raw for name, raw in cookie_pairs("; ".join(pairs).encode()) if ok(name)]
    assert reached == expected

    # response side: every allowed Set-Cookie intact and in order; anything else is a deletion
    input_headers = [v for _, v in RESPONSE_HEADERS[0]]
    allowed_in = [h for h in input_headers if ok(set_cookie_name(h))]
    assert [h for h in out if h in allowed_in] == allowed_in
    for header in out:
        assert ok(set_cookie_name(header)) or is_deletion(header), header

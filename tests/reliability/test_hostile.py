"""Hostile visitors against a real uvicorn server: cross-site decisions, forged consent cookies,
receipts of other visitors, header injection through ``next`` and category names.

Where it matters, responses are read from the socket as raw bytes, so a split header would show.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from consent.policy import load_policy
from consent.state import ConsentCookie
from consent.store import open_store

from . import launcher
from .harness import KEY, SIGNER, Server, cookieless, record, sqlite_url, store_receipts

POLICY = load_policy(launcher.POLICY)
COOKIE = ConsentCookie([KEY], POLICY)
HEADER_LINE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\r\n\x00]*$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("hostile")
    running = Server(sqlite_url(directory / "consent.db"), directory, workers=2, name="hostile")
    try:
        yield running.start()
    finally:
        running.stop()
        print(running.log_text()[-4000:])


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    """A client that keeps no cookies: every request says exactly what it sends."""
    with httpx.Client(base_url=server.base, cookies=cookieless(), timeout=30) as c:
        yield c


def count(server: Server) -> int:
    path = Path(server.store.removeprefix("sqlite:///"))
    return open_store(server.store, SIGNER).count() if path.exists() else 0


def decide(
    client: httpx.Client, server: Server, accept: list[str], page: str = "/"
) -> tuple[str, dict[str, Any]]:
    """A visitor's decision: returns (consent cookie value, receipt)."""
    response = client.post(
        "/_consent", json={"accept": accept, "page": page}, headers=server.origin
    )
    assert response.status_code == 200, response.text
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("consent=")]
    return header.split(";", 1)[0].removeprefix("consent="), response.json()["receipt"]


def cookie(value: str, extra: str = "") -> dict[str, str]:
    return {"Cookie": f"consent={value}{extra}"}


# --------------------------------------------------------------------------- raw HTTP


#: (status line, header lines, body) exactly as received.
Raw = tuple[bytes, list[bytes], bytes]


def raw_exchange(port: int, head: str, body: bytes = b"") -> Raw:
    """Send one request as raw bytes; returns (status line, header lines, body) as received."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    block, _, rest = data.partition(b"\r\n\r\n")
    lines = block.split(b"\r\n")
    return lines[0], lines[1:], rest


def raw_post(server: Server, content_type: str, body: bytes, accept: str = "*/*") -> Raw:
    head = (
        f"POST /_consent HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nOrigin: {server.base}\r\n"
        f"Content-Type: {content_type}\r\nAccept: {accept}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return raw_exchange(server.port, head, body)


def headers_named(lines: list[bytes], name: bytes) -> list[bytes]:
    return [ln.split(b": ", 1)[1] for ln in lines if ln.split(b":", 1)[0].lower() == name]


def check_raw(lines: list[bytes]) -> None:
    """Every line is one well-formed header; nothing injected became a header of its own (in
    ``location`` it may only appear percent-encoded, as part of a path on this site)."""
    for line in lines:
        assert HEADER_LINE.match(line), line
        name = line.split(b":", 1)[0].lower()
        assert name != b"injected", line
        if name != b"location":
            assert b"injected" not in line.lower(), line


INJECTED_NEXTS = [
    "/ok\r\nSet-Cookie: injected=1",
    "/ok\nSet-Cookie: injected=1",
    "/ok\rSet-Cookie: injected=1",
    "/ok\r\n\r\n<html>injected</html>",
    "/ok\r\nLocation: https://evil.example/injected",
    "/%0d%0aSet-Cookie:%20injected=1",
    "/ok;Set-Cookie=injected",
    "/ok; injected=1",
    "//evil.example/injected",
    "/\\evil.example/injected",
    "https://evil.example/injected",
    "/\t/evil.example/injected",
]


@pytest.mark.parametrize("next_url", INJECTED_NEXTS)
def test_no_header_injection_through_next(server: Server, next_url: str) -> None:
    body = urlencode([("accept", "analytics"), ("next", next_url)]).encode()
    status, lines, _ = raw_post(server, "application/x-www-form-urlencoded", body, "text/html")
    assert status.startswith(b"HTTP/1.1 303"), status
    check_raw(lines)
    (location,) = headers_named(lines, b"location")
    assert location.startswith(b"/")
    assert not location.startswith(b"//")
    assert b"\\" not in location
    if (
        any(c in next_url for c in "\r\n\t\\")
        or not next_url.startswith("/")
        or "//" in next_url[:2]
    ):
        assert location == b"/"
    cookies = headers_named(lines, b"set-cookie")
    assert len(cookies) == 1
    assert cookies[0].startswith(b"consent=")


HOSTILE_CATEGORIES = [
    "analytics\r\nSet-Cookie: injected=1",
    "analytics\nSet-Cookie: injected=1",
    "analytics;injected=1",
    "analytics; Domain=evil.example",
    "analytics;",
    "analytics\x00",
    "analytics,marketing",
    "necessary\r\n",
]


@pytest.mark.parametrize("name", HOSTILE_CATEGORIES)
@pytest.mark.parametrize("encoding", ["json", "form"])
def test_hostile_category_names_are_refused(server: Server, name: str, encoding: str) -> None:
    before = count(server)
    if encoding == "json":
        body = json.dumps({"accept": [name]}).encode()
        status, lines, rest = raw_post(server, "application/json", body)
    else:
        body = urlencode([("accept", name), ("next", "/")]).encode()
        status, lines, rest = raw_post(server, "application/x-www-form-urlencoded", body)
    assert status.startswith(b"HTTP/1.1 422"), (status, rest)
    check_raw(lines)
    assert headers_named(lines, b"set-cookie") == []
    assert json.loads(rest)["detail"]["unknown"] == [name]
    assert count(server) == before


def test_hostile_page_field_stays_in_the_receipt(server: Server) -> None:
    """Free text a visitor sends (``page``) is recorded, never echoed into a header."""
    body = json.dumps({"accept": [], "page": "/x\r\nSet-Cookie: injected=1"}).encode()
    status, lines, rest = raw_post(server, "application/json", body)
    assert status.startswith(b"HTTP/1.1 200")
    check_raw(lines)
    (consent,) = headers_named(lines, b"set-cookie")
    assert consent.startswith(b"consent=")
    assert json.loads(rest)["receipt"]["page"] == "/x\r\nSet-Cookie: injected=1"


# --------------------------------------------------------------------------- cross-site


def test_cross_site_decisions_over_tcp(server: Server, client: httpx.Client) -> None:
    """The cases a browser can produce, over TCP, for JSON and form posts and DELETE."""
    other = f"http://127.0.0.1:{server.port + 1 if server.port < 65535 else server.port - 1}"
    cases: list[tuple[dict[str, str], bool]] = [
        ({"Origin": server.base}, True),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": server.base, "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": server.base.replace("http:", "https:")}, True),  # behind a TLS proxy
        ({}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": other, "Sec-Fetch-Site": "same-site"}, False),  # another port
        ({"Origin": f"http://localhost:{server.port}", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": f"http://evil@127.0.0.1:{server.port}"}, False),
        ({"Origin": f"http://127.0.0.1:{server.port}.evil.example"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "none"}, False),
    ]
    tried = 0
    for headers, allowed in cases:
        for kind in ("json", "form", "delete"):
            before = count(server)
            if kind == "json":
                response = client.post("/_consent", json={"accept": "all"}, headers=headers)
            elif kind == "form":
                response = client.post(
                    "/_consent",
                    data={"accept": "all", "next": "/"},
                    headers=headers,
                    follow_redirects=False,
                )
            else:
                response = client.delete("/_consent", headers=headers)
            tried += 1
            if allowed:
                assert response.status_code in (200, 303), (headers, kind, response.text)
                assert count(server) == before + 1
                continue
            assert response.status_code == 403, (headers, kind, response.status_code)
            assert response.json()["error"] == "cross-site request refused"
            assert "set-cookie" not in response.headers
            assert count(server) == before
    record("hostile: cross-site over TCP", requests=tried)


# --------------------------------------------------------------------------- forged cookies


def forgeries(value: str) -> dict[str, str]:
    """Ways to change a genuine consent cookie without the key."""
    payload_b64, signature = value.split(".")
    payload = bytearray(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    payload[-1] = (1 << len(POLICY.optional)) - 1  # every category granted
    forged_b64 = base64.urlsafe_b64encode(bytes(payload)).rstrip(b"=").decode()
    state, _ = COOKIE.loads(value)
    other = ConsentCookie(["a-key-the-site-never-had-0123456789"], POLICY)
    everything = other.decision(
        POLICY.optional, receipt_id=state.receipt_id, subject_id=str(state.subject_id)
    )
    foreign_signature = other.dumps(everything).rsplit(".", 1)[1]
    return {
        "payload edited, signature kept": f"{forged_b64}.{signature}",
        "signed with another key": other.dumps(everything),
        "signature dropped": forged_b64,
        "unsigned JSON": json.dumps({"g": sorted(POLICY.optional), "s": state.subject_id}),
        "signature truncated": value[:-6],
        "signature of another cookie": f"{forged_b64}.{foreign_signature}",
    }


def test_forged_consent_cookies(server: Server, client: httpx.Client) -> None:
    genuine, receipt = decide(client, server, ["analytics"])
    held = "; stats_vid=1; px_uid=2; font_size=3; tracker=4"
    tried = 0
    for what, forged in forgeries(genuine).items():
        tried += 1
        seen = client.get("/seen", headers=cookie(forged, held)).json()
        assert seen["decided"] is False, what
        assert set(seen["cookies"]) <= {"consent"}, what
        page = client.get("/", headers=cookie(forged, held))
        for header in page.headers.get_list("set-cookie"):
            if not header.startswith("session="):
                pytest.fail(f"{what}: {header}")
        assert client.get("/_consent", headers=cookie(forged)).json()["decided"] is False
        assert client.get("/_consent/receipt", headers=cookie(forged)).status_code == 404
        # A decision made with a forged cookie starts a new history: it is not "updated",
        # and it does not continue the subject of the cookie it imitates.
        response = client.post(
            "/_consent", json={"accept": []}, headers={**server.origin, **cookie(forged)}
        )
        assert response.status_code == 200
        assert response.json()["event"] == "refused", what
        assert response.json()["receipt"]["subject_id"] != receipt["subject_id"], what
    record("hostile: forged consent cookies", forgeries=tried)


# --------------------------------------------------------------------------- receipts of others


def test_receipt_of_another_visitor_is_refused(server: Server, client: httpx.Client) -> None:
    _, a_receipt = decide(client, server, ["analytics", "marketing"], "/only-a-was-here")
    b_cookie, b_receipt = decide(client, server, [])
    a_id, b_id = a_receipt["receipt_id"], b_receipt["receipt_id"]

    def leaks(response: httpx.Response) -> bool:
        # A's receipt id may come back in a 404 naming the path B asked for, and A's chain
        # hash is B's prev_hash when B's receipt follows A's: neither tells B anything.
        secrets = (a_receipt["subject_id"], a_receipt["signature"], a_receipt["page"])
        return any(s in response.text for s in secrets)

    own = client.get("/_consent/receipt", headers=cookie(b_cookie))
    assert own.status_code == 200
    assert own.json()["receipt"]["receipt_id"] == b_id

    attempts: list[tuple[str, dict[str, str], set[int]]] = [
        (f"/_consent/receipt?receipt_id={a_id}", cookie(b_cookie), {200}),
        (f"/_consent/receipt?id={a_id}", cookie(b_cookie), {200}),
        (f"/_consent/receipt/{a_id}", cookie(b_cookie), {404}),
        (f"/_consent/receipt/../receipt?id={a_id}", cookie(b_cookie), {200, 404}),
        ("/_consent/receipt", {}, {404}),
        ("/_consent/receipt", {"Accept": "text/html"}, {404}),
    ]
    # B edits its own cookie to carry A's receipt id (and, in one case, A's subject).
    for forged in forgeries(b_cookie).values():
        attempts.append(("/_consent/receipt", cookie(forged), {404}))
    b_state, _ = COOKIE.loads(b_cookie)
    other = ConsentCookie(["a-key-the-site-never-had-0123456789"], POLICY)
    for subject in (b_state.subject_id, a_receipt["subject_id"]):
        state = other.decision([], receipt_id=a_id, subject_id=str(subject))
        attempts.append(("/_consent/receipt", cookie(other.dumps(state)), {404}))
    # Even a cookie signed with the site's key (a leaked key, a bug elsewhere) naming A's
    # receipt under B's subject does not get A's receipt: the subjects must match.
    signed = COOKIE.decision([], receipt_id=a_id, subject_id=str(b_state.subject_id))
    attempts.append(("/_consent/receipt", cookie(COOKIE.dumps(signed)), {404}))
    # Two consent cookies: the newer decision wins (the forged one, unless both were signed
    # in the same second), and still names a receipt of another subject: B gets its own
    # receipt or none.
    attempts.append(
        ("/_consent/receipt", cookie(b_cookie, f"; consent={COOKIE.dumps(signed)}"), {200, 404})
    )

    for path, headers, statuses in attempts:
        for accept in ("application/json", "text/html"):
            response = client.get(path, headers={**headers, "Accept": accept})
            assert response.status_code in statuses, (path, headers, response.status_code)
            assert not leaks(response), (path, headers)
            if response.status_code == 200 and accept == "application/json":
                assert response.json()["receipt"]["receipt_id"] == b_id
    record("hostile: receipt of another visitor", attempts=2 * len(attempts))


# --------------------------------------------------------------------------- one bad apple


def test_a_hostile_decision_cannot_take_others_down(server: Server) -> None:
    """Decisions that cannot be recorded (a lone surrogate in ``page`` cannot be encoded)
    arrive together with good ones: every good one is recorded, no bad one is."""

    async def run() -> list[tuple[bool, int, str | None]]:
        async with httpx.AsyncClient(base_url=server.base, cookies=cookieless(), timeout=30) as c:

            async def one(i: int) -> tuple[bool, int, str | None]:
                bad = i % 5 == 0
                page = '"/bad\\ud800"' if bad else f'"/good/{i}"'
                response = await c.post(
                    "/_consent",
                    content=f'{{"accept": ["analytics"], "page": {page}}}'.encode(),
                    headers={**server.origin, "Content-Type": "application/json"},
                )
                rid = response.json().get("receipt_id") if response.status_code == 200 else None
                return bad, response.status_code, rid

            return await asyncio.gather(*(one(i) for i in range(100)))

    before = set(store_receipts(server.store))
    results = asyncio.run(run())
    stored = store_receipts(server.store)
    new = {rid: row for rid, row in stored.items() if rid not in before}
    good = [rid for bad, status, rid in results if not bad]
    assert all(status == 200 for bad, status, _ in results if not bad)
    assert set(good) == set(new)
    assert all(not row["page"].startswith("/bad") for row in new.values())
    assert all(status >= 400 for bad, status, _ in results if bad)

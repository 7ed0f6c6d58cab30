"""What the cookie filter lets into a real Chromium's cookie jar, behind a real uvicorn.

A small site behind ``ConsentMiddleware`` (the demo policy: ``px_uid`` and ``_fbp`` are marketing,
``csrftoken`` necessary) sends Set-Cookie headers built to slip through: deletions that only one
reading of RFC 6265bis and Chromium takes for deletions, and headers that are not bytes (h11
passes ``str`` on to the wire, httptools ``memoryview``). The visitor has not consented, so no
marketing cookie may end up in the jar, whichever server runs the site; real deletions still
remove cookies.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn
from playwright.sync_api import BrowserContext
from starlette.types import Receive, Scope, Send

from consent import ConsentMiddleware
from consent.demo import POLICY_DIR

from .conftest import TEST_KEY, require_chromium

require_chromium()
pytestmark = pytest.mark.browser

# Deletions in one reading only: RFC 6265bis takes the last *valid* Max-Age or Expires, Chromium
# the last one whatever it holds, and refuses days a month does not have.
NOT_DELETIONS = [
    b"px_uid=x; Path=/; Max-Age=0; Max-Age=abc",
    b"px_uid=x; Path=/; Max-Age=0; Max-Age=",
    b"px_uid=x; Path=/; Max-Age=0; Max-Age=1e9",
    b"px_uid=x; Path=/; Max-Age=0; Max-Age",
    b"px_uid=x; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Expires=bogus",
    b"px_uid=x; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Expires=",
    b"px_uid=x; Path=/; Expires=Sat, 31 Feb 1970 00:00:00 GMT",
    b"px_uid=x; Path=/; Max-Age=" + b"0" * 1025 + b"; Expires=Thu, 01 Jan 2099 00:00:00 GMT",
]
# Deletions as frameworks write them: every reading removes the cookie.
DELETIONS = [
    b"px_uid=; Max-Age=0; Path=/",
    b"px_uid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
    b'px_uid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/',  # Django
    b"px_uid=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0; path=/",  # PHP
    b"px_uid=; Max-Age=abc; Max-Age=0; Path=/",
    b"px_uid=; Max-Age=0; Expires=bogus; Path=/",
]
TYPED = [
    (b"Set-Cookie", b"px_uid=typed; Path=/"),
    (b"SET-COOKIE", b"_fbp=typed; Path=/"),
    (b"set-cookie", b"csrftoken=typed; Path=/"),
]
KINDS = ("str", "memoryview", "bytearray")
PAGE = b"<!doctype html><html><head><title>t</title></head><body><p>page</p></body></html>"


def typed(headers: list[tuple[bytes, bytes]], kind: str) -> list[tuple[Any, Any]]:
    """The headers as an application that breaks the ASGI rule would send them."""
    if kind == "str":
        return [(n.decode(), v.decode()) for n, v in headers]
    if kind == "memoryview":
        return [(memoryview(n), memoryview(v)) for n, v in headers]
    return [(bytearray(n), bytearray(v)) for n, v in headers]


async def site(scope: Scope, receive: Receive, send: Send) -> None:
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        headers = typed(TYPED, query["kind"])
        await send({"type": "websocket.accept", "headers": headers})
        await send({"type": "websocket.send", "text": "hello"})
        await receive()  # websocket.disconnect
        return
    path = scope["path"].removeprefix("/noinject")
    headers: list[tuple[Any, Any]] = [
        (b"content-type", b"text/html; charset=utf-8" if query.get("page") else b"text/plain")
    ]
    if "etag" in query:
        headers.append((b"etag", b'"v1"'))  # the page's headers are rebuilt (fix_headers)
    if path == "/set":
        headers.append((b"set-cookie", NOT_DELETIONS[int(query["case"])]))
    elif path == "/delete":
        headers.append((b"set-cookie", DELETIONS[int(query["case"])]))
    elif path == "/typed":
        headers += typed(TYPED, query["kind"])
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    body = PAGE if query.get("page") else b"ok"
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The site under uvicorn (in a thread, on a loopback socket) with the given HTTP
    implementation: ``/...`` with the banner injected into pages, ``/noinject/...`` without."""
    store = tmp_path_factory.mktemp("filter") / "consent.db"
    injecting = ConsentMiddleware(
        site, policy=POLICY_DIR, secret_key=TEST_KEY, store=f"sqlite:///{store}"
    )
    plain = ConsentMiddleware(
        site, policy=POLICY_DIR, secret_key=TEST_KEY, store="memory://", inject_banner=False
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and scope["path"].startswith("/noinject"):
            await plain(scope, receive, send)
        else:
            await injecting(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=request.param, ws="wsproto", lifespan="off", log_level="warning"
    )
    config.access_log = False
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if uv.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert uv.started, "the site did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def jar(context: BrowserContext) -> dict[str, str]:
    return {c["name"]: c["value"] for c in context.cookies()}


def visit(context: BrowserContext, url: str) -> dict[str, str]:
    """Open ``url`` in a fresh jar; what the jar holds afterwards."""
    context.clear_cookies()
    page = context.new_page()
    try:
        response = page.goto(url)
        assert response is not None
        assert response.status == 200, (url, response.status)
        return jar(context)
    finally:
        page.close()


@pytest.mark.parametrize("case", range(len(NOT_DELETIONS)))
def test_a_header_only_one_reading_deletes_is_not_stored(
    context: BrowserContext, server: str, case: int
) -> None:
    for page in ("/set?page=1&", "/set?", "/noinject/set?"):
        assert "px_uid" not in visit(context, f"{server}{page}case={case}"), (
            page,
            NOT_DELETIONS[case][:80],
        )


@pytest.mark.parametrize("case", range(len(DELETIONS)))
def test_real_deletions_remove_the_cookie(context: BrowserContext, server: str, case: int) -> None:
    """The cookie was stored before (by the page's script, say): the app's deletion reaches
    the browser and removes it, without consent."""
    for page in ("/delete?page=1&", "/noinject/delete?"):
        context.clear_cookies()
        context.add_cookies([{"name": "px_uid", "value": "old", "url": server + "/"}])
        assert jar(context) == {"px_uid": "old"}
        tab = context.new_page()
        tab.goto(f"{server}{page}case={case}")
        tab.close()
        assert "px_uid" not in jar(context), (page, DELETIONS[case])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "where", ["/typed?page=1&", "/typed?etag=1&page=1&", "/typed?", "/noinject/typed?"]
)
def test_headers_that_are_not_bytes_are_filtered_too(
    context: BrowserContext, server: str, kind: str, where: str
) -> None:
    """Servers send str (h11), memoryview (httptools) and bytearray headers as they come:
    each Set-Cookie is judged all the same, and none turns into a 500."""
    got = visit(context, f"{server}{where}kind={kind}")
    assert got == {"csrftoken": "typed"}, got


@pytest.mark.parametrize("kind", KINDS)
def test_headers_that_are_not_bytes_are_filtered_on_head_requests(
    context: BrowserContext, server: str, kind: str
) -> None:
    context.clear_cookies()
    page = context.new_page()
    page.goto(server + "/")
    status = page.evaluate(
        "async url => (await fetch(url, {method: 'HEAD'})).status",
        f"{server}/typed?page=1&kind={kind}",
    )
    page.close()
    assert status == 200
    assert jar(context) == {"csrftoken": "typed"}


@pytest.mark.parametrize("kind", KINDS)
def test_websocket_handshake_headers_that_are_not_bytes_are_filtered(
    context: BrowserContext, server: str, kind: str
) -> None:
    context.clear_cookies()
    page = context.new_page()
    page.goto(server + "/noinject/")
    ws = server.replace("http://", "ws://") + f"/socket?kind={kind}"
    opened = page.evaluate(
        """url => new Promise(done => {
            const ws = new WebSocket(url);
            ws.onmessage = () => { ws.close(); done(true); };
            ws.onerror = () => done(false);
        })""",
        ws,
    )
    page.close()
    assert opened
    assert jar(context) == {"csrftoken": "typed"}

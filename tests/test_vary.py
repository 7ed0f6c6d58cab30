"""``Vary``: the middleware merges ``Cookie`` into the response's own ``Vary`` header (one
header, each token once, ``*`` left alone), behind Starlette's SessionMiddleware in particular:
Starlette 1.x adds ``Vary: Cookie`` itself when the session is read, 0.4x does not, and
``pyproject.toml`` allows both.

Run on Starlette 0.4x too (the test about SessionMiddleware's own header then skips) by
``scripts/test-starlette-04``, which CI runs: it installs Starlette 0.4x into a throwaway virtual
environment and runs this file there.
"""

from __future__ import annotations

from typing import Any

import pytest
import starlette
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.html import add_headers

from .helpers import EXAMPLE_POLICY

KEY = "vary-tests-secret-key-0123456789abcdef"
STARLETTE_1 = int(starlette.__version__.split(".")[0]) >= 1
PAGE = "<!doctype html><html><head><title>t</title></head><body><p>page</p></body></html>"


def page(request: Request) -> Response:
    request.session["seen"] = request.session.get("seen", 0) + 1
    return HTMLResponse(PAGE)


def page_varying(request: Request) -> Response:
    """A page with a Vary header of its own (in its own case), without the session."""
    return HTMLResponse(PAGE, headers={"VARY": vary_of(request)})


def session_page_varying(request: Request) -> Response:
    """The same, reading the session: Starlette 1.x then appends ``Cookie`` to it itself."""
    request.session["seen"] = 1
    return HTMLResponse(PAGE, headers={"vary": vary_of(request)})


def text(request: Request) -> Response:
    return PlainTextResponse("text", headers={"vary": vary_of(request)})


def vary_of(request: Request) -> str:
    return request.query_params.get("vary", "Accept-Encoding")


ROUTES = [
    Route("/page", page),
    Route("/varying", page_varying),
    Route("/session-varying", session_page_varying),
    Route("/text", text),
]


def site(*, wrapped: bool) -> Starlette:
    """The site as the framework pages wire it: consent outside the session middleware."""
    middleware = [Middleware(SessionMiddleware, secret_key="session-key-0123456789abcdef")]
    if wrapped:
        middleware.insert(
            0,
            Middleware(ConsentMiddleware, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://"),
        )
    return Starlette(routes=ROUTES, middleware=middleware)


def vary_headers(response: Response | object) -> list[str]:
    raw: list[tuple[bytes, bytes]] = response.headers.raw  # type: ignore[attr-defined]
    return [v.decode("latin-1") for k, v in raw if k.lower() == b"vary"]


def tokens(values: list[str]) -> list[str]:
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


@pytest.mark.skipif(not STARLETTE_1, reason="Starlette 0.4x's SessionMiddleware adds no Vary")
def test_starlette_1_session_middleware_varies_with_cookie_itself() -> None:
    """What makes the merge needed: the session middleware's own ``Vary: Cookie``."""
    with TestClient(site(wrapped=False)) as client:
        assert vary_headers(client.get("/page")) == ["Cookie"]


def test_a_page_behind_the_session_middleware_has_one_vary_cookie() -> None:
    with TestClient(site(wrapped=True)) as client:
        first = client.get("/page")
        again = client.get("/page")  # the session cookie sent back
    for response in (first, again):
        assert response.status_code == 200
        assert "consent-banner" in response.text or "/_consent" in response.text  # rewritten
        assert vary_headers(response) == ["Cookie"], response.headers.raw
    assert "session" in first.cookies


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("Accept-Encoding", ["Accept-Encoding, Cookie"]),
        ("accept-encoding, COOKIE", ["accept-encoding, COOKIE"]),  # named already, any case
        ("*", ["*"]),  # varies with everything already
        ("Accept-Language,Cookie,Accept-Encoding", ["Accept-Language,Cookie,Accept-Encoding"]),
    ],
)
def test_cookie_is_merged_into_the_pages_own_vary(sent: str, expected: list[str]) -> None:
    with TestClient(site(wrapped=True)) as client:
        response = client.get("/varying", params={"vary": sent})
    values = vary_headers(response)
    assert values == expected, response.headers.raw
    assert tokens(values).count("cookie") <= 1


def test_a_session_page_with_its_own_vary_has_cookie_once() -> None:
    """Starlette 1.x's session middleware appends ``Cookie`` to the page's header, 0.4x's does
    not: either way the page leaves with one header naming Cookie once."""
    with TestClient(site(wrapped=True)) as client:
        response = client.get("/session-varying", params={"vary": "Accept-Encoding"})
    assert vary_headers(response) == ["Accept-Encoding, Cookie"], response.headers.raw


def test_expired_cookies_merge_their_vary_too() -> None:
    """A refused category's cookie the browser still sends is expired in the response, which
    then varies with Cookie: merged into the app's own header on a non-HTML response too."""
    with TestClient(site(wrapped=True)) as client:
        refused = client.post(
            "/_consent", json={"accept": []}, headers={"Origin": "http://testserver"}
        )
        assert refused.status_code == 200
        client.cookies.set("stats_vid", "v1")
        response = client.get("/text", params={"vary": "Accept-Encoding"})
        assert response.status_code == 200
        deletions = [v for k, v in response.headers.raw if k.lower() == b"set-cookie"]
        assert any(v.startswith(b"stats_vid=") for v in deletions), response.headers.raw
        values = vary_headers(response)
        assert values == ["Accept-Encoding, Cookie"], response.headers.raw
        page = client.get("/varying", params={"vary": "Accept-Encoding"})
        assert vary_headers(page) == ["Accept-Encoding, Cookie"], page.headers.raw


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"Vary", b"Accept")], [(b"Vary", b"Accept, Cookie")]),
        ([(b"vary", b"")], [(b"vary", b"Cookie")]),
        (
            [(b"vary", b"accept"), (b"VARY", b"cookie")],
            [(b"vary", b"accept"), (b"VARY", b"cookie")],
        ),
        (
            [(b"vary", b"accept"), (b"vary", b"origin")],
            [(b"vary", b"accept, Cookie"), (b"vary", b"origin")],
        ),
        ([(b"vary", b"Accept, *")], [(b"vary", b"Accept, *")]),
        # names and values of other types, as servers pass them on: read, and sent as bytes
        ([("Vary", "Accept")], [(b"Vary", b"Accept, Cookie")]),
        (
            [(memoryview(b"vary"), bytearray(b"Cookie"))],
            [(memoryview(b"vary"), bytearray(b"Cookie"))],
        ),
    ],
)
def test_add_headers_merges_vary(headers: list[Any], expected: list[Any]) -> None:
    deletion = (b"set-cookie", b"px_uid=; Max-Age=0; Path=/")
    out = add_headers([(b"content-type", b"text/html"), *headers], (deletion, (b"vary", b"Cookie")))
    assert out == [(b"content-type", b"text/html"), *expected, deletion]


def test_add_headers_appends_vary_when_there_is_none() -> None:
    deletion = (b"set-cookie", b"px_uid=; Max-Age=0; Path=/")
    out = add_headers([(b"content-type", b"text/html")], (deletion, (b"vary", b"Cookie")))
    assert out == [(b"content-type", b"text/html"), deletion, (b"vary", b"Cookie")]

"""The Django example project (``examples/django_site``) through its real ASGI handler:
``lindenhof.asgi:application = ConsentMiddleware(get_asgi_application(), ...)``, with Django's
session and CSRF middleware, sync views reading ``current_consent`` and an async streaming view.

Django settings can be configured once per process: the project is imported once, by the
module-scoped ``application`` fixture.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.types import ASGIApp

from .helpers import (
    EXAMPLES,
    MIXED_COOKIES,
    body_chunks,
    consent_cookie,
    cookie_names,
    example_env,
    http_messages,
    response_start,
    set_cookie_headers,
    sse_events,
    websocket_messages,
)

HOST = "http://testserver"
SITE = EXAMPLES / "django_site"


@pytest.fixture(scope="module")
def application() -> Iterator[ASGIApp]:
    from django.conf import settings

    if settings.configured and settings.SETTINGS_MODULE != "lindenhof.settings":
        pytest.skip("Django is already configured with other settings in this process")
    sys.path.insert(0, str(SITE))
    try:
        with example_env(DJANGO_SETTINGS_MODULE="lindenhof.settings"):
            from lindenhof.asgi import application

        yield application
    finally:
        sys.path.remove(str(SITE))


@pytest.fixture
async def client(application: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url=HOST) as c:
        yield c


@pytest.mark.anyio
async def test_before_consent_only_necessary_cookies_reach_the_browser(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    # Django sends "Set-Cookie" in mixed case; the filter matches any case
    assert cookie_names(response.headers.get_list("set-cookie")) == {"sessionid", "csrftoken"}
    assert '/_consent/banner.js"' in response.text
    assert '<script type="text/plain" data-consent="analytics"' in response.text
    assert "Visit statistics are off" in response.text


@pytest.mark.anyio
async def test_the_app_never_sees_cookies_the_visitor_did_not_allow(
    client: httpx.AsyncClient,
) -> None:
    data = (await client.get("/api/visitor", headers={"cookie": MIXED_COOKIES})).json()
    assert data["cookies"] == {"csrftoken": "c1"}
    assert data["decided"] is False
    assert data["allows"] == {"analytics": False, "marketing": False, "preferences": False}


@pytest.mark.anyio
async def test_after_consent_analytics_flows_both_ways_marketing_stays_blocked(
    client: httpx.AsyncClient,
) -> None:
    cookie = consent_cookie({"analytics"})
    client.cookies.set("consent", cookie)
    response = await client.get("/")
    assert cookie_names(response.headers.get_list("set-cookie")) == {
        "sessionid",
        "csrftoken",
        "stats_vid",
    }
    assert "Visit statistics are on" in response.text
    assert '<script data-consent="analytics">' in response.text
    client.cookies.clear()
    seen = await client.get(
        "/api/visitor", headers={"cookie": f"consent={cookie}; {MIXED_COOKIES}"}
    )
    # the sync view read current_consent in Django's worker thread
    assert seen.json()["cookies"] == {
        "consent": cookie,
        "csrftoken": "c1",
        "stats_vid": "v1",
        "_ga": "g1",
    }
    assert seen.json()["allows"] == {"analytics": True, "marketing": False, "preferences": False}


@pytest.mark.anyio
async def test_a_real_decision_posted_to_the_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_consent", json={"accept": ["analytics"]}, headers={"Origin": HOST}
    )
    assert response.status_code == 200, response.text
    assert "consent" in client.cookies
    page = await client.get("/")
    assert cookie_names(page.headers.get_list("set-cookie")) == {
        "sessionid",
        "csrftoken",
        "stats_vid",
    }
    seen = (await client.get("/api/visitor")).json()
    assert set(seen["cookies"]) == {"consent", "sessionid", "csrftoken", "stats_vid"}
    assert seen["granted"] == ["analytics"]
    receipt = (await client.get("/_consent/receipt")).json()["receipt"]
    assert receipt["event"] == "given"


@pytest.mark.anyio
async def test_djangos_csrf_check_still_gets_its_cookie(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match is not None
    ok = await client.post(
        "/newsletter", data={"csrfmiddlewaretoken": match.group(1), "email": "a@example.org"}
    )
    assert ok.status_code == 200
    assert "We will send the newsletter to a@example.org" in ok.text
    forged = await client.post("/newsletter", data={"csrfmiddlewaretoken": "x" * 64})
    assert forged.status_code == 403


@pytest.mark.anyio
async def test_compressed_outside_consent_as_the_docs_say(application: ASGIApp) -> None:
    """docs/frameworks/django.md: GZip outside consent, with Django's title-case header names
    lowered first; otherwise the response carries two Content-Length headers."""
    from lindenhof.asgi import compressed_application

    messages = await http_messages(
        compressed_application, "/", headers=[("accept-encoding", "gzip")]
    )
    start = response_start(messages)
    lengths = [v for n, v in start["headers"] if n.lower() == b"content-length"]
    body = b"".join(body_chunks(messages))
    assert (dict(start["headers"])[b"content-encoding"], len(lengths)) == (b"gzip", 1)
    assert int(lengths[0]) == len(body)
    page = gzip.decompress(body).decode()
    assert "/_consent/banner.js" in page  # consent rewrote the page before it was compressed
    assert cookie_names(set_cookie_headers(start)) <= {"sessionid", "csrftoken"}


@pytest.mark.anyio
async def test_streaming_response_streams_with_filtered_cookies(application: ASGIApp) -> None:
    path = "/waiting-times?updates=3&interval=0"
    before = await http_messages(application, path)
    cookie = consent_cookie({"analytics"})
    after = await http_messages(application, path, headers=[("cookie", f"consent={cookie}")])
    for messages in (before, after):
        chunks = body_chunks(messages)
        assert len(chunks) >= 3
        assert [event["emergency"] for event in sse_events(chunks)] == [35, 40, 45]
    assert cookie_names(set_cookie_headers(response_start(before))) == set()
    assert cookie_names(set_cookie_headers(response_start(after))) == {"stats_ses_live"}


@pytest.mark.anyio
async def test_websocket_and_lifespan_reach_django_unchanged(application: ASGIApp) -> None:
    """Django's ASGI handler serves HTTP only: the middleware hands WebSocket and lifespan
    scopes on untouched, so servers see exactly what they would see without it (uvicorn
    logs "ASGI 'lifespan' protocol appears unsupported" and refuses the WebSocket)."""
    with pytest.raises(ValueError, match="not websocket"):
        await websocket_messages(application, "/ws", headers=[("cookie", MIXED_COOKIES)])

    async def receive() -> dict[str, str]:
        return {"type": "lifespan.startup"}

    async def send(message: object) -> None:
        raise AssertionError(message)

    with pytest.raises(ValueError, match="not lifespan"):
        await application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

"""The Quart example (``examples/quart_app.py``) through Quart's own test app and client:
``app.asgi_app = ConsentMiddleware(app.asgi_app, ...)``, views reading ``current_consent``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest
from quart.testing import QuartClient

from .helpers import (
    MIXED_COOKIES,
    body_chunks,
    consent_cookie,
    cookie_names,
    http_messages,
    lifespan,
    load_example,
    response_start,
    set_cookie_headers,
    sse_events,
    websocket_messages,
)

ORIGIN = "http://localhost"  # the host Quart's test client sends


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("quart_app")


@pytest.fixture
async def client(example: ModuleType) -> AsyncIterator[QuartClient]:
    async with example.app.test_app() as test_app:
        yield test_app.test_client()


def jar_names(client: QuartClient) -> set[str]:
    return {cookie.name for cookie in client.cookie_jar or []}


@pytest.mark.anyio
async def test_before_consent_only_necessary_cookies_reach_the_browser(
    client: QuartClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert cookie_names(response.headers.getlist("Set-Cookie")) == {"session", "csrftoken"}
    text = await response.get_data(as_text=True)
    assert '/_consent/banner.js"' in text
    assert '<script type="text/plain" data-consent="analytics"' in text
    assert "Visit statistics are off" in text


@pytest.mark.anyio
async def test_the_app_never_sees_cookies_the_visitor_did_not_allow(client: QuartClient) -> None:
    response = await client.get("/api/visitor", headers={"Cookie": MIXED_COOKIES})
    data: dict[str, Any] = await response.get_json()
    assert data["cookies"] == {"csrftoken": "c1"}
    assert data["decided"] is False
    assert data["allows"] == {"analytics": False, "marketing": False, "preferences": False}


@pytest.mark.anyio
async def test_after_consent_analytics_flows_both_ways_marketing_stays_blocked(
    client: QuartClient,
) -> None:
    cookie = consent_cookie({"analytics"})
    seen = await client.get(
        "/api/visitor", headers={"Cookie": f"consent={cookie}; {MIXED_COOKIES}"}
    )
    data: dict[str, Any] = await seen.get_json()
    assert data["cookies"] == {"consent": cookie, "csrftoken": "c1", "stats_vid": "v1", "_ga": "g1"}
    assert data["allows"] == {"analytics": True, "marketing": False, "preferences": False}
    response = await client.get("/", headers={"Cookie": f"consent={cookie}"})
    assert cookie_names(response.headers.getlist("Set-Cookie")) == {
        "session",
        "csrftoken",
        "stats_vid",
    }
    assert "Visit statistics are on" in await response.get_data(as_text=True)


@pytest.mark.anyio
async def test_a_real_decision_posted_to_the_endpoint(client: QuartClient) -> None:
    response = await client.post(
        "/_consent", json={"accept": ["analytics"]}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert "consent" in jar_names(client)
    page = await client.get("/")
    assert "stats_vid" in cookie_names(page.headers.getlist("Set-Cookie"))
    assert "px_uid" not in jar_names(client)
    data: dict[str, Any] = await (await client.get("/api/visitor")).get_json()
    assert set(data["cookies"]) == {"consent", "session", "csrftoken", "stats_vid"}


@pytest.mark.anyio
async def test_the_necessary_csrf_cookie_still_reaches_the_form(client: QuartClient) -> None:
    page = await client.get("/")
    match = re.search(r'name="csrftoken" value="([^"]+)"', await page.get_data(as_text=True))
    assert match is not None
    ok = await client.post("/newsletter", form={"csrftoken": match.group(1), "email": "a@b.org"})
    assert ok.status_code == 200
    assert "We will send the newsletter to a@b.org" in await ok.get_data(as_text=True)
    assert (await client.post("/newsletter", form={"csrftoken": "forged"})).status_code == 403


@pytest.mark.anyio
async def test_streaming_response_streams_with_filtered_cookies(example: ModuleType) -> None:
    path = "/waiting-times?updates=3&interval=0"
    async with lifespan(example.app):
        before = await http_messages(example.app, path)
        cookie = consent_cookie({"analytics"})
        after = await http_messages(example.app, path, headers=[("cookie", f"consent={cookie}")])
    for messages in (before, after):
        chunks = body_chunks(messages)
        assert len(chunks) >= 3
        assert [event["emergency"] for event in sse_events(chunks)] == [35, 40, 45]
    assert cookie_names(set_cookie_headers(response_start(before))) == set()
    assert cookie_names(set_cookie_headers(response_start(after))) == {"stats_ses_live"}


@pytest.mark.anyio
async def test_websocket_sees_only_allowed_cookies(client: QuartClient) -> None:
    async with client.websocket("/ws/waiting-times", headers={"Cookie": MIXED_COOKIES}) as ws:
        data = await ws.receive_json()
    assert data["visitor"]["cookies"] == {"csrftoken": "c1"}
    assert data["waiting_times"]["emergency"] == 35


@pytest.mark.anyio
async def test_websocket_accept_headers_are_filtered(example: ModuleType) -> None:
    # Quart's test client does not expose the accept headers: drive the ASGI app directly.
    async with lifespan(example.app):
        before = await websocket_messages(example.app, "/ws/waiting-times")
        cookie = consent_cookie({"analytics"})
        after = await websocket_messages(
            example.app, "/ws/waiting-times", headers=[("cookie", f"consent={cookie}")]
        )
    for messages, expected in ((before, {"__Host-lb"}), (after, {"__Host-lb", "stats_ses_ws"})):
        accept = [m for m in messages if m["type"] == "websocket.accept"]
        assert len(accept) == 1, messages
        assert cookie_names(set_cookie_headers(accept[0])) == expected
        assert any(m["type"] == "websocket.send" for m in messages)


@pytest.mark.anyio
async def test_lifespan_startup_and_shutdown_run_through_the_middleware(
    example: ModuleType,
) -> None:
    assert example.waiting_times.running is False
    async with lifespan(example.app):
        assert example.waiting_times.running is True
    assert example.waiting_times.running is False

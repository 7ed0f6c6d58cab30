"""The Starlette and FastAPI examples through their own app objects.

``examples/starlette_app.py`` mounts ``Middleware(ConsentMiddleware, ...)`` between GZip (outside) and
sessions (inside); ``examples/fastapi_app.py`` uses ``app.add_middleware`` in reverse order and a
``Depends``. Both serve the same site, so the same tests run against each."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from starlette.testclient import TestClient

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
)

HOST = "http://testserver"


@pytest.fixture(scope="module", params=["starlette_app", "fastapi_app"])
def example(request: pytest.FixtureRequest) -> ModuleType:
    return load_example(request.param)


@pytest.fixture
def client(example: ModuleType) -> Iterator[TestClient]:
    with TestClient(example.app, base_url=HOST) as c:
        yield c


def test_before_consent_only_necessary_cookies_reach_the_browser(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert cookie_names(response.headers.get_list("set-cookie")) == {"session", "csrftoken"}
    # the page itself went through the HTML rewriter: banner added, analytics script inert
    assert '/_consent/banner.js"' in response.text
    assert '<script type="text/plain" data-consent="analytics"' in response.text
    assert "Visit statistics are off" in response.text


def test_the_app_never_sees_cookies_the_visitor_did_not_allow(client: TestClient) -> None:
    data = client.get("/api/visitor", headers={"cookie": MIXED_COOKIES}).json()
    assert data["cookies"] == {"csrftoken": "c1"}
    assert data["decided"] is False
    assert data["allows"] == {"analytics": False, "marketing": False, "preferences": False}


def test_after_consent_analytics_flows_both_ways_marketing_stays_blocked(
    client: TestClient,
) -> None:
    cookie = consent_cookie({"analytics"})
    client.cookies.set("consent", cookie)
    response = client.get("/")
    assert cookie_names(response.headers.get_list("set-cookie")) == {
        "session",
        "csrftoken",
        "stats_vid",
    }
    assert '<script data-consent="analytics">' in response.text
    data = client.get("/api/visitor", headers={"cookie": f"consent={cookie}; {MIXED_COOKIES}"})
    assert data.json()["cookies"] == {
        "consent": cookie,
        "csrftoken": "c1",
        "stats_vid": "v1",
        "_ga": "g1",
    }
    assert data.json()["allows"] == {"analytics": True, "marketing": False, "preferences": False}


def test_a_real_decision_posted_to_the_endpoint(client: TestClient) -> None:
    response = client.post("/_consent", json={"accept": ["analytics"]}, headers={"Origin": HOST})
    assert response.status_code == 200, response.text
    assert response.json()["state"]["granted"] == ["analytics"]
    assert "consent" in client.cookies
    assert "stats_vid" in cookie_names(client.get("/").headers.get_list("set-cookie"))
    assert "px_uid" not in client.cookies
    seen = client.get("/api/visitor").json()
    assert set(seen["cookies"]) == {"consent", "session", "csrftoken", "stats_vid"}
    assert client.get("/_consent/receipt").json()["receipt"]["granted"] == ["analytics"]


def test_the_necessary_csrf_cookie_still_reaches_the_form(client: TestClient) -> None:
    client.get("/")
    token = client.cookies["csrftoken"]
    ok = client.post("/newsletter", data={"csrftoken": token, "email": "a@example.org"})
    assert ok.status_code == 200
    assert "We will send the newsletter to a@example.org" in ok.text
    assert client.post("/newsletter", data={"csrftoken": "forged"}).status_code == 403


def test_compression_wraps_consent(client: TestClient) -> None:
    response = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    # consent saw the page uncompressed: the banner is in it, and the cookies were filtered
    assert '/_consent/banner.js"' in response.text
    assert cookie_names(response.headers.get_list("set-cookie")) == {"session", "csrftoken"}


@pytest.mark.anyio
async def test_streaming_response_streams_with_filtered_cookies(example: ModuleType) -> None:
    async with lifespan(example.app) as state:
        path = "/waiting-times?updates=3&interval=0"
        before = await http_messages(example.app, path, state=state)
        cookie = consent_cookie({"analytics"})
        after = await http_messages(
            example.app, path, headers=[("cookie", f"consent={cookie}")], state=state
        )
    for messages in (before, after):
        chunks = body_chunks(messages)
        assert len(chunks) >= 3
        assert [event["emergency"] for event in sse_events(chunks)] == [35, 40, 45]
    assert cookie_names(set_cookie_headers(response_start(before))) == set()
    assert cookie_names(set_cookie_headers(response_start(after))) == {"stats_ses_live"}


def test_websocket_sees_only_allowed_cookies_and_its_accept_is_filtered(
    client: TestClient,
) -> None:
    with client.websocket_connect("/ws/waiting-times", headers={"cookie": MIXED_COOKIES}) as ws:
        accept_headers: list[tuple[bytes, bytes]] = ws.extra_headers or []
        data = ws.receive_json()
    assert data["visitor"]["cookies"] == {"csrftoken": "c1"}
    assert data["waiting_times"]["emergency"] == 35
    assert cookie_names(v.decode() for k, v in accept_headers if k.lower() == b"set-cookie") == {
        "__Host-lb"
    }
    cookie = consent_cookie({"analytics", "marketing"})
    with client.websocket_connect(
        "/ws/waiting-times", headers={"cookie": f"consent={cookie}; {MIXED_COOKIES}"}
    ) as ws:
        accept_headers = ws.extra_headers or []
        data = ws.receive_json()
    assert set(data["visitor"]["cookies"]) == {"consent", "csrftoken", "stats_vid", "px_uid", "_ga"}
    assert cookie_names(v.decode() for k, v in accept_headers if k.lower() == b"set-cookie") == {
        "__Host-lb",
        "stats_ses_ws",
    }


@pytest.mark.anyio
async def test_lifespan_startup_and_shutdown_run_through_the_middleware(
    example: ModuleType,
) -> None:
    assert example.waiting_times.running is False
    async with lifespan(example.app) as state:
        assert example.waiting_times.running is True
        assert state["waiting_times"] is example.waiting_times
        # the lifespan state and the consent state share scope["state"]
        messages = await http_messages(example.app, "/api/visitor", state=state)
        assert response_start(messages)["status"] == 200
    assert example.waiting_times.running is False

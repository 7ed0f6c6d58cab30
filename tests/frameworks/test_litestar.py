"""The Litestar example (``examples/litestar_app.py``) through Litestar's own test client:
``app = ConsentMiddleware(Litestar(...))`` with Litestar's cookie sessions and CSRF config.

Also what ``middleware=[DefineMiddleware(ConsentMiddleware, ...)]`` does, and why the example
wraps the application instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar

import pytest
from litestar import Litestar, Request, get
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.response import Response
from litestar.testing import TestClient
from starlette.types import ASGIApp

from consent import ConsentMiddleware

from .helpers import (
    KEY,
    MIXED_COOKIES,
    POLICY,
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

# Litestar's test client warns about a base URL without a dot (cookie domain matching).
HOST = "http://testserver.local"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("litestar_app")


@pytest.fixture
def client(example: ModuleType) -> Iterator[TestClient[Any]]:
    with TestClient(example.app, base_url=HOST) as c:
        yield c


def test_before_consent_only_necessary_cookies_reach_the_browser(client: TestClient[Any]) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert cookie_names(response.headers.get_list("set-cookie")) == {"session", "csrftoken"}
    assert '/_consent/banner.js"' in response.text
    assert '<script type="text/plain" data-consent="analytics"' in response.text
    assert "Visit statistics are off" in response.text


def test_the_app_never_sees_cookies_the_visitor_did_not_allow(client: TestClient[Any]) -> None:
    data = client.get("/api/visitor", headers={"cookie": MIXED_COOKIES}).json()
    assert data["cookies"] == {"csrftoken": "c1"}
    assert data["decided"] is False
    assert data["allows"] == {"analytics": False, "marketing": False, "preferences": False}


def test_after_consent_analytics_flows_both_ways_marketing_stays_blocked(
    client: TestClient[Any],
) -> None:
    cookie = consent_cookie({"analytics"})
    response = client.get("/", headers={"cookie": f"consent={cookie}"})
    assert cookie_names(response.headers.get_list("set-cookie")) == {
        "session",
        "csrftoken",
        "stats_vid",
    }
    assert "Visit statistics are on" in response.text
    data = client.get("/api/visitor", headers={"cookie": f"consent={cookie}; {MIXED_COOKIES}"})
    assert data.json()["cookies"] == {
        "consent": cookie,
        "csrftoken": "c1",
        "stats_vid": "v1",
        "_ga": "g1",
    }
    assert data.json()["allows"] == {"analytics": True, "marketing": False, "preferences": False}


def test_a_real_decision_posted_to_the_endpoint(client: TestClient[Any]) -> None:
    response = client.post("/_consent", json={"accept": ["analytics"]}, headers={"Origin": HOST})
    assert response.status_code == 200, response.text
    assert "consent" in client.cookies
    assert "stats_vid" in cookie_names(client.get("/").headers.get_list("set-cookie"))
    assert "px_uid" not in client.cookies
    seen = client.get("/api/visitor").json()
    assert set(seen["cookies"]) == {"consent", "session", "csrftoken", "stats_vid"}


def test_litestars_csrf_check_still_gets_its_cookie(client: TestClient[Any]) -> None:
    page = client.get("/")
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    ok = client.post("/newsletter", data={"_csrf_token": match.group(1), "email": "a@example.org"})
    assert ok.status_code == 200, ok.text
    assert "We will send the newsletter to a@example.org" in ok.text
    assert client.post("/newsletter", data={"_csrf_token": "forged"}).status_code == 403


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
    assert "stats_ses_live" not in cookie_names(set_cookie_headers(response_start(before)))
    assert "stats_ses_live" in cookie_names(set_cookie_headers(response_start(after)))


def test_websocket_sees_only_allowed_cookies_and_its_accept_is_filtered(
    client: TestClient[Any],
) -> None:
    with client.websocket_connect("/ws/waiting-times", headers={"cookie": MIXED_COOKIES}) as ws:
        accept_headers = ws.extra_headers or []
        data = ws.receive_json()
    assert data["visitor"]["cookies"] == {"csrftoken": "c1"}
    assert cookie_names(v.decode() for k, v in accept_headers if k.lower() == b"set-cookie") == {
        "__Host-lb"
    }
    cookie = consent_cookie({"analytics"})
    with client.websocket_connect(
        "/ws/waiting-times", headers={"cookie": f"consent={cookie}; {MIXED_COOKIES}"}
    ) as ws:
        accept_headers = ws.extra_headers or []
        data = ws.receive_json()
    assert set(data["visitor"]["cookies"]) == {"consent", "csrftoken", "stats_vid", "_ga"}
    set_cookies = [v.decode() for k, v in accept_headers if k.lower() == b"set-cookie"]
    kept = [h for h in set_cookies if "Max-Age=0" not in h]
    assert cookie_names(kept) == {"__Host-lb", "stats_ses_ws"}
    # marketing was refused and the browser still sent px_uid: the accept expires it
    assert cookie_names(h for h in set_cookies if "Max-Age=0" in h) == {"px_uid"}


@pytest.mark.anyio
async def test_lifespan_startup_and_shutdown_run_through_the_middleware(
    example: ModuleType,
) -> None:
    assert example.waiting_times.running is False
    async with lifespan(example.app):
        assert example.waiting_times.running is True
        assert example.litestar_app.state.waiting_times is example.waiting_times
    assert example.waiting_times.running is False


# --------------------------------------------------------------------------- DefineMiddleware


class CountingConsent(ConsentMiddleware):
    instances: ClassVar[int] = 0

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        type(self).instances += 1
        super().__init__(app, **options)


@get("/page")
async def page() -> Response[str]:
    return Response(
        "<p>hi</p>",
        cookies=[Cookie(key="stats_vid", value="v"), Cookie(key="csrftoken", value="c")],
    )


@get("/seen")
async def seen(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"cookies": request.cookies, "decided": request.state.consent.decided}


def test_define_middleware_filters_routes_but_cannot_serve_the_consent_endpoints() -> None:
    """``DefineMiddleware(ConsentMiddleware, ...)`` works for the cookies of routed handlers,
    but Litestar builds route middleware after routing, once per handler: ``/_consent`` has
    no route, so it is a 404 and visitors cannot record a decision; and every handler gets
    its own instance (own policy copy, metrics and store connection)."""
    CountingConsent.instances = 0
    app = Litestar(
        route_handlers=[page, seen],
        middleware=[
            DefineMiddleware(CountingConsent, policy=POLICY, secret_key=KEY, store="memory://")
        ],
    )
    assert CountingConsent.instances >= 2
    with TestClient(app, base_url=HOST) as c:
        assert cookie_names(c.get("/page").headers.get_list("set-cookie")) == {"csrftoken"}
        assert c.get("/seen", headers={"cookie": MIXED_COOKIES}).json() == {
            "cookies": {"csrftoken": "c1"},
            "decided": False,
        }
        refused = c.post("/_consent", json={"accept": ["analytics"]}, headers={"Origin": HOST})
        assert refused.status_code == 404
        assert "consent" not in c.cookies

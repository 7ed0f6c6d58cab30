"""ConsentMiddleware on the request/response path, through raw ASGI and a real Starlette app."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from consent import ConsentMiddleware, ConsentState, current_consent
from consent.cookies import bytes_headers
from consent.policy import load_policy
from consent.web.startup import StartupFailed

from .helpers import EXAMPLE_POLICY, copy_policy

KEY = "test-secret-key-0123456789"
HOST = "http://testserver"


def set_cookies_view(request: Request) -> Response:
    response = PlainTextResponse("ok")
    response.set_cookie("session", "s1", httponly=True)
    response.set_cookie("stats_vid", "v1", max_age=3600)
    response.set_cookie("px_uid", "p1", expires=3600)
    response.set_cookie("tracker", "t1")
    response.set_cookie("csrftoken", "c1")
    return response


def echo_view(request: Request) -> Response:
    state: ConsentState = request.state.consent
    ctx = current_consent.get()
    return JSONResponse(
        {
            "cookies": request.cookies,
            "cookie_headers": [
                v.decode("latin-1") for k, v in request.scope["headers"] if k == b"cookie"
            ],
            "decided": state.decided,
            "granted": sorted(state.granted),
            "denied": sorted(state.denied),
            "allows_analytics": state.allows("analytics"),
            "allows_necessary": state.allows("necessary"),
            "gpc": state.gpc,
            "context_var_matches": ctx is state,
        }
    )


def delete_view(request: Request) -> Response:
    response = PlainTextResponse("bye")
    response.delete_cookie("px_uid")
    response.set_cookie("stats_vid", "", expires="Thu, 01 Jan 1970 00:00:00 GMT")
    return response


async def ws_endpoint(websocket: WebSocket) -> None:
    state: ConsentState = websocket.scope["state"]["consent"]
    await websocket.accept(headers=[(b"set-cookie", b"px_uid=ws"), (b"set-cookie", b"session=ws")])
    await websocket.send_json(
        {"cookies": dict(websocket.cookies), "analytics": state.allows("analytics")}
    )
    await websocket.close()


inner = Starlette(
    routes=[
        Route("/set", set_cookies_view),
        Route("/echo", echo_view),
        Route("/delete", delete_view),
        WebSocketRoute("/ws", ws_endpoint),
    ]
)


@pytest.fixture
def mw() -> ConsentMiddleware:
    return ConsentMiddleware(inner, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")


@pytest.fixture
def client(mw: ConsentMiddleware) -> Iterator[TestClient]:
    with TestClient(mw, base_url=HOST) as c:
        yield c


def consent_cookie(mw: ConsentMiddleware, granted: set[str], subject: str = "subj-1") -> str:
    """A consent cookie as the endpoint would issue it (the real codec, real signature)."""
    state = mw.cookie.decision(granted, receipt_id="r-1", subject_id=subject)
    return mw.cookie.dumps(state)


def set_cookie_names(response: httpx.Response) -> list[str]:
    return [h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")]


# --------------------------------------------------------------------------- response side


def test_before_consent_only_necessary_cookies_reach_the_browser(client: TestClient) -> None:
    response = client.get("/set")
    assert response.status_code == 200
    assert set_cookie_names(response) == ["session", "csrftoken"]


def test_after_consent_granted_categories_pass(mw: ConsentMiddleware, client: TestClient) -> None:
    client.cookies.set("consent", consent_cookie(mw, {"analytics"}))
    response = client.get("/set")
    assert set_cookie_names(response) == ["session", "stats_vid", "csrftoken"]
    client.cookies.set("consent", consent_cookie(mw, {"analytics", "marketing"}))
    assert set_cookie_names(client.get("/set")) == ["session", "stats_vid", "px_uid", "csrftoken"]


def test_deletions_always_pass(client: TestClient) -> None:
    response = client.get("/delete")
    headers = response.headers.get_list("set-cookie")
    assert [h.split("=")[0] for h in headers] == ["px_uid", "stats_vid"]
    assert "Max-Age=0" in headers[0]


# --------------------------------------------------------------------------- request side


def test_app_never_sees_non_consented_cookies(client: TestClient) -> None:
    response = client.get(
        "/echo", headers={"cookie": "session=s; stats_vid=v; px_uid=p; tracker=t; lang=de"}
    )
    data = response.json()
    assert data["cookies"] == {"session": "s"}
    assert data["decided"] is False
    assert data["allows_analytics"] is False
    assert data["allows_necessary"] is True
    assert data["context_var_matches"] is True
    # nothing was explicitly refused, so nothing is expired either
    assert response.headers.get_list("set-cookie") == []


def test_app_sees_consented_cookies(mw: ConsentMiddleware, client: TestClient) -> None:
    cookie = consent_cookie(mw, {"analytics", "preferences"})
    data = client.get(
        "/echo", headers={"cookie": f"consent={cookie}; session=s; stats_vid=v; px_uid=p; lang=de"}
    ).json()
    assert data["cookies"] == {"consent": cookie, "session": "s", "stats_vid": "v", "lang": "de"}
    assert data["decided"] is True
    assert data["granted"] == ["analytics", "preferences"]
    assert data["denied"] == ["embedded", "marketing"]


def test_split_cookie_headers_are_merged_into_one(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    cookie = consent_cookie(mw, {"analytics"})
    data = client.get(
        "/echo",
        headers=[
            ("cookie", f"consent={cookie}"),
            ("cookie", "session=s; px_uid=p"),
            ("cookie", "stats_vid=v"),
        ],
    ).json()
    assert data["cookie_headers"] == [f"consent={cookie}; session=s; stats_vid=v"]
    assert data["cookies"] == {"consent": cookie, "session": "s", "stats_vid": "v"}


def test_undeclared_allowed_when_policy_says_so(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    site = policy_dir / "site.toml"
    site.write_text(site.read_text().replace('undeclared = "block"', 'undeclared = "allow"'))
    mw = ConsentMiddleware(inner, policy=policy_dir, secret_key=KEY, store="memory://")
    with TestClient(mw, base_url=HOST) as c:
        assert set_cookie_names(c.get("/set")) == ["session", "tracker", "csrftoken"]
        assert c.get("/echo", headers={"cookie": "tracker=1; px_uid=2"}).json()["cookies"] == {
            "tracker": "1"
        }


# --------------------------------------------------------------------------- withdrawal


def test_refused_categories_are_expired_with_registered_path_and_domain(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    cookie = consent_cookie(mw, {"preferences"})
    response = client.get(
        "/echo",
        headers={"cookie": f"consent={cookie}; stats_vid=1; _ga=2; _fbp=3; lang=en; yt-remote-x=4"},
    )
    expiries = response.headers.get_list("set-cookie")
    assert "stats_vid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/" in expiries
    assert "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/" in expiries
    assert (
        "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Domain=.lindenhof-clinic.example"
        in expiries
    )
    fbp = [h for h in expiries if h.startswith("_fbp=")]
    assert len(fbp) == 3  # host-only + the two domains the rule lists
    # preferences was granted: lang survives; third-party cookies cannot be expired by this site
    assert not any(h.startswith(("lang=", "yt-remote-x=")) for h in expiries)
    assert response.json()["cookies"] == {"consent": cookie, "lang": "en"}
    # The deletions are this visitor's: a shared cache must not hand them to others.
    assert response.headers.get_list("vary") == ["Cookie"]
    plain = client.get("/echo", headers={"cookie": f"consent={cookie}; lang=en"})
    assert "vary" not in plain.headers


def test_deletions_vary_on_cookie_without_banner_injection_too() -> None:
    mw = ConsentMiddleware(
        inner, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://", inject_banner=False
    )
    cookie = consent_cookie(mw, {"preferences"})
    with TestClient(mw, base_url=HOST) as client:
        response = client.get("/echo", headers={"cookie": f"consent={cookie}; stats_vid=1"})
        assert any(h.startswith("stats_vid=;") for h in response.headers.get_list("set-cookie"))
        assert response.headers.get_list("vary") == ["Cookie"]
        assert "vary" not in client.get("/echo", headers={"cookie": f"consent={cookie}"}).headers


def test_expiry_is_secure_on_https_and_obeys_host_prefix(mw: ConsentMiddleware) -> None:
    cookie = consent_cookie(mw, set())
    with TestClient(mw, base_url="https://testserver") as c:
        response = c.get(
            "/echo", headers={"cookie": f"consent={cookie}; stats_vid=1; __Host-px_uid=2"}
        )
    expiries = response.headers.get_list("set-cookie")
    assert (
        "stats_vid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure" in expiries
    )
    assert (
        "__Host-px_uid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure"
        in expiries
    )


# --------------------------------------------------------------------------- GPC


def test_gpc_refuses_sale_or_share_whatever_the_cookie_says(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    cookie = consent_cookie(mw, {"analytics", "marketing"})
    client.cookies.set("consent", cookie)
    response = client.get("/set", headers={"Sec-GPC": "1"})
    assert set_cookie_names(response) == ["session", "stats_vid", "csrftoken"]
    data = client.get("/echo", headers={"Sec-GPC": "1"}).json()
    assert data["gpc"] is True
    assert "marketing" in data["denied"]
    # Only exactly "1" is the signal.
    assert client.get("/echo", headers={"Sec-GPC": "yes"}).json()["gpc"] is False
    assert set_cookie_names(client.get("/set")) == ["session", "stats_vid", "px_uid", "csrftoken"]


def test_gpc_well_known(client: TestClient, tmp_path: Path) -> None:
    response = client.get("/.well-known/gpc.json")
    assert response.status_code == 200
    assert response.json() == {"gpc": True, "lastUpdate": "2026-11-01"}
    policy_dir = copy_policy(tmp_path)
    site = policy_dir / "site.toml"
    site.write_text(site.read_text().replace("well_known = true", "well_known = false"))
    mw = ConsentMiddleware(inner, policy=policy_dir, secret_key=KEY, store="memory://")
    with TestClient(mw, base_url=HOST) as c:
        assert c.get("/.well-known/gpc.json").status_code == 404  # the app's own 404
    # A site that does not honour the signal does not claim to (well_known stays true).
    site.write_text(site.read_text().replace("well_known = false", "well_known = true"))
    site.write_text(site.read_text().replace("honor = true", "honor = false"))
    mw = ConsentMiddleware(inner, policy=policy_dir, secret_key=KEY, store="memory://")
    with TestClient(mw, base_url=HOST) as c:
        assert c.get("/.well-known/gpc.json").status_code == 404
        assert c.get("/echo", headers={"Sec-GPC": "1"}).json()["gpc"] is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("values", "signal"),
    [
        ([b"1"], True),
        ([b" 1\t"], True),  # spaces and tabs around a value are not part of it (RFC 9110)
        ([b"1", b"1"], True),
        ([b"1", b"0"], False),  # every Sec-GPC header must say "1", not only the last
        ([b"0", b"1"], False),
        ([b"1, 1"], False),
        ([b"1\x0b"], False),
        ([b"1\r"], False),
        ([b"true"], False),
    ],
)
async def test_only_sec_gpc_1_is_the_signal(values: list[bytes], signal: bool) -> None:
    mw, scopes = recording_middleware()
    await run_raw(mw, http_scope(headers=[(b"sec-gpc", v) for v in values]))
    assert scopes[0]["state"]["consent"].gpc is signal


# --------------------------------------------------------------------------- consent cookie validity


def test_forged_and_foreign_cookies_mean_no_decision(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    good = consent_cookie(mw, {"analytics", "marketing"})
    payload, _, sig = good.rpartition(".")
    tampered = payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    other = ConsentMiddleware(
        inner, policy=EXAMPLE_POLICY, secret_key="another-key-xxxxxxxx", store="memory://"
    )
    foreign = consent_cookie(other, {"analytics", "marketing"})
    for value in (tampered, foreign, "garbage", "", "a.b.c", good[:-3]):
        data = client.get("/echo", headers={"cookie": f"consent={value}; stats_vid=1"}).json()
        assert data["decided"] is False, value
        assert data["cookies"].get("stats_vid") is None


def test_key_rotation_old_cookies_still_verify() -> None:
    old = ConsentMiddleware(
        inner, policy=EXAMPLE_POLICY, secret_key="old-key-aaaaaaaaaaaa", store="memory://"
    )
    cookie = consent_cookie(old, {"analytics"})
    rotated = ConsentMiddleware(
        inner,
        policy=EXAMPLE_POLICY,
        secret_key=["new-key-bbbbbbbbbbbb", "old-key-aaaaaaaaaaaa"],
        store="memory://",
    )
    with TestClient(rotated, base_url=HOST) as c:
        assert c.get("/echo", headers={"cookie": f"consent={cookie}"}).json()["decided"] is True
    # The new key signs: the old deployment alone cannot read new cookies.
    fresh = consent_cookie(rotated, {"analytics"})
    with TestClient(old, base_url=HOST) as c:
        assert c.get("/echo", headers={"cookie": f"consent={fresh}"}).json()["decided"] is False


def test_cookie_from_an_older_policy_revision_is_no_decision(tmp_path: Path) -> None:
    before = ConsentMiddleware(inner, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    cookie = consent_cookie(before, {"analytics"})
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / "analytics.toml"
    path.write_text(path.read_text().replace("13 months", "25 months"))
    after = ConsentMiddleware(inner, policy=policy_dir, secret_key=KEY, store="memory://")
    with TestClient(after, base_url=HOST) as c:
        data = c.get("/echo", headers={"cookie": f"consent={cookie}; stats_vid=1"}).json()
        assert data["decided"] is False
        assert "stats_vid" not in data["cookies"]
        state = c.get("/_consent", headers={"cookie": f"consent={cookie}"}).json()
        assert state["revision_changed"] is True


def test_expired_cookie_is_no_decision(mw: ConsentMiddleware) -> None:
    cookie = consent_cookie(mw, {"analytics"})
    lifetime = load_policy(EXAMPLE_POLICY).site.consent_cookie.max_age

    assert mw.cookie.loads(cookie)[0].decided is True
    later = time.time() + lifetime + 10
    state, subject = mw.cookie.loads(cookie, now=later)
    assert state.decided is False
    assert subject is None
    # the cached verification is still checked against the lifetime on every hit
    assert mw.cookie.loads(cookie)[0].decided is True
    assert mw.cookie.loads(cookie, now=later)[0].decided is False


@pytest.mark.parametrize("key", [b"k" * 32, [b"k" * 32], ["a-key", 5]])
def test_a_secret_key_that_is_not_text_is_refused_clearly(key: object) -> None:
    with pytest.raises(TypeError, match="secret_key must be a string or a sequence of strings"):
        ConsentMiddleware(inner, policy=EXAMPLE_POLICY, secret_key=key, store="memory://")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments",
    [
        {"app": "not an app"},
        {"policy": 42},
        {"store": 42},
        {"prefix": b"/_consent"},
        {"inject_banner": "yes"},
        {"trusted_origins": "https://a.example"},
        {"trusted_origins": [b"https://a.example"]},
    ],
)
def test_arguments_of_the_wrong_type_raise_at_once(arguments: dict[str, Any]) -> None:
    """A mistake in the code, not in the configuration: said at construction, even when the
    configuration is wrong too (no key here)."""
    options: dict[str, Any] = {"app": inner, "policy": EXAMPLE_POLICY, "store": "memory://"}
    with pytest.raises(TypeError, match=next(iter(arguments))):
        ConsentMiddleware(**{**options, **arguments})


async def _lifespan(app: Any) -> list[Message]:
    """The messages ``app`` sends for a lifespan startup (the call raising ``StartupFailed``,
    with the same message, after a failed one)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    if not getattr(app, "startup_error", None):
        await app(scope, receive, send)
        return sent
    with pytest.raises(StartupFailed) as raised:
        await app(scope, receive, send)
    assert sent[-1] == {"type": "lifespan.startup.failed", "message": str(raised.value)}
    return sent


@pytest.mark.parametrize("url", ["bogus://x", "sqlite://", "sqlite:///", "consent.db"])
@pytest.mark.anyio
async def test_a_store_url_no_backend_understands_fails_the_start(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="consent"):
        mw = ConsentMiddleware(inner, policy=EXAMPLE_POLICY, secret_key="k" * 32, store=url)
    assert mw.startup_error is not None
    assert "store URL" in mw.startup_error or "sqlite URL" in mw.startup_error
    assert caplog.records == []  # said once, by the server from the lifespan message
    assert "\n" not in mw.startup_error
    failed = await _lifespan(mw)
    assert failed == [{"type": "lifespan.startup.failed", "message": mw.startup_error}]


@pytest.mark.anyio
async def test_an_invalid_policy_fails_the_start_with_every_problem_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CONSENT_SECRET_KEY", raising=False)
    policy = copy_policy(tmp_path)
    (policy / "analytics.toml").write_text('title = "Analytics"\n[[cookies]]\nname = "a b"\n')
    with caplog.at_level(logging.ERROR, logger="consent"):
        mw = ConsentMiddleware(inner, policy=policy, store="memory://")
    error = mw.startup_error
    assert error is not None
    assert error.startswith("asgi-consent cannot start: invalid cookie policy: ")
    assert "analytics.toml: description" in error
    assert "'a b' is not a valid cookie name" in error
    assert "CONSENT_SECRET_KEY" in error  # the missing key is named too: one restart fixes both
    assert "\n" not in error
    assert caplog.records == []  # said once, by the server from the lifespan message
    failed = await _lifespan(mw)
    assert failed == [{"type": "lifespan.startup.failed", "message": error}]


@pytest.mark.anyio
async def test_a_misconfigured_middleware_does_not_start_the_app_below() -> None:
    started: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started.append(scope["type"])

    mw = ConsentMiddleware(app, policy="/nonexistent", store="memory://")
    assert mw.startup_error is not None
    assert await _lifespan(mw) == [{"type": "lifespan.startup.failed", "message": mw.startup_error}]
    assert started == []


@pytest.mark.anyio
async def test_a_configured_middleware_passes_the_lifespan_through_unchanged() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await send({"type": "lifespan.startup.complete"})

    mw = ConsentMiddleware(app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    assert mw.startup_error is None
    assert await _lifespan(mw) == [{"type": "lifespan.startup.complete"}]
    assert received == [{"type": "lifespan.startup"}]


@pytest.mark.timeout(60)  # (the code before this raised nothing and left TestClient waiting)
@pytest.mark.parametrize("mounted", ["wrapped", "add_middleware"])
def test_a_test_client_of_a_misconfigured_site_raises_the_reason(
    mounted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``with TestClient(app)``, the usual way to test a Starlette or FastAPI site, fails at
    once with the reason, under both ways of mounting the middleware."""
    monkeypatch.delenv("CONSENT_SECRET_KEY", raising=False)
    site = Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])
    options: dict[str, Any] = {"policy": EXAMPLE_POLICY, "store": "memory://"}
    app: Any
    if mounted == "wrapped":
        app = ConsentMiddleware(site, **options)
    else:
        site.add_middleware(ConsentMiddleware, **options)
        app = site
    reason = r"asgi-consent cannot start: .*CONSENT_SECRET_KEY"
    with pytest.raises(StartupFailed, match=reason), TestClient(app):
        pass


@pytest.mark.anyio
async def test_requests_to_a_misconfigured_middleware_are_500s_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CONSENT_SECRET_KEY", raising=False)
    mw = ConsentMiddleware(inner, policy=EXAMPLE_POLICY, store="memory://")
    assert mw.startup_error is not None
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="consent"):
        for path in ("/echo", "/_consent"):
            sent = await run_raw(mw, http_scope(path))
            assert sent[0]["status"] == 500
            assert b"".join(m.get("body", b"") for m in sent[1:]) == b"Internal Server Error"
    assert [r.getMessage() for r in caplog.records] == [mw.startup_error + " (answered 500)"] * 2
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url=HOST) as client:
        response = await client.get("/set")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert "set-cookie" not in response.headers


def test_a_short_signing_key_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="consent"):
        ConsentMiddleware(inner, policy=EXAMPLE_POLICY, secret_key="x", store="memory://")
        ConsentMiddleware(
            inner, policy=EXAMPLE_POLICY, secret_key=["k" * 32, "old"], store="memory://"
        )
    warned = [r.getMessage() for r in caplog.records if "signing key" in r.getMessage()]
    assert warned == [warned[0]]  # the first only: an older, shorter key still verifies
    assert "1 characters long: use at least 32 random bytes" in warned[0]


def test_secret_key_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENT_SECRET_KEY", raising=False)
    unkeyed = ConsentMiddleware(inner, policy=EXAMPLE_POLICY, store="memory://")
    assert unkeyed.startup_error is not None
    assert "CONSENT_SECRET_KEY" in unkeyed.startup_error
    monkeypatch.setenv("CONSENT_SECRET_KEY", "new-key-bbbbbbbbbbbb, old-key-aaaaaaaaaaaa")
    from_env = ConsentMiddleware(inner, policy=EXAMPLE_POLICY, store="memory://")
    old = ConsentMiddleware(
        inner, policy=EXAMPLE_POLICY, secret_key="old-key-aaaaaaaaaaaa", store="memory://"
    )
    assert from_env.cookie.loads(consent_cookie(old, {"analytics"}))[0].decided is True


# --------------------------------------------------------------------------- raw ASGI


async def run_raw(app: Any, scope: Scope, body: bytes = b"") -> list[Message]:
    sent: list[Message] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(path: str = "/", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [(b"host", b"testserver")],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }


def raw_app_setting(headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.anyio
async def test_mixed_case_set_cookie_headers_and_order_preserved() -> None:
    headers = [
        (b"Content-Type", b"text/plain"),
        (b"Set-Cookie", b"sessionid=a; Path=/; HttpOnly"),
        (b"SET-COOKIE", b"px_uid=b; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Path=/"),
        (b"X-Other", b"1"),
        (b"set-cookie", b"csrftoken=c; Path=/"),
        (b"Set-Cookie", b'stats_vid="quoted;value"; Path=/'),
    ]
    mw = ConsentMiddleware(
        raw_app_setting(headers), policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://"
    )
    sent = await run_raw(mw, http_scope())
    assert sent[0]["headers"] == [
        (b"Content-Type", b"text/plain"),
        (b"Set-Cookie", b"sessionid=a; Path=/; HttpOnly"),
        (b"X-Other", b"1"),
        (b"set-cookie", b"csrftoken=c; Path=/"),
    ]
    assert sent[1]["body"] == b"ok"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "set_cookie",
    [
        b"px_uid=b; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Partitioned; Priority=High; Secure",
        b"noequalsign",
        b"=nameless",
        b"\xff\xfe=\x00\x01",
        b"stats_ses_1=" + b"x" * 9000,
        b"",
        b";;;",
        b"_ga=1; Max-Age=abc",
    ],
)
async def test_malformed_set_cookie_never_raises_nor_leaks(set_cookie: bytes) -> None:
    headers = [(b"set-cookie", set_cookie), (b"set-cookie", b"session=ok")]
    mw = ConsentMiddleware(
        raw_app_setting(headers), policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://"
    )
    sent = await run_raw(mw, http_scope())
    assert sent[0]["status"] == 200
    assert sent[0]["headers"] == [(b"set-cookie", b"session=ok")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "cookie",
    [
        b"garbage without structure",
        b"session=ok; " + b"stats_vid=" + b"x" * 9000,
        b"session=ok; consent=" + b"\xff" * 50,
        b"session=ok; consent=..; consent=a.b",
        b"session=ok;;;; ;=;==;px_uid",
        b"session=ok; st\x00ats=1; \xe9t\xe9=2",
        b"session=ok; consent",
    ],
)
async def test_malformed_cookie_headers_never_raise_nor_leak(cookie: bytes) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["headers"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = ConsentMiddleware(app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    sent = await run_raw(
        mw, http_scope(headers=[(b"host", b"t"), (b"cookie", cookie), (b"cookie", cookie)])
    )
    assert sent[0]["status"] == 204
    cookie_headers = [v for k, v in seen[0] if k == b"cookie"]
    assert len(cookie_headers) <= 1
    for value in cookie_headers:
        for part in value.split(b"; "):
            name = part.split(b"=", 1)[0]
            assert name in (b"session", b"consent"), part


@pytest.mark.anyio
async def test_lifespan_and_unknown_scopes_pass_through() -> None:
    got: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        got.append(scope["type"])
        if scope["type"] == "lifespan":
            got.append((await receive())["type"])

    mw = ConsentMiddleware(app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    await mw({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    await mw({"type": "custom-thing"}, receive, send)
    assert got == ["lifespan", "lifespan.startup", "custom-thing"]


def recording_middleware() -> tuple[ConsentMiddleware, list[Scope]]:
    """A middleware around an app that answers 204 and keeps every scope it is called with."""
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = ConsentMiddleware(app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    return mw, scopes


@pytest.mark.anyio
async def test_scope_is_copied_not_mutated() -> None:
    mw, scopes = recording_middleware()
    original = http_scope(headers=[(b"cookie", b"session=1; px_uid=2")])
    original["state"] = {"db": "pool"}
    await run_raw(mw, original)
    assert original["headers"] == [(b"cookie", b"session=1; px_uid=2")]
    assert scopes[0]["headers"] == [(b"cookie", b"session=1")]
    assert scopes[0]["state"]["db"] == "pool"
    assert isinstance(scopes[0]["state"]["consent"], ConsentState)
    # request state is shared with the caller, so outer middleware sees what the app stored
    assert scopes[0]["state"] is original["state"]


@pytest.mark.anyio
async def test_the_scope_passes_through_when_no_cookie_is_filtered() -> None:
    """Like any pass-through middleware: what the application's router writes into the scope
    (an outer metrics middleware reads the endpoint from it) reaches the layers outside;
    only a request whose cookies were filtered gets a copy."""

    async def page(request: Request) -> Response:
        return PlainTextResponse("ok")

    mw = ConsentMiddleware(
        Starlette(routes=[Route("/visiting", page)]),
        policy=EXAMPLE_POLICY,
        secret_key=KEY,
        store="memory://",
    )
    kept = http_scope("/visiting", headers=[(b"cookie", b"session=1")])
    sent = await run_raw(mw, kept)
    assert sent[0]["status"] == 200
    assert kept["endpoint"] is page
    assert kept["headers"] == [(b"cookie", b"session=1")]

    filtered = http_scope("/visiting", headers=[(b"cookie", b"session=1; px_uid=2")])
    await run_raw(mw, filtered)
    assert "endpoint" not in filtered
    assert filtered["headers"] == [(b"cookie", b"session=1; px_uid=2")]


# --------------------------------------------------------------------------- websockets


def test_websocket_cookies_filtered_both_ways(mw: ConsentMiddleware, client: TestClient) -> None:
    with client.websocket_connect("/ws", headers={"cookie": "session=s; px_uid=p"}) as ws:
        data = ws.receive_json()
    assert data == {"cookies": {"session": "s"}, "analytics": False}


@pytest.mark.anyio
async def test_websocket_accept_headers_filtered() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "headers": [(b"set-cookie", b"px_uid=1"), (b"Set-Cookie", b"session=2")],
            }
        )
        await send({"type": "websocket.close", "code": 1000})

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    mw = ConsentMiddleware(app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    scope = {**http_scope("/ws"), "type": "websocket", "scheme": "ws", "subprotocols": []}
    del scope["method"]
    await mw(scope, receive, send)
    assert sent[0] == {"type": "websocket.accept", "headers": [(b"Set-Cookie", b"session=2")]}


@pytest.mark.anyio
@pytest.mark.parametrize("inject", [True, False])
@pytest.mark.parametrize("kind", ["websocket.http.response.start", "http.response.start"])
async def test_set_cookie_headers_of_any_type_are_judged(kind: str, inject: bool) -> None:
    """str (h11), memoryview (httptools) and bytearray headers are judged like bytes; a
    Set-Cookie no server can send (not text, or text beyond Latin-1) is dropped, and so is a
    header whose name is no text at all."""
    headers: list[tuple[Any, Any]] = [
        ("Set-Cookie", "px_uid=1"),
        (memoryview(b"Set-Cookie"), memoryview(b"_fbp=1")),
        (bytearray(b"SET-COOKIE"), bytearray(b"stats_vid=1")),
        (b"set-cookie", memoryview(b"session=1")),
        ("set-cookie", "sessionid=1"),
        (b"x-kept", "yes"),
        (b"set-cookie", 12),
        (7, b"px_uid=2"),
        ("set-cookie", "px_uid=\u20ac"),
        (b"content-type", b"text/plain"),
    ]
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": kind, "status": 403, "headers": headers})
        body = (
            "websocket.http.response.body" if kind.startswith("websocket") else "http.response.body"
        )
        await send({"type": body, "body": b"no"})

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    mw = ConsentMiddleware(
        app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://", inject_banner=inject
    )
    scope = http_scope("/ws")
    if kind.startswith("websocket"):
        scope = {**scope, "type": "websocket", "scheme": "ws", "subprotocols": []}
        del scope["method"]
    await mw(scope, receive, send)
    passed = sent[0]["headers"]
    # (what is kept may be passed on as it came: the server sends it as it would have)
    assert len(passed) == 4
    assert bytes_headers(passed) == [
        (b"set-cookie", b"session=1"),
        (b"set-cookie", b"sessionid=1"),
        (b"x-kept", b"yes"),
        (b"content-type", b"text/plain"),
    ]


# --------------------------------------------------------------------------- observability


def test_metrics_and_undeclared_logged_once(
    mw: ConsentMiddleware, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="consent"):
        for _ in range(3):
            client.get("/set", headers={"cookie": "mystery=1; px_uid=2"})
    snapshot = mw.metrics.snapshot()
    assert snapshot["requests"] == 3
    assert snapshot["blocked_response"] == {"analytics": 3, "marketing": 3, "(undeclared)": 3}
    assert snapshot["blocked_request"] == {"(undeclared)": 3, "marketing": 3}
    assert snapshot["undeclared"] == {"mystery": 3, "tracker": 3}
    warnings = [r.getMessage() for r in caplog.records if "not declared" in r.getMessage()]
    assert len(warnings) == 2
    assert "'mystery'" in warnings[0] or "'mystery'" in warnings[1]


@pytest.mark.anyio
async def test_state_the_app_sets_is_visible_to_outer_middleware() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"]["user"] = "alice"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = ConsentMiddleware(app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    outer_scope = http_scope()
    await run_raw(mw, outer_scope)
    assert outer_scope["state"]["user"] == "alice"
    assert outer_scope["state"]["consent"].decided is False


def test_lifespan_shutdown_closes_the_receipt_store(tmp_path: Path) -> None:
    mw = ConsentMiddleware(
        inner, policy=EXAMPLE_POLICY, secret_key=KEY, store=f"sqlite:///{tmp_path / 'c.db'}"
    )
    with TestClient(mw, base_url=HOST) as c:
        assert c.post("/_consent", json={"accept": []}, headers={"Origin": HOST}).status_code == 200
        assert mw.endpoints._store is not None
    assert mw.endpoints._store is None  # closed when the server shut down


@pytest.mark.anyio
async def test_a_bytearray_cookie_header_is_filtered_like_bytes() -> None:
    """ASGI says bytes; a server that passes a bytearray gets the same filtering, not a 500."""
    mw, scopes = recording_middleware()
    await run_raw(mw, http_scope(headers=[(b"cookie", bytearray(b"session=1; px_uid=2"))]))
    assert scopes[0]["headers"] == [(b"cookie", b"session=1")]


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/_consent/i18n/\udcff.json", "/_consent/\udcff"])
async def test_a_path_that_is_not_text_gets_a_json_404(path: str) -> None:
    mw = ConsentMiddleware(inner, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    scope = http_scope()
    scope["path"] = path
    sent = await run_raw(mw, scope)
    assert sent[0]["status"] == 404
    assert json.loads(sent[1]["body"])["error"] == "not found"


def test_of_several_consent_cookies_the_newest_decision_wins(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    """A consent cookie planted with a longer Path (from a sibling subdomain, say) is sent
    before the visitor's own: it must not outvote the visitor's later choice."""
    now = int(time.time())
    planted = mw.cookie.dumps(
        mw.cookie.decision(
            {"analytics", "marketing"}, receipt_id="r-a", subject_id="attacker", decided_at=now - 60
        )
    )
    own = mw.cookie.dumps(
        mw.cookie.decision(set(), receipt_id="r-v", subject_id="visitor", decided_at=now - 5)
    )
    for header in (f"consent={planted}; consent={own}", f"consent={own}; consent={planted}"):
        response = client.get("/echo", headers={"Cookie": f"{header}; px_uid=2; session=1"})
        seen = response.json()
        assert seen["granted"] == [], header
        assert "px_uid" not in seen["cookies"], header


def test_a_genuine_consent_cookie_of_another_visitor_cannot_impose_its_choice(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    """A genuine cookie from another visit (the attacker's own, planted from a sibling
    subdomain or over plain http) is newer than the visitor's refusal: only what both grant
    counts, and the visitor's next decision does not join the attacker's history."""
    now = int(time.time())
    planted = mw.cookie.dumps(
        mw.cookie.decision(
            {"analytics", "marketing"}, receipt_id="r-a", subject_id="attacker", decided_at=now
        )
    )
    own = mw.cookie.dumps(
        mw.cookie.decision(
            {"analytics"}, receipt_id="r-v", subject_id="visitor", decided_at=now - 60
        )
    )
    for header in (f"consent={planted}; consent={own}", f"consent={own}; consent={planted}"):
        cookies = {"Cookie": f"{header}; stats_vid=1; px_uid=2; session=1"}
        seen = client.get("/echo", headers=cookies).json()
        assert seen["granted"] == ["analytics"], header
        assert "px_uid" not in seen["cookies"], header
        assert "stats_vid" in seen["cookies"], header
        state = client.get("/_consent", headers=cookies).json()
        assert (state["decided"], state["receipt_id"]) == (True, None)
        answer = client.post(
            "/_consent", json={"accept": ["analytics"]}, headers={"Origin": HOST, **cookies}
        ).json()
        assert answer["receipt"]["subject_id"] not in ("attacker", "visitor")


def test_several_consent_cookies_of_one_visitor_count_the_newest(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    """The site moved its consent cookie's path or domain: the visitor's two cookies carry one
    subject id, and the newest decision counts, granting more as well as less."""
    now = int(time.time())
    older = mw.cookie.dumps(
        mw.cookie.decision(set(), receipt_id="r-1", subject_id="visitor", decided_at=now - 60)
    )
    newer = mw.cookie.dumps(
        mw.cookie.decision({"marketing"}, receipt_id="r-2", subject_id="visitor", decided_at=now)
    )
    for header in (f"consent={older}; consent={newer}", f"consent={newer}; consent={older}"):
        cookies = {"Cookie": f"{header}; px_uid=2; session=1"}
        seen = client.get("/echo", headers=cookies).json()
        assert seen["granted"] == ["marketing"], header
        assert "px_uid" in seen["cookies"], header
        assert client.get("/_consent", headers=cookies).json()["receipt_id"] == "r-2"

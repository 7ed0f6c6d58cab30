"""Shared helpers for the per-framework tests: loading the example apps, consent cookies, and
small ASGI drivers that record every message (test clients join body chunks; these do not)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from types import ModuleType
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consent.policy import load_policy
from consent.state import ConsentCookie

from ..helpers import ROOT

EXAMPLES = ROOT / "examples"
POLICY = EXAMPLES / "policy"
KEY = "framework-tests-secret-key-0123456789"

#: The environment the examples read their configuration from.
EXAMPLE_ENV = {
    "CONSENT_SECRET_KEY": KEY,
    "SESSION_SECRET_KEY": "framework-tests-session-key-0123456789",
    "CONSENT_STORE": "memory://",
}

#: Cookies the example apps set or may receive, by category.
NECESSARY = {"session", "sessionid", "csrftoken", "__Host-lb", "consent"}
ANALYTICS = {"stats_vid", "stats_ses_live", "stats_ses_ws", "_ga"}
MARKETING = {"px_uid", "_fbp"}

#: A request ``Cookie`` header with one cookie of every kind (and one nobody declared).
MIXED_COOKIES = "csrftoken=c1; stats_vid=v1; px_uid=p1; _ga=g1; tracker=t1"


def loopback_listener(backlog: int) -> tuple[socket.socket, int]:
    """A listening socket on a free loopback port (bound here, so the port is known before a
    server given the socket's ``--fd`` starts), and its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock, sock.getsockname()[1]


@contextmanager
def example_env(**extra: str) -> Iterator[None]:
    """Set the examples' environment variables for the duration of the block."""
    values = {**EXAMPLE_ENV, **extra}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (configured for tests) under a private module name."""
    module_name = f"lindenhof_examples_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # Quart finds its root path through sys.modules
    try:
        with example_env():
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


_codec: ConsentCookie | None = None


def consent_cookie(granted: Iterable[str], subject: str = "subject-1") -> str:
    """A consent cookie value exactly as the endpoint issues it (the real codec and key)."""
    global _codec
    if _codec is None:
        _codec = ConsentCookie([KEY], load_policy(POLICY))
    return _codec.dumps(_codec.decision(set(granted), receipt_id="r-1", subject_id=subject))


def cookie_names(set_cookie_values: Iterable[str]) -> set[str]:
    """The cookie names of some ``Set-Cookie`` header values."""
    return {value.split("=", 1)[0].strip() for value in set_cookie_values}


def set_cookie_headers(message: Message) -> list[str]:
    """The ``Set-Cookie`` values of a response-start or accept message (any header case)."""
    return [
        value.decode("latin-1")
        for name, value in message.get("headers") or []
        if name.lower() == b"set-cookie"
    ]


# --------------------------------------------------------------------------- ASGI drivers


def _scope(
    kind: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    host: str,
    state: Mapping[str, Any] | None,
) -> dict[str, Any]:
    path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", host.encode())]
        + [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        "client": ("203.0.113.7", 50123),
        "server": (host, 80),
    }
    if state is not None:
        scope["state"] = dict(state)  # a server gives every connection a copy of the state
    return scope


async def http_messages(
    app: ASGIApp,
    path: str,
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    host: str = "testserver",
    state: Mapping[str, Any] | None = None,
) -> list[Message]:
    """Run one HTTP request through ``app``; every message it sends, in order."""
    scope = _scope("http", path, headers, host, state)
    scope["method"] = method
    sent: list[Message] = []
    done = anyio.Event()
    request_sent = False

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return sent


async def websocket_messages(
    app: ASGIApp,
    path: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    host: str = "testserver",
    state: Mapping[str, Any] | None = None,
) -> list[Message]:
    """Open one WebSocket to ``app``, wait until the app closes it; every message it sent."""
    scope = _scope("websocket", path, headers, host, state)
    scope["subprotocols"] = []
    sent: list[Message] = []
    closed = anyio.Event()
    connected = False

    async def receive() -> Message:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await closed.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)
        kind = message["type"]
        if kind == "websocket.close" or (
            kind == "websocket.http.response.body" and not message.get("more_body", False)
        ):
            closed.set()

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return sent


async def run_app(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await app(scope, receive, send)


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run the ASGI lifespan protocol around the block, as a server does; yields the state
    the app filled in at start-up (to be passed on to ``http_messages(state=...)``)."""
    state: dict[str, Any] = {}
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    to_app, app_inbox = anyio.create_memory_object_stream[Message](1)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](1)
    async with anyio.create_task_group() as tg, to_app, app_inbox, app_outbox, from_app:
        tg.start_soon(run_app, app, scope, app_inbox.receive, app_outbox.send)
        with anyio.fail_after(10):
            await to_app.send({"type": "lifespan.startup"})
            started = await from_app.receive()
        assert started["type"] == "lifespan.startup.complete", started
        yield state
        with anyio.fail_after(10):
            await to_app.send({"type": "lifespan.shutdown"})
            stopped = await from_app.receive()
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


def response_start(messages: list[Message]) -> Message:
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 1, messages
    return starts[0]


def body_chunks(messages: list[Message]) -> list[bytes]:
    """The non-empty body chunks, checking that only the last message ends the body."""
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    assert bodies, messages
    assert all(m.get("more_body", False) for m in bodies[:-1])
    assert not bodies[-1].get("more_body", False)
    return [bytes(m["body"]) for m in bodies if m.get("body")]


def sse_events(chunks: list[bytes]) -> list[dict[str, Any]]:
    """The JSON data of the server-sent events in a streamed body."""
    text = b"".join(chunks).decode()
    return [
        json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")
    ]

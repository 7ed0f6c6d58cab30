"""A strict in-process ASGI driver for the fuzzers: every message is kept, nothing is joined,
and any exception that escapes the app fails the test."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message

#: A header name is a token (RFC 9110 5.1).
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    messages: list[Message] = field(default_factory=list)

    def getlist(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]

    def get(self, name: bytes) -> bytes | None:
        found = self.getlist(name)
        return found[0] if found else None

    @property
    def set_cookies(self) -> list[bytes]:
        return self.getlist(b"set-cookie")


def check_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """No header could split the response: names are tokens, values hold no CR, LF or NUL."""
    for name, value in headers:
        assert TOKEN.match(name), name
        assert not any(c in value for c in b"\r\n\x00"), (name, value)


async def request(
    app: ASGIApp,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    chunk: int = 0,
) -> Answer:
    """One HTTP request; ``chunk`` > 0 sends the body in pieces of that size."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    pieces = pieces or [b""]
    sent: list[Message] = []

    async def receive() -> Message:
        if pieces:
            piece = pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    path_part, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_part,
        "raw_path": path_part.encode("latin-1", "replace"),
        "root_path": "",
        "query_string": query.encode("latin-1", "replace"),
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("203.0.113.9", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    start = starts[0]
    response_headers = list(start.get("headers", []))
    check_headers(response_headers)
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], response_headers, body_out, sent)

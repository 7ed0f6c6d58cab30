"""Shared test helpers (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from starlette.types import Receive, Scope, Send

from consent import ConsentMiddleware

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "examples" / "policy"


def copy_policy(tmp_path: Path, name: str = "policy") -> Path:
    """A private, editable copy of the example policy."""
    target = tmp_path / name
    shutil.copytree(EXAMPLE_POLICY, target)
    return target


def http_scope(cookie: bytes | None, *, path: str = "/", scheme: str = "http") -> Scope:
    """A plain GET scope for calling a middleware directly, with an optional Cookie header."""
    headers = [(b"host", b"testserver")]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return {
        "type": "http",
        "method": "GET",
        "scheme": scheme,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": headers,
    }


def detached_middleware(secret_key: str) -> ConsentMiddleware:
    """A middleware on the example policy and a memory store whose ``app`` each test sets."""

    async def placeholder(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("replaced per call")

    return ConsentMiddleware(
        placeholder, policy=EXAMPLE_POLICY, secret_key=secret_key, store="memory://"
    )

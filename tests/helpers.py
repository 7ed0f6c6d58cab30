"""Shared test helpers (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from itsdangerous import Signer
from starlette.types import Receive, Scope, Send

from consent import ConsentMiddleware
from consent.state import KeyedBlake2s
from consent.store.base import GroupCommit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "examples" / "policy"


def run_consent(
    *args: str, key: str | None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``consent ARGS`` with ``CONSENT_SECRET_KEY`` set to ``key`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "CONSENT_SECRET_KEY"}
    if key is not None:
        env["CONSENT_SECRET_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "consent.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def consent_with_reader_gone(*args: str) -> tuple[int, bytes]:
    """Run ``consent ARGS`` with its output pipe closed before it writes, as in
    ``consent ... | head`` when head has had enough: (exit status, what it wrote to stderr)."""
    with subprocess.Popen(
        [sys.executable, "-m", "consent.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        stderr = proc.stderr.read()
        return proc.wait(timeout=60), stderr


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


async def commit_under_way(store: GroupCommit, waiting: int) -> None:
    """Wait until a store's batch has gone to be written and ``waiting`` appends wait for the
    next one."""
    for _ in range(10_000):
        if store._committing and len(store._pending) == waiting:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"no commit under way with {waiting} appends waiting")


def cookie_signer(keys: Sequence[str], version: int = 3) -> Signer:
    """An itsdangerous ``Signer`` deriving its keys itself, as documented, that signs as the
    consent cookie of ``version`` is signed (the first of ``keys`` signing): keyed BLAKE2s
    for 3, HMAC-SHA256 for 2."""
    return Signer(
        list(reversed(keys)),
        salt=f"asgi-consent.cookie.{version}",
        key_derivation="hmac",
        digest_method=hashlib.sha256,
        algorithm=KeyedBlake2s() if version == 3 else None,
    )

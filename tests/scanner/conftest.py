"""The sites of :mod:`tests.scanner.site`, each under its own uvicorn process on a loopback
socket bound here (the port is known before the server starts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "scanner-test-key-0123456789abcdefgh"


def serve(log: Path, **env: str) -> Iterator[str]:
    """``uvicorn --factory tests.scanner.site:from_env`` with ``env``; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    command = [sys.executable, "-m", "uvicorn", "--factory", "tests.scanner.site:from_env"]
    command += ["--app-dir", str(ROOT), "--fd", str(sock.fileno()), "--log-level", "warning"]
    environ = {**os.environ, **env, "CONSENT_SECRET_KEY": KEY, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, pass_fds=[sock.fileno()], env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    sock.close()
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"the site exited with {process.returncode}:\n{log.read_text()}")
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the site did not answer within 20 s:\n{log.read_text()}")
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def leaky_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("leaky") / "log", SCAN_SITE="shop", SCAN_SITE_LEAK="1")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("shop") / "log", SCAN_SITE="shop")


@pytest.fixture(scope="module")
def plain_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("plain") / "log", SCAN_SITE="plain")

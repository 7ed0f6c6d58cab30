"""Fixtures for the real-browser tests: the demo under uvicorn, headless Chromium.

The demo runs in a subprocess (``uvicorn --factory consent.demo:from_env``) on a loopback socket
that is bound here, so its port is known before the server starts. Chromium is Debian's
``/usr/bin/chromium`` driven through Playwright; nothing is downloaded and no other host is
contacted.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from consent.demo import POLICY_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEST_KEY = "browser-test-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"

SKIP_REASON = (
    f"{CHROMIUM} is not installed (apt-get install chromium); the browser tests use it instead "
    "of a downloaded browser"
)


def require_chromium() -> None:
    """Skip the calling test module (at import) or fixture when Chromium is missing."""
    if not CHROMIUM.exists():  # pragma: no cover - depends on the machine
        pytest.skip(SKIP_REASON, allow_module_level=True)


@dataclass
class DemoServer:
    """One demo process: its base URL, log file and receipt store."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    store: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                self.process.kill()
                self.process.wait()


def start_demo(directory: Path, *, policy: Path = POLICY_DIR) -> DemoServer:
    """Start the demo under uvicorn and wait until it answers."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "server.log"
    store = f"sqlite:///{directory / 'consent.db'}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    env = {
        **os.environ,
        "CONSENT_SECRET_KEY": TEST_KEY,
        "CONSENT_DEMO_STORE": store,
        "CONSENT_DEMO_POLICY": str(policy),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "consent.demo:from_env",
        "--fd",
        str(sock.fileno()),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            pass_fds=[sock.fileno()],
            env=env,
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sock.close()  # the server holds its own copy
    server = DemoServer(f"http://127.0.0.1:{port}", process, log, store)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            pytest.fail(f"the demo exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/_consent", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the demo did not answer within 20 s:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """The demo shared by a module's tests (each test uses its own browser context)."""
    server = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def demo_factory(tmp_path: Path) -> Iterator[Callable[..., DemoServer]]:
    """Start extra demo servers (e.g. with a changed policy); all stopped at the end."""
    started: list[DemoServer] = []

    def factory(name: str, *, policy: Path = POLICY_DIR) -> DemoServer:
        server = start_demo(tmp_path / name, policy=policy)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, for one module at a time: while it is open, its event loop is
    registered as the running loop of the main thread, which would break later tests that call
    ``asyncio.run`` or ``anyio.run``."""
    require_chromium()
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


def watch_errors(ctx: BrowserContext) -> list[str]:
    """Collect uncaught page errors and console errors (failed loads included) of a context."""
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(f"uncaught: {error.error}"))
    ctx.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text} {message.location}")
            if message.type == "error"
            else None
        ),
    )
    return errors


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: empty cookie jar, English, desktop size. The test fails if a
    page logs an error or throws."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    ctx.set_default_timeout(10_000)
    errors = watch_errors(ctx)
    try:
        yield ctx
    finally:
        ctx.close()
    assert not errors, errors


@pytest.fixture
def make_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Browser profiles with particular options (``locale``, ``java_script_enabled``,
    ``extra_http_headers``, ...); closed at the end, and checked for page errors like ``context``."""
    opened: list[tuple[BrowserContext, list[str]]] = []

    def make(**options: Any) -> BrowserContext:
        ctx = browser.new_context(**options)
        ctx.set_default_timeout(10_000)
        opened.append((ctx, watch_errors(ctx)))
        return ctx

    try:
        yield make
    finally:
        for ctx, _ in opened:
            ctx.close()
    errors = [e for _, found in opened for e in found]
    assert not errors, errors


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where screenshots go for a person to look at (``test-artifacts/`` is not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def copy_demo_policy(target: Path) -> Path:
    shutil.copytree(POLICY_DIR, target)
    return target

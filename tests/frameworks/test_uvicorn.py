"""End to end: the Starlette example under a real uvicorn server, spoken to over TCP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import EXAMPLE_ENV, EXAMPLES, cookie_names, loopback_listener


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``uvicorn starlette_app:app`` in a subprocess, on a loopback socket bound here (so the
    port is free and known before the server starts); yields the base URL."""
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    sock, port = loopback_listener(64)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(EXAMPLES),
        "--fd",
        str(sock.fileno()),
        "--lifespan",
        "on",
        "--no-access-log",
        "starlette_app:app",
    ]
    env = {**os.environ, **EXAMPLE_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, pass_fds=[sock.fileno()], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    sock.close()  # the server holds its own copy of the socket
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            process.kill()
            process.wait()
    # uvicorn re-raises the signal it stopped on once it has shut down cleanly
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


def wait_until_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(base + "/_consent", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"uvicorn did not answer within 20 s:\n{log.read_text()}")


def test_over_tcp_only_necessary_cookies_before_consent(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        response = client.get("/")
        assert response.status_code == 200
        assert cookie_names(response.headers.get_list("set-cookie")) == {"session", "csrftoken"}
        seen = client.get("/api/visitor", headers={"cookie": "csrftoken=c1; stats_vid=v1"})
        assert seen.json()["cookies"] == {"csrftoken": "c1"}


def test_over_tcp_a_posted_decision_lets_analytics_through(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        decided = client.post(
            "/_consent", json={"accept": ["analytics"]}, headers={"Origin": server}
        )
        assert decided.status_code == 200, decided.text
        assert "consent" in client.cookies
        page = client.get("/")
        assert cookie_names(page.headers.get_list("set-cookie")) == {
            "session",
            "csrftoken",
            "stats_vid",
        }
        seen = client.get("/api/visitor").json()
        assert set(seen["cookies"]) == {"consent", "session", "csrftoken", "stats_vid"}
        assert seen["allows"]["marketing"] is False


def test_over_tcp_the_feed_arrives_event_by_event(server: str) -> None:
    """Each event leaves the server when it is produced, not when the response ends."""
    interval = 0.3
    with (
        httpx.Client(base_url=server) as client,
        client.stream("GET", f"/waiting-times?updates=3&interval={interval}") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "set-cookie" not in response.headers
        started = time.monotonic()
        arrivals = [
            time.monotonic() - started
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    assert len(arrivals) == 3
    # two sleeps lie between the first and the last event: a buffered body would bring all
    # three at once
    assert arrivals[2] - arrivals[0] >= interval

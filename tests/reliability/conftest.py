"""Fixtures of the reliability suite: servers that are always cleaned up, and the stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Launch, Server, sqlite_url


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """``launch(store_url, workers=1, name="server")`` starts a uvicorn server and returns it.

    Every server started through it is stopped (SIGTERM, then SIGKILL) when the test ends,
    whatever happened; the tail of each server log is printed, so a failure shows it.
    """
    servers: list[Server] = []

    def start(store: str, *, workers: int = 1, name: str = "server") -> Server:
        server = Server(store, tmp_path, workers=workers, name=name)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            text = server.log_text()
            if text.strip():
                print(f"--- {server.log.name} (last 4000 characters)\n{text[-4000:]}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty receipt store: an SQLite file, or a database on the test PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "consent.db")
    url: str = request.getfixturevalue("pg_url")
    return url

"""The operator's view (consent.admin) in a real site under uvicorn, driven in Chromium: refused
without the site's login, then statistics, chart, latest receipts, revisions and counters."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from consent.policy import load_policy

from ..conftest import record_receipts
from ..stats_seed import TEST_KEY, seed_receipts
from .conftest import ROOT

pytestmark = pytest.mark.browser
PASSWORD = "operator-password-0123456789"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """examples/admin_site.py under uvicorn, its store holding the seed decisions."""
    store = f"sqlite:///{tmp_path / 'consent.db'}"
    # (in a thread of its own: Playwright's event loop runs in this one)
    seeding = threading.Thread(target=record_receipts, args=(store, seed_receipts()))
    seeding.start()
    seeding.join()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        **os.environ,
        "CONSENT_SECRET_KEY": TEST_KEY,
        "CONSENT_STORE": store,
        "OPERATOR_PASSWORD": PASSWORD,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(ROOT / "examples"),
                "admin_site:app",
                "--fd",
                str(sock.fileno()),
                "--log-level",
                "warning",
            ],
            pass_fds=[sock.fileno()],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sock.close()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/_consent", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the site did not start:\n{log.read_text()}")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_operators_view_behind_the_sites_login(site: str, browser: Browser) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    refused = page.goto(site + "/consent-admin/")
    assert refused is not None
    assert refused.status == 403
    assert "not allowed" in page.content()
    assert page.goto(site + "/consent-admin/chart.svg").status == 403  # type: ignore[union-attr]

    # A visitor's page view: the analytics cookie and an undeclared one are dropped.
    page.goto(site + "/")
    assert {c["name"] for c in ctx.cookies()} == set()
    answer = page.evaluate(
        """() => fetch('/_consent', {method: 'POST', headers: {'content-type': 'application/json'},
                 body: JSON.stringify({accept: ['analytics']})}).then(r => r.status)"""
    )
    assert answer == 200

    page.goto(site + "/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button")
    page.wait_for_url(site + "/consent-admin/")
    stats = page.inner_text("#stats")
    assert "decisions" in stats
    assert "2026-11-02" in stats
    chart = page.locator("#chart")
    chart.wait_for()
    page.wait_for_function("document.getElementById('chart').complete")
    assert page.evaluate("document.getElementById('chart').naturalWidth") > 400
    rows = page.locator("#latest tr")
    assert rows.count() == 1 + 11  # the header, the 10 seeded receipts and the new one
    newest = rows.nth(1).inner_text()
    assert "given" in newest
    assert "analytics" in newest
    assert "api" in newest
    current = load_policy(ROOT / "examples" / "policy").revision
    revisions = page.inner_text("#revisions")
    assert "rev-A" in revisions
    assert f"{current[:16]}\t" in revisions
    assert "in force" in revisions
    blocked = {
        cells[0]: cells[1:]
        for cells in (r.split("\t") for r in page.inner_text("#blocked").splitlines()[1:])
    }
    assert blocked["analytics"] == ["0", "1"]  # stats_vid in the response, before consent
    assert "tracker_x" in page.inner_text("#undeclared")
    assert "this worker" in page.inner_text("#worker")

    bad = page.goto(site + "/consent-admin/?since=someday")
    assert bad is not None
    assert bad.status == 400
    assert "someday" in json.loads(page.inner_text("body"))["error"]
    ctx.close()


def test_the_view_is_not_built_without_an_auth_hook() -> None:
    from consent.admin import create_app

    with pytest.raises(ValueError, match="needs auth="):
        create_app(store="sqlite:///x.db")

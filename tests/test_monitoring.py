"""The counters in the Prometheus text format: summed over two uvicorn workers, guarded, optional."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consent.admin import token_auth
from consent.monitoring import create_app
from consent.web.metrics import ConsentMetrics

from .stats_seed import TEST_KEY

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "scraper-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """examples/admin_site.py under uvicorn with two worker processes and a metrics directory."""
    directory = tmp_path / "metrics"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CONSENT_SECRET_KEY": TEST_KEY,
        "CONSENT_STORE": f"sqlite:///{tmp_path / 'consent.db'}",
        "OPERATOR_PASSWORD": "operator-password-0123456789",
        "METRICS_TOKEN": TOKEN,
        "METRICS_DIR": str(directory),
        "METRICS_INTERVAL": "0.2",
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
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while len(list(directory.glob("worker-*.json"))) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the two workers did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield url, directory
    finally:
        process.terminate()
        process.wait(timeout=20)


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(url + "/consent-metrics/", headers=BEARER, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _get(url: str, path: str) -> int:
    with httpx.Client(headers={"Connection": "close"}) as client:
        return client.get(url + path, timeout=10).status_code


def _decide(url: str) -> int:
    with httpx.Client() as client:
        return client.post(
            url + "/_consent", json={"accept": ["analytics"]}, headers={"Origin": url}, timeout=10
        ).status_code


def test_two_workers_are_summed(two_workers: tuple[str, Path]) -> None:
    url, directory = two_workers
    views, decisions = 120, 6
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: _get(url, "/"), range(views))) == {200}
        assert set(pool.map(lambda _: _decide(url), range(decisions))) == {200}

    # Requests are those passed to the site's app: every page view and every scrape (it passes
    # through the consent middleware too, counted as it arrives), not the decisions posted to
    # the consent endpoints. The other worker writes its counts every 0.2 s: scrape until the
    # sum holds them all.
    blocked = (("category", "analytics"), ("direction", "response"))
    undeclared = (("category", "(undeclared)"), ("direction", "response"))
    scrapes = 0
    deadline = time.monotonic() + 20
    while True:
        scrapes += 1
        found = _scrape(url)
        want = {
            ("consent_workers", ()): 2,
            ("consent_requests_total", ()): views + scrapes,
            ("consent_decisions_total", (("event", "given"),)): decisions,
            ("consent_cookies_blocked_total", blocked): views,
            ("consent_cookies_blocked_total", undeclared): views,
            ("consent_undeclared_cookies_total", (("name", "tracker_x"),)): views,
            ("consent_store_failures_total", ()): 0,
            ("consent_unavailable_responses_total", ()): 0,
        }
        got = {key: found.get(key) for key in want}
        if got == want:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    # Both workers answered page views: the total is a sum, not one worker's count.
    per_worker = [json.loads(p.read_text())["requests"] for p in directory.glob("worker-*.json")]
    assert len(per_worker) == 2
    assert min(per_worker) > 0, per_worker


def test_a_scrape_without_the_token_is_refused(two_workers: tuple[str, Path]) -> None:
    url, _ = two_workers
    answer = httpx.get(url + "/consent-metrics/", timeout=10)
    assert answer.status_code == 403
    assert "not allowed" in answer.json()["error"]
    wrong = httpx.get(url + "/consent-metrics/", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert httpx.post(url + "/consent-metrics/", headers=BEARER).status_code == 405


def test_a_store_failure_is_counted(tmp_path: Path) -> None:
    """A decision the store cannot take: one store failure, one 503 (in one worker)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    from consent import ConsentMiddleware

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    site = Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))])
    consent = ConsentMiddleware(
        site,
        policy=ROOT / "examples" / "policy",
        store=f"sqlite:///{blocker}/consent.db",
        secret_key=TEST_KEY,
    )
    site.routes.append(
        Mount("/metrics", app=create_app(metrics=consent.metrics, auth=token_auth(TOKEN)))
    )
    with TestClient(consent, base_url="http://testserver") as client:
        answer = client.post(
            "/_consent", json={"accept": []}, headers={"Origin": "http://testserver"}
        )
        assert answer.status_code == 503
        text = client.get("/metrics/", headers=BEARER).text
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert found[("consent_workers", ())] == 1
    assert found[("consent_store_failures_total", ())] == 1
    assert found[("consent_unavailable_responses_total", ())] == 1
    assert ("consent_decisions_total", (("event", "refused"),)) not in found


def test_auth_is_required_and_the_extra_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="needs auth="):
        create_app(metrics=ConsentMetrics())
    # Without the extra installed, building the app names it (an import that fails, as it
    # does when prometheus_client is absent).
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"\[metrics\] extra"):
        create_app(metrics=ConsentMetrics(), auth=token_auth(TOKEN))

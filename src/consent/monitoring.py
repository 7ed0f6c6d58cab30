"""The middleware's counters in the Prometheus text format, summed over the site's workers.

``create_app(metrics=middleware.metrics, auth=..., directory=...)`` is an ASGI app the site
mounts at the path it chooses, guarded like the operator's view (:mod:`consent.admin`). It needs
the ``[metrics]`` extra (``prometheus_client``, which writes the text format).

The request path only adds to :class:`~consent.web.metrics.ConsentMetrics` in memory, as it
always has. With ``directory``, each worker writes its counters to a file of its own there
(``worker-<pid>.json``, replaced whole) every ``interval`` seconds from a thread, and when it
answers a scrape; the worker that answers reads every file and sums them. A worker that has
stopped keeps its last counts in the sum, so the counters never go down; empty the directory
when the site (re)starts, as ``prometheus_client``'s own multiprocess mode asks.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .admin import AuthHook
from .web.metrics import ConsentMetrics

__all__ = ["MetricsApp", "WorkerFiles", "create_app"]

_MISSING = (
    "consent.monitoring needs prometheus_client: install the [metrics] extra "
    "(pip install 'asgi-consent[metrics]')"
)


class WorkerFiles:
    """This worker's counters written to ``directory`` in batches, and every worker's read back."""

    def __init__(self, metrics: ConsentMetrics, directory: str | Path, interval: float) -> None:
        self.metrics = metrics
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self._lock = threading.Lock()
        self._written: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._start()
        # A worker forked from the process that built the app gets its own file and thread.
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._written = None
        self._stop = threading.Event()
        thread = threading.Thread(target=self._run, name="consent-metrics", daemon=True)
        thread.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self.publish()

    def close(self) -> None:
        """Write the counters a last time and stop the thread."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self.publish()

    @property
    def path(self) -> Path:
        return self.directory / f"worker-{self._pid}.json"

    def publish(self) -> None:
        """Write this worker's counters, when they changed since the last write."""
        with self._lock:
            snapshot = self.metrics.snapshot()
            if snapshot == self._written:
                return
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".worker-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(snapshot, f)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._written = snapshot

    def snapshots(self) -> list[dict[str, Any]]:
        """Every worker's last counters, this one's current."""
        self.publish()
        found = []
        for path in sorted(self.directory.glob("worker-*.json")):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found


def _summed(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for snapshot in snapshots:
        for key, value in snapshot.items():
            if isinstance(value, dict):
                total.setdefault(key, Counter()).update(value)
            else:
                total[key] = total.get(key, 0) + int(value)
    return total


def _families(total: dict[str, Any], workers: int) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def counter(name: str, doc: str, key: str) -> Any:
        return CounterMetricFamily(name, doc, value=int(total.get(key, 0)))

    def labelled(name: str, doc: str, label: str, key: str) -> Any:
        family = CounterMetricFamily(name, doc, labels=[label])
        for value, n in sorted(total.get(key, {}).items()):
            family.add_metric([value], n)
        return family

    yield GaugeMetricFamily(
        "consent_workers", "Worker processes whose counters are summed here", value=workers
    )
    yield counter(
        "consent_requests",
        "HTTP requests passed to the site's app (not the consent endpoints)",
        "requests",
    )
    yield counter("consent_websockets", "WebSocket connections through it", "websockets")
    yield counter("consent_gpc_requests", "Requests sent with Sec-GPC: 1", "gpc_requests")
    blocked = CounterMetricFamily(
        "consent_cookies_blocked",
        "Cookies removed, per category and direction (request: Cookie, response: Set-Cookie)",
        labels=["category", "direction"],
    )
    for direction in ("request", "response"):
        for category, n in sorted(total.get(f"blocked_{direction}", {}).items()):
            blocked.add_metric([category, direction], n)
    yield blocked
    yield labelled(
        "consent_undeclared_cookies",
        "Cookies the policy does not declare, per name (at most 1,000 names, then '(other names)')",
        "name",
        "undeclared",
    )
    yield labelled(
        "consent_decisions", "Consent receipts recorded, per event", "event", "decisions"
    )
    yield counter(
        "consent_store_failures", "Times the receipt store could not be reached", "store_failures"
    )
    yield counter(
        "consent_unavailable_responses",
        "503 answers because the receipt store was unavailable",
        "unavailable",
    )


class _Collector:
    def __init__(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        snapshots = self.read()
        yield from _families(_summed(snapshots), len(snapshots))


class MetricsApp:
    """The ASGI app of :func:`create_app`: GET or HEAD at any path under its mount answers the
    metrics, to requests ``auth`` admits."""

    def __init__(self, auth: AuthHook, collector: _Collector, files: WorkerFiles | None) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self._auth = auth
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(collector)
        self._generate = generate_latest
        self._content_type = CONTENT_TYPE_LATEST
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response: Response
        if scope["method"] not in ("GET", "HEAD"):
            response = JSONResponse(
                {"error": "method not allowed: GET or HEAD"},
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
        elif not await self._allowed(request):
            response = JSONResponse(
                {"error": "not allowed: the metrics need the site's operator login"},
                status_code=403,
                headers={"Cache-Control": "no-store"},
            )
        else:
            import anyio.to_thread

            body = await anyio.to_thread.run_sync(self._generate, self._registry)
            response = Response(
                body,
                media_type=self._content_type,
                headers={"Cache-Control": "no-store"},
            )
        await response(scope, receive, send)

    async def _allowed(self, request: Request) -> bool:
        answer = self._auth(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer is True


def create_app(
    *,
    metrics: ConsentMetrics,
    auth: AuthHook | None = None,
    directory: str | Path | None = None,
    interval: float = 5.0,
) -> MetricsApp:
    """The counters of ``metrics`` (``middleware.metrics``) in the Prometheus text format.

    ``auth`` (required): as for :func:`consent.admin.create_app` (``consent.admin.token_auth``
    for a scraper's bearer token). ``directory``: where the workers of one site meet; without
    it, the answer is this worker's counters alone (``consent_workers`` says 1). ``interval``:
    seconds between two writes of a worker's counters. Raises ValueError without ``auth`` and
    ImportError without the ``[metrics]`` extra.
    """
    if auth is None or not callable(auth):
        raise ValueError(
            "consent.monitoring.create_app needs auth=: a function (request) -> bool (or an "
            "async one), e.g. consent.admin.token_auth(TOKEN) for the scraper's bearer token. "
            "The metrics are never served without one."
        )
    if interval <= 0:
        raise ValueError("interval must be a positive number of seconds")
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    files = None if directory is None else WorkerFiles(metrics, directory, interval)
    collector = _Collector(files.snapshots if files is not None else lambda: [metrics.snapshot()])
    return MetricsApp(auth, collector, files)

"""Real servers and real clients for the reliability suite.

* :class:`Server` runs ``uvicorn --factory launcher:build`` (see ``launcher.py``) in its own
  process group on a free loopback port, with one or more workers, and can SIGKILL or stop it.
* :func:`post_decisions` sends consent decisions from many concurrent httpx clients.
* :func:`verify_chain` checks a store with the real audit code, in process and via the CLI.

The long variants scale with ``CONSENT_RELIABILITY_SCALE``: see :data:`SCALE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from consent.audit import VerifyResult, verify_store
from consent.receipts import ReceiptSigner
from consent.store import open_store
from consent.store.chain import RECORD_EVENTS

from ..pg import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

KEY = "reliability-suite-secret-key-0123456789abcdef"
SIGNER = ReceiptSigner([KEY])

#: Non-necessary categories of ``examples/policy``.
OPTIONAL = ("analytics", "marketing", "preferences", "embedded")

#: Size of the long (``slow``) variants: 1 runs them at full size (2,000 decisions per load
#: test, ...); the default 0.25 is the reduced size CI runs. The other tests have fixed sizes.
SCALE = float(os.environ.get("CONSENT_RELIABILITY_SCALE", "0.25"))


def scaled(full: int, minimum: int = 1) -> int:
    """``full`` times ``CONSENT_RELIABILITY_SCALE``, at least ``minimum``."""
    return max(minimum, round(full * SCALE))


# --------------------------------------------------------------------------- servers


class Server:
    """``uvicorn --factory launcher:build`` on ``127.0.0.1:<free port>`` with ``workers`` processes.

    Started in a new session, so the supervisor and its workers form one process group that
    :meth:`kill` and :meth:`stop` address by the supervisor's pid.
    """

    def __init__(self, store: str, log_dir: Path, *, workers: int = 1, name: str = "server"):
        self.store = store
        self.workers = workers
        self.name = name
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self.port = 0
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> dict[str, str]:
        """The header a browser sends with a same-origin POST to this server."""
        return {"Origin": self.base}

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self, timeout: float = 30) -> Server:
        for _attempt in range(3):
            self.starts += 1
            self.port = free_port()
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "5",
                "--factory",
                "launcher:build",
            ]
            env = {
                **os.environ,
                "CONSENT_SECRET_KEY": KEY,
                "CONSENT_RELIABILITY_STORE": self.store,
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            # Output goes through a pipe, not straight to the log file: a test may forbid the
            # workers to write files (see test_faults.sqlite_gone) and the log must go on.
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._drain = threading.Thread(
                target=_copy, args=(self.process.stdout, self.log), daemon=True
            )
            self._drain.start()
            if self._wait_ready(timeout):
                return self
            # The port was taken between choosing and binding it: try another one.
            self._reap()
        raise AssertionError(f"{self.name} did not start:\n{self.log_text()}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "address already in use" in self.log_text().lower():
                    return False
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_text()}"
                )
            try:
                if httpx.get(self.base + "/_consent", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError(f"{self.name} did not answer within {timeout} s")
        # Every worker up: each one is a child of the supervisor once it serves.
        while time.monotonic() < deadline and len(self.worker_pids()) < self.workers:
            time.sleep(0.05)
        return True

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the workers (children of the supervisor), or the
        server itself when it runs one worker in process."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        return children_of(self.process.pid)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the supervisor and every worker at once (no shutdown of any kind)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the group), SIGKILL when it does not end in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        self.kill()

    def _reap(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        # Workers of a killed supervisor may outlive it for a moment: reap the group.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_alive(self.process.pid):
            time.sleep(0.02)
        if self._drain is not None:
            self._drain.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _copy(source: Any, log: Path) -> None:
    with log.open("wb") as out:
        for line in iter(source.readline, b""):
            out.write(line)
            out.flush()


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from ``/proc/*/stat``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - not ours
        return False
    # Zombies count as gone: only their parent can reap them.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == pgid and fields[0] != "Z":
            return True
    return False


#: The ``launch`` fixture: ``launch(store_url, workers=1, name="server") -> Server``.
Launch = Callable[..., Server]


# --------------------------------------------------------------------------- clients


@dataclass
class Outcome:
    """One POST: the status (None when the connection failed), the receipt id it answered."""

    index: int
    base: str
    status: int | None = None
    receipt_id: str | None = None
    subject_id: str | None = None
    worker: str | None = None
    set_cookies: list[str] = field(default_factory=list)
    retry_after: str | None = None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def decision_for(index: int) -> list[str]:
    """A varied but reproducible set of granted categories."""
    return [c for bit, c in enumerate(OPTIONAL) if index >> bit & 1]


class _RefuseAll(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def cookieless() -> http.cookiejar.CookieJar:
    """A cookie jar that keeps nothing: one client then speaks for many independent visitors,
    each of which sends its own ``Cookie`` header (or none)."""
    return http.cookiejar.CookieJar(policy=_RefuseAll())


def client_limits(concurrency: int, keepalive: bool) -> httpx.Limits:
    # With ``--workers N`` uvicorn leaves Nagle's algorithm on for accepted connections
    # (uvicorn issue #3149), so every keep-alive request after the first waits ~40 ms for a
    # delayed ACK. Fresh connections avoid that and also spread requests over the workers.
    return httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency if keepalive else 0
    )


async def post_decisions(
    bases: Sequence[str],
    count: int,
    concurrency: int,
    *,
    keepalive: bool = False,
    request_timeout: float = 60,
    stop: asyncio.Event | None = None,
    on_result: Any = None,
) -> list[Outcome]:
    """``count`` first decisions by ``count`` new visitors, ``concurrency`` at a time, spread
    round-robin over ``bases``. Connection failures are recorded, not raised. When ``stop`` is
    set, requests not yet sent are skipped."""
    semaphore = asyncio.Semaphore(concurrency)
    outcomes = [Outcome(index=i, base=bases[i % len(bases)]) for i in range(count)]
    clients = {
        base: httpx.AsyncClient(
            base_url=base,
            limits=client_limits(concurrency, keepalive),
            timeout=request_timeout,
            cookies=cookieless(),
        )
        for base in bases
    }

    async def one(outcome: Outcome) -> None:
        async with semaphore:
            if stop is not None and stop.is_set():
                outcome.error = "not sent"
                return
            client = clients[outcome.base]
            try:
                response = await client.post(
                    "/_consent",
                    json={"accept": decision_for(outcome.index), "page": f"/p/{outcome.index}"},
                    headers={"Origin": outcome.base},
                )
            except httpx.HTTPError as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
            else:
                fill(outcome, response)
            if on_result is not None:
                on_result(outcome)

    try:
        await asyncio.gather(*(one(o) for o in outcomes))
    finally:
        for client in clients.values():
            await client.aclose()
    return outcomes


def fill(outcome: Outcome, response: httpx.Response) -> None:
    outcome.status = response.status_code
    outcome.worker = response.headers.get("x-worker")
    outcome.set_cookies = response.headers.get_list("set-cookie")
    outcome.retry_after = response.headers.get("retry-after")
    try:
        outcome.body = response.json()
    except ValueError:
        outcome.body = response.text
    if outcome.ok and isinstance(outcome.body, dict):
        outcome.receipt_id = outcome.body.get("receipt_id")
        receipt = outcome.body.get("receipt") or {}
        outcome.subject_id = receipt.get("subject_id")


# --------------------------------------------------------------------------- the store


def store_receipts(url: str) -> dict[str, dict[str, Any]]:
    """Every stored receipt by id (parsed from the signed body)."""
    store = open_store(url, SIGNER)
    return {row.receipt.receipt_id: row.to_dict() for row in store.iter_rows()}


def check_sequence(url: str, stored: dict[str, dict[str, Any]]) -> None:
    """The log is one sequence without gaps: the policy's signed archive record at seq 1
    (written once, by whichever process decided first), then every receipt of ``stored``
    (:func:`store_receipts`), numbered from 2."""
    log = [(row.seq, row.event) for row in open_store(url, SIGNER).iter_raw()]
    assert [seq for seq, _ in log] == list(range(1, len(log) + 1)), "a gap in the log"
    assert [(seq, event) for seq, event in log if event in RECORD_EVENTS] == [(1, "policy")]
    assert sorted(row["seq"] for row in stored.values()) == list(range(2, len(stored) + 2))


def verify_chain(url: str) -> VerifyResult:
    """Verify the store with ``verify_store`` and with ``consent verify --store`` (a separate
    process, key from the environment); both must agree that it holds. Returns the result."""
    result = verify_store(open_store(url, SIGNER), SIGNER)
    assert result.ok, result.message()
    cli = subprocess.run(
        [sys.executable, "-m", "consent.cli", "verify", "--store", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CONSENT_SECRET_KEY": KEY},
        check=False,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"OK: {result.count} receipts verified" in cli.stdout, cli.stdout
    return result


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # an absolute path gives sqlite:////abs/path.db


def record(test: str, **figures: Any) -> None:
    """Print the figures of a run; also append them as JSON to ``CONSENT_RELIABILITY_REPORT``
    when that is set (the numbers in docs/reliability.md come from there)."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(line)
    target = os.environ.get("CONSENT_RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def warm_all_workers(base: str, workers: int, *, batches: int = 30) -> list[Outcome]:
    """Post decisions until every worker process has answered one (so each holds a store
    connection). The kernel spreads connections unevenly on a busy machine, so one batch is
    not always enough."""
    outcomes: list[Outcome] = []
    for _ in range(batches):
        outcomes += asyncio.run(post_decisions([base], 20, 10))
        if len({o.worker for o in outcomes if o.ok}) >= workers:
            break
    return outcomes

"""Consent decisions recorded durably per second, against a JSON echo on the same server.

    python benchmarks/decisions.py [--quick] [--rounds N] [--seconds S] [--only sqlite-1,...]
                                   [--before SRC]

Each configuration starts uvicorn (``--workers N``, 127.0.0.1) serving ``ConsentMiddleware``
around a Starlette app with one route, ``POST /echo``, which parses the JSON body and answers
it back: the ceiling of what the server does with a small JSON POST. The load generator is
``wrk`` with a Lua script (``-t1 -c16``), POSTing ``{"accept": ["analytics"]}`` with an
``Origin`` that matches ``Host`` to either ``/echo`` or ``/_consent``; the two are interleaved
round by round on the same server. Every ``/_consent`` answer means a signed receipt was
committed to the store (SQLite ``synchronous=FULL`` in WAL mode; PostgreSQL with ``fsync`` and
``synchronous_commit`` on) before the response left.

Configurations: SQLite with 1 and 2 workers (one file), PostgreSQL with 2 workers (a
throwaway cluster started as in ``tests/pg.py``, but with ``fsync=on``). After each
configuration the receipts in the store are counted and the chain verified.

Besides requests per second, CPU time per request is reported (from ``/proc``, so Linux
only): the workers' (all their threads), PostgreSQL's (the postmaster, its backends and
writers), and all of it with wrk's. On a shared machine it moves much less than throughput
does. While the workers are CPU-bound the throughput ratio tends to the workers' CPU ratio;
while the whole machine is (wrk, the workers and the database on the same cores), to the
ratio of all of it.

Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    POLICY,
    ROOT,
    SECRET,
    fmt3,
    free_port,
    load,
    machine,
    stop,
    table,
    wait_for_port,
)

BODY = '{"accept": ["analytics"]}'


# ---------------------------------------------------------------------- the server side


def make_app():  # type: ignore[no-untyped-def]
    """The application uvicorn serves (``--factory``); the store URL comes from the env."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from consent import ConsentMiddleware

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"echo": await request.json()})

    inner = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    return ConsentMiddleware(
        inner, policy=POLICY, secret_key=SECRET, store=os.environ["CONSENT_BENCH_STORE"]
    )


# ---------------------------------------------------------------------- load


_LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Origin"] = "http://127.0.0.1:{port}"
"""
_RPS = re.compile(rb"Requests/sec:\s*([0-9.]+)")
_TOTAL = re.compile(rb"([0-9]+) requests in")


def wrk(port: int, path: str, seconds: int, script: Path) -> tuple[float, int]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c16",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    if b"Non-2xx" in out or b"Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {path}:\n" + out.decode())
    rps, total = _RPS.search(out), _TOTAL.search(out)
    if rps is None or total is None:
        raise RuntimeError("cannot read wrk output:\n" + out.decode())
    return float(rps[1]), int(total[1])


def serve_worker(fd: int) -> None:
    """One uvicorn worker on the listening socket inherited as ``fd``."""
    import socket

    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        "decisions:make_app", factory=True, log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])


def start_server(
    store: str, workers: int, port: int, src: str | None = None
) -> list[subprocess.Popen[bytes]]:
    """``workers`` uvicorn processes, each accepting on its own listening socket of ``port``
    (``SO_REUSEPORT``: the kernel spreads the connections over the sockets).

    Not ``uvicorn --workers``: on this Python its workers' sockets keep Nagle's algorithm on
    (asyncio only sets TCP_NODELAY when the listening socket says IPPROTO_TCP), so every
    response written in two parts waits for a delayed ACK, 40 ms. Nor one shared listening
    socket (as gunicorn does): whichever worker is awake accepts, so wrk's 16 connections
    often all landed on one worker and the two-worker echo ceiling jumped between about 8,500
    and 14,000 requests/s from round to round.
    """
    import socket

    env = {**os.environ, "CONSENT_BENCH_STORE": store}
    paths = [str(Path(__file__).parent), env.get("PYTHONPATH", "")]
    if src is not None:  # --before: the package in SRC, found first
        paths.insert(0, src)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    procs: list[subprocess.Popen[bytes]] = []
    for _ in range(workers):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if workers > 1:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(2048)
        listener.set_inheritable(True)
        try:
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--worker-fd", str(listener.fileno())],
                    env=env,
                    pass_fds=(listener.fileno(),),
                )
            )
        finally:
            listener.close()
    return procs


def cpu_seconds(pids: list[int], ended_children: bool = False) -> float:
    """User + system CPU time the processes (all their threads) used so far, and with
    ``ended_children`` that of their children which have ended; 0.0 where /proc is not
    available."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if not Path("/proc/self/stat").exists():
                return 0.0
            continue  # the process ended meanwhile (a database backend)
        ticks = int(fields[11]) + int(fields[12])
        if ended_children:
            ticks += int(fields[13]) + int(fields[14])
        total += ticks / os.sysconf("SC_CLK_TCK")
    return total


class Meter:
    """CPU seconds used so far by the workers, by the database's processes (PostgreSQL: the
    postmaster, its backends, writers and the backends that have ended) and by wrk."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], database: Any = None) -> None:
        self.workers = [proc.pid for proc in procs]
        self.database = database

    @staticmethod
    def machine() -> tuple[float, float]:
        """(idle, all) CPU seconds of the whole machine so far (iowait counts as idle)."""
        try:
            ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except OSError:
            return 0.0, 0.0
        hz = os.sysconf("SC_CLK_TCK")
        return (ticks[3] + ticks[4]) / hz, sum(ticks[:8]) / hz

    def read(self) -> tuple[float, float, float]:
        db = 0.0
        if self.database is not None:
            pids = self.database.processes()
            db = cpu_seconds(pids[:1], ended_children=True) + cpu_seconds(pids[1:])
        own = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk runs are waited for
        return cpu_seconds(self.workers), db, own.ru_utime + own.ru_stime


def run_config(
    name: str,
    store: str,
    workers: int,
    rounds: int,
    seconds: int,
    database: Any = None,
    *,
    src: str | None = None,
    first_round: int = 0,
) -> tuple[list[float], list[float], int, dict[str, list[float]]]:
    """(echo req/s per round, consent req/s per round, consent requests answered, and per
    round: CPU microseconds per request, the workers' (``echo``, ``consent``), the
    database's (``database``) and all of it with wrk's (``echo all``, ``consent all``); and
    the percentage of the machine's CPU time left idle (``echo idle``, ``consent idle``)).
    ``src``: serve the package found there; ``first_round``: which of echo and consent goes
    first in the first round (they alternate)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_LUA.format(body=BODY, port=port))
        procs = start_server(store, workers, port, src)
        meter = Meter(procs, database)
        echo: list[float] = []
        consent: list[float] = []
        cpu: dict[str, list[float]] = {
            key: []
            for key in (
                "echo",
                "consent",
                "echo all",
                "consent all",
                "database",
                "echo idle",
                "consent idle",
            )
        }
        answered = 0
        try:
            wait_for_port(port, procs[0])
            wrk(port, "/echo", 1, script)  # warm-up (both paths, every worker)
            answered += wrk(port, "/_consent", 1, script)[1]
            for r in range(first_round, first_round + rounds):
                order = ("/echo", "/_consent") if r % 2 == 0 else ("/_consent", "/echo")
                for path in order:
                    before, machine_before = meter.read(), meter.machine()
                    rps, total = wrk(port, path, seconds, script)
                    used = [
                        (b - a) / max(total, 1) * 1e6
                        for a, b in zip(before, meter.read(), strict=True)
                    ]
                    idle, whole = (
                        b - a for a, b in zip(machine_before, meter.machine(), strict=True)
                    )
                    kind = "echo" if path == "/echo" else "consent"
                    cpu[kind].append(used[0])
                    cpu[kind + " all"].append(sum(used))
                    cpu[kind + " idle"].append(100 * idle / whole if whole else 0.0)
                    if kind == "echo":
                        echo.append(rps)
                    else:
                        consent.append(rps)
                        cpu["database"].append(used[1])
                        answered += total
        finally:
            for proc in procs:
                stop(proc)
    print(f"  {name}{' (before)' if src else ''}: done", file=sys.stderr)
    return echo, consent, answered, cpu


def cpu_ratios(echo: list[float], decision: list[float]) -> str:
    """min / median / max of echo CPU over decision CPU, round by round."""
    ratios = [e / d for e, d in zip(echo, decision, strict=True) if d > 0]
    return fmt3(ratios, ".2f") if ratios else "-"


def throughput_ratios(consent: list[float], echo: list[float]) -> str:
    """min / median / max of decisions/s over echo req/s, round by round. A round in which
    wrk saw no echo answered (every request still running when its time was up, as on a
    machine busy with other work) has no ratio; "-" when no round has one."""
    ratios = [c / e for c, e in zip(consent, echo, strict=True) if e > 0]
    return fmt3(ratios, ".2f") if ratios else "-"


def check_store(store: str) -> tuple[int, str]:
    from consent.audit import verify_store
    from consent.receipts import ReceiptSigner
    from consent.store import open_store

    signer = ReceiptSigner([SECRET])
    opened = open_store(store, signer)
    result = verify_store(opened, signer)
    return opened.count(), "chain OK" if result.ok else result.message()


# ---------------------------------------------------------------------- PostgreSQL


def start_postgres():  # type: ignore[no-untyped-def]
    """A throwaway cluster like the tests', but durable: fsync and synchronous_commit on."""
    sys.path.insert(0, str(ROOT))
    from tests.pg import PgServer, create_database, find_bindir

    class DurablePg(PgServer):
        def start(self) -> None:
            options = f"-h 127.0.0.1 -p {self.port} -k {self.tmp} -c max_connections=200"
            result = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
            )
            self._check(result, "pg_ctl start")

    bindir = find_bindir()
    if bindir is None:
        return None, None
    server = DurablePg(bindir)
    server.init()
    server.start()
    return server, server.url(create_database(server))


Measured = tuple[list[float], list[float], int, dict[str, list[float]]]


def _measure(
    versions: list[tuple[str, str | None, str]],
    config: str,
    workers: int,
    args: argparse.Namespace,
    database: Any,
) -> dict[str, Measured]:
    """Each version's rounds (what :func:`run_config` returns), the versions taking turns
    round by round (each round a fresh server on the version's own store) when there are
    two, so that both see the same machine."""
    if len(versions) == 1:
        label, src, store = versions[0]
        return {label: run_config(config, store, workers, args.rounds, args.seconds, database)}
    measured: dict[str, Measured] = {label: ([], [], 0, {}) for label, _, _ in versions}
    for r in range(args.rounds):
        turn = versions if r % 2 == 0 else versions[::-1]
        for label, src, store in turn:
            echo, consent, answered, cpu = run_config(
                config, store, workers, 1, args.seconds, database, src=src, first_round=r
            )
            e, c, n, cpus = measured[label]
            for key, values in cpu.items():
                cpus.setdefault(key, []).extend(values)
            measured[label] = (e + echo, c + consent, n + answered, cpus)
    return measured


def _row(
    name: str,
    database: Any,
    echo: list[float],
    consent: list[float],
    answered: int,
    cpu: dict[str, list[float]],
    count: int,
    chain: str,
) -> list[str]:
    return [
        name,
        fmt3(echo, ".0f"),
        fmt3(consent, ".0f"),
        throughput_ratios(consent, echo),
        f"{statistics.median(cpu['echo']):.0f} / {statistics.median(cpu['consent']):.0f}",
        cpu_ratios(cpu["echo"], cpu["consent"]),
        f"{statistics.median(cpu['database']):.0f}" if database is not None else "-",
        f"{statistics.median(cpu['echo all']):.0f} / {statistics.median(cpu['consent all']):.0f}",
        cpu_ratios(cpu["echo all"], cpu["consent all"]),
        f"{statistics.median(cpu['echo idle']):.0f} / {statistics.median(cpu['consent idle']):.0f}",
        f"{count} / {answered} {chain}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument(
        "--only", default="", help="comma-separated: sqlite-1, sqlite-2, postgres-2"
    )
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also measure the package in SRC, round by round with this one (SQLite only)",
    )
    parser.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_fd is not None:
        serve_worker(args.worker_fd)
        return
    if shutil.which("wrk") is None:
        print("decisions: wrk is not installed; nothing measured")
        return
    configs = ["sqlite-1", "sqlite-2", "postgres-2"]
    if args.quick:
        args.rounds, args.seconds = 1, 1
        configs = ["sqlite-1"]
    if args.only:
        configs = [c for c in args.only.split(",") if c]

    print(f"machine: {machine()}; load average before: {load()}")
    print(
        f"wrk -t1 -c16 -d{args.seconds}s POST {BODY} ({args.rounds} rounds per configuration, "
        "echo and consent interleaved)"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            kind, workers = config.rsplit("-", 1)
            server = None
            if kind == "sqlite":
                store = f"sqlite:///{Path(tmp) / (config + '.db')}"
            else:
                server, store = start_postgres()
                if server is None:
                    print(f"  {config}: skipped (no PostgreSQL binaries)")
                    continue
            versions: list[tuple[str, str | None, str]] = [("", None, store)]
            if args.before and kind == "sqlite":
                before_store = f"sqlite:///{Path(tmp) / (config + '-before.db')}"
                versions.insert(0, (" (before)", str(Path(args.before).resolve()), before_store))
            try:
                measured = _measure(versions, config, int(workers), args, server)
                stored = {label: check_store(url) for label, _src, url in versions}
            finally:
                if server is not None:
                    server.destroy()  # (after the store is counted and verified)
            for label, _src, _url in versions:
                name = f"{kind} x{workers} workers{label}"
                rows.append(_row(name, server, *measured[label], *stored[label]))
    print(
        table(
            [
                "store",
                "echo req/s min / median / max",
                "decisions/s min / median / max",
                "decisions / echo",
                "worker CPU µs per echo / decision",
                "echo CPU / decision CPU",
                "database CPU µs per decision",
                "all CPU µs per echo / decision",
                "all: echo / decision",
                "machine idle % echo / decision",
                "receipts stored / answered",
            ],
            rows,
        )
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

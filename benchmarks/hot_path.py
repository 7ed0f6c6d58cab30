"""Per-request cost of ConsentMiddleware on an ordinary page view, against its nearest peer.

    python benchmarks/hot_path.py [--quick] [--rounds N] [--requests N] [--no-server|--no-direct]
    python benchmarks/hot_path.py --profile          # where the middleware's time goes
    python benchmarks/hot_path.py --profile --visitors 20000  # ... with 20,000 taking turns
    python benchmarks/hot_path.py --instructions     # instructions per request (valgrind)
    python benchmarks/hot_path.py --instructions --visitors 20000  # ... 20,000 taking turns
    python benchmarks/hot_path.py --context          # the middleware alone and in a request
    python benchmarks/hot_path.py --bytecodes        # bytecodes per request, per function
    python benchmarks/hot_path.py --visitors 1,1000,5000,20000   # many visitors taking turns
    python benchmarks/hot_path.py --visitors 1,1000 --changing  # ... whose _ga cookie changes
    python benchmarks/hot_path.py --before /tmp/before/src ...  # + that tree's middleware, interleaved

The page: a Starlette route returning a small HTML page (about 1.6 KB, with a gated analytics
script) and setting three cookies: ``sessionid`` (necessary, HttpOnly), ``stats_vid``
(analytics, with an ``Expires`` date) and ``px_uid`` (marketing). The request carries eight
cookies (about 600 bytes) of a returning visitor: a valid consent cookie granting analytics,
a signed Starlette session cookie, and six more declared cookies.

Part 1 calls the application through the ASGI interface directly (prebuilt scope, a receive
that returns an empty body, a send that drops messages), interleaving rounds of

* ``bare``: the Starlette app alone;
* ``session``: + Starlette ``SessionMiddleware``, which verifies its signed cookie on every
  request (the nearest peer: a pure-ASGI middleware doing cookie crypto per request);
* ``consent``: + ``ConsentMiddleware`` (banner injection on, the default);
* ``consent-noinject``: + ``ConsentMiddleware(inject_banner=False)``.

Part 2 runs each variant under uvicorn (one worker) on loopback and measures requests/s with
``wrk -t1 -c16``, one server at a time, rounds interleaved A/B/A/B, and the server process's
CPU time per request (from /proc), which is steadier than requests/s on a shared machine.

``--context`` times the middleware around three applications, interleaved: one that only
replays the page's messages, the same after running the Starlette page with its output dropped,
and the Starlette page itself. What the middleware adds to each shows how much of its cost comes
from running after the application's own work (cold caches) rather than from its own work.

``--cpu-time`` times the direct calls by the process's CPU time rather than the wall clock, for
a machine that other jobs keep busy.

``--before SRC`` loads another tree's ``consent`` package (``SRC`` holds ``consent/``, or
``src/consent/``) under the name ``consent_before`` and adds its middleware as the variants
``consent-before`` (and ``consent-noinject-before``), interleaved with the others in the same
rounds; its visitors carry consent cookies that tree wrote.

Not a test: the numbers depend on the machine. Compare ratios, which are taken within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import (
    POLICY,
    SECRET,
    fmt3,
    free_port,
    load,
    machine,
    spread,
    stop,
    table,
    wait_for_port,
)
from itsdangerous import TimestampSigner
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from consent import ConsentMiddleware
from consent.policy import load_policy
from consent.state import ConsentCookie

PAGE = (
    b"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
    b'<meta name="viewport" content="width=device-width, initial-scale=1">'
    b"<title>Visiting hours - Lindenhof Clinic</title>"
    b'<link rel="stylesheet" href="/static/site.css">'
    b'<script src="/static/site.js" defer></script>'
    b'<script type="text/plain" data-consent="analytics" src="/static/stats.js"></script>'
    b"</head><body><header><nav><a href=/>Home</a> <a href=/visiting>Visiting</a> "
    b"<a href=/departments>Departments</a> <a href=/contact>Contact</a></nav></header>"
    b"<main><h1>Visiting hours</h1>"
    + b"<p>Visitors are welcome every day from 10:00 to 20:00. Please check in at the front "
    b"desk and keep to the quiet hours on the wards. <a href=/visiting#rules>Rules</a>.</p>"
    * 6
    + b"</main><footer><a href=/cookie-policy>Cookie settings</a></footer></body></html>"
)

COOKIE_EXPIRES = datetime(2031, 1, 1, tzinfo=UTC)


async def page_view(request: Request) -> HTMLResponse:
    response = HTMLResponse(PAGE)
    response.set_cookie("sessionid", "k3v9q2m8x7w1", httponly=True, samesite="lax")
    response.set_cookie("stats_vid", "v.8f14e45fceea167a", expires=COOKIE_EXPIRES)
    response.set_cookie("px_uid", "p.c9f0f895fb98ab91", max_age=90 * 86400)
    return response


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/", page_view)])


# What the timings read: wall time, or with --cpu-time this process's CPU time (steadier on a
# machine other jobs keep busy: time spent waiting for a core is not counted).
CLOCK: Callable[[], float] = time.perf_counter

# The tree given with --before: its consent package, loaded as ``consent_before``.
BEFORE: ModuleType | None = None


def load_before(src: str) -> ModuleType:
    """Import the ``consent`` package of another tree under the name ``consent_before`` (its
    modules import each other relatively, so they all load from that tree)."""
    root = Path(src)
    if not (root / "consent").is_dir() and (root / "src" / "consent").is_dir():
        root = root / "src"
    spec = importlib.util.spec_from_file_location(
        "consent_before",
        root / "consent" / "__init__.py",
        submodule_search_locations=[str(root / "consent")],
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"--before {src}: no consent package there")
    module = importlib.util.module_from_spec(spec)
    sys.modules["consent_before"] = module
    spec.loader.exec_module(module)
    for name in ("middleware", "state", "policy"):
        importlib.import_module(f"consent_before.{name}")
    return module


def is_before(variant: str) -> bool:
    return variant.endswith("-before")


def new_decision(visitor: int | None = None, before: bool = False) -> str:
    """A valid consent cookie granting analytics, as the endpoints would have issued it (by
    the --before tree's code with ``before``)."""
    cookie = _cookies.get(before)
    if cookie is None:
        if before:
            assert BEFORE is not None
            policy = BEFORE.policy.load_policy(POLICY)
            cookie = _cookies[before] = BEFORE.state.ConsentCookie([SECRET], policy)
        else:
            cookie = _cookies[before] = ConsentCookie([SECRET], load_policy(POLICY))
    state = cookie.decision(
        {"analytics"}, receipt_id=str(uuid.uuid4()), subject_id=uuid.uuid4().hex
    )
    value: str = cookie.dumps(state)
    return value


_cookies: dict[bool, Any] = {}


def consent_cookie_value() -> str:
    """A valid consent cookie granting analytics, as the endpoints would have issued it."""
    return new_decision()


def session_cookie_value(visitor: int | None = None) -> str:
    """A valid Starlette session cookie (what ``SessionMiddleware`` itself would set); each
    ``visitor`` number has its own."""
    data: dict[str, Any] = {"cart": [3, 7], "lang": "en"}
    if visitor is not None:
        data["visitor"] = visitor
    encoded = base64.b64encode(json.dumps(data).encode())
    return TimestampSigner(SECRET).sign(encoded).decode()


def cookie_header(consent: str | None = None, visitor: int | None = None) -> bytes:
    """The request's eight cookies; ``visitor`` numbers make the ids of one visitor among
    many (with ``consent``, that visitor's own consent cookie; and their own session)."""
    n = "" if visitor is None else f"{visitor:08d}"
    pairs = [
        ("consent", consent or consent_cookie_value()),
        ("session", session_cookie_value(visitor)),
        ("sessionid", "k3v9q2m8x7w1a5b6c7d8e9f0"[: 24 - len(n)] + n),
        ("csrftoken", "Xq3Jd8fK2LmN5pQr7StUv9WxYz0Ab1Cd2Ef3Gh4Ij5Kl6Mn"[: 46 - len(n)] + n),
        ("stats_vid", "v.8f14e45fceea167a5a36dedd4bea2543"[: 34 - len(n)] + n),
        ("stats_ses_1", "s.1732540000.4"),
        ("_ga", "GA1.1.1234567890.1732540000"),
        ("__Host-lb", "node-3"),
    ]
    return "; ".join(f"{k}={v}" for k, v in pairs).encode()


VARIANTS: dict[str, Callable[[ASGIApp], ASGIApp]] = {
    "bare": lambda app: app,
    "session": lambda app: SessionMiddleware(app, secret_key=SECRET),
    "consent": lambda app: ConsentMiddleware(
        app, policy=POLICY, secret_key=SECRET, store="memory://"
    ),
    "consent-noinject": lambda app: ConsentMiddleware(
        app, policy=POLICY, secret_key=SECRET, store="memory://", inject_banner=False
    ),
}


def add_before_variants() -> None:
    assert BEFORE is not None
    middleware = BEFORE.middleware.ConsentMiddleware
    VARIANTS["consent-before"] = lambda app: middleware(
        app, policy=POLICY, secret_key=SECRET, store="memory://"
    )
    VARIANTS["consent-noinject-before"] = lambda app: middleware(
        app, policy=POLICY, secret_key=SECRET, store="memory://", inject_banner=False
    )


def build(variant: str) -> ASGIApp:
    return VARIANTS[variant](bare_app())


_HEADERS: dict[bool, bytes] = {}


def header_for(variant: str) -> bytes:
    """The one visitor's Cookie header, with a consent cookie the variant's code wrote."""
    before = is_before(variant)
    found = _HEADERS.get(before)
    if found is None:
        found = _HEADERS[before] = cookie_header(new_decision(before=before))
    return found


# ---------------------------------------------------------------------- part 1: direct ASGI


def make_scope(cookies: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"lindenhof-clinic.example"),
            (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101"),
            (b"accept", b"text/html,application/xhtml+xml,*/*;q=0.8"),
            (b"accept-language", b"en-GB,en;q=0.7"),
            (b"accept-encoding", b"gzip, deflate, br"),
            (b"cookie", cookies),
        ],
        "client": ("203.0.113.7", 50412),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Recorder:
    """A send that keeps the last response (to check what the variant did)."""

    def __init__(self) -> None:
        self.start: Message | None = None
        self.body = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            self.body = b""
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def _drop(message: Message) -> None:
    return None


async def _batch(app: ASGIApp, scope: dict[str, Any], n: int) -> float:
    """Seconds per request over ``n`` sequential requests."""
    receive, send = _receive, _drop
    started = CLOCK()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (CLOCK() - started) / n


def check(apps: dict[str, ASGIApp], scopes: dict[str, dict[str, Any]]) -> list[str]:
    """Make sure every variant does what it claims before timing it."""
    notes = []
    for name, app in apps.items():
        rec = Recorder()
        asyncio.run(app(dict(scopes[name]), _receive, rec))
        assert rec.start is not None, name
        assert rec.start["status"] == 200, name
        cookies = [v for k, v in rec.start["headers"] if k.lower() == b"set-cookie"]
        names = sorted(v.split(b"=", 1)[0].decode() for v in cookies)
        injected = b"/_consent/banner.js" in rec.body
        if name.startswith("consent"):
            assert names == ["sessionid", "stats_vid"], (name, names)
            inject = "noinject" not in name  # (consent, consent-before)
            assert injected == inject, name
            assert (
                b'<script data-consent="analytics" src="/static/stats.js">' in rec.body
            ) == inject, name
        else:
            assert names == ["px_uid", "sessionid", "stats_vid"], (name, names)
        notes.append(
            f"{name}: Set-Cookie {', '.join(names)}; banner injected: {injected}; "
            f"body {len(rec.body)} bytes"
        )
    return notes


def direct(rounds: int, requests: int, variants: list[str]) -> dict[str, list[float]]:
    """µs/request per variant per round, variants interleaved (order rotated each round)."""
    scopes = {name: make_scope(header_for(name)) for name in variants}
    apps = {name: build(name) for name in variants}
    for note in check(apps, scopes):
        print("  check:", note)
    results: dict[str, list[float]] = {name: [] for name in variants}

    async def run() -> None:
        for name, app in apps.items():  # warm-up: caches, lazy middleware stacks
            await _batch(app, scopes[name], max(50, requests // 10))
        for r in range(rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for name in order:
                results[name].append(await _batch(apps[name], scopes[name], requests) * 1e6)

    asyncio.run(run())
    return results


def report_direct(results: dict[str, list[float]]) -> None:
    bare = results["bare"]
    rows = []
    for name, values in results.items():
        ratio = [v / b for v, b in zip(values, bare, strict=True)]
        added = [v - b for v, b in zip(values, bare, strict=True)]
        rows.append(
            [name, fmt3(values), fmt3(ratio, ".3f"), "-" if name == "bare" else fmt3(added)]
        )
    print(
        table(
            ["variant", "µs/request min / median / max", "x bare (per round)", "added µs"],
            rows,
        )
    )
    if "session" in results:
        session_added = [s - b for s, b in zip(results["session"], bare, strict=True)]
        for name in results:
            if not name.startswith("consent"):
                continue
            share = [
                (c - b) / s
                for c, b, s in zip(results[name], bare, session_added, strict=True)
                if s > 0
            ]
            if share:
                lo, mid, hi = spread(share)
                print(
                    f"  {name}: added cost / SessionMiddleware's added cost = "
                    f"{lo:.2f} / {mid:.2f} / {hi:.2f} (target <= 0.50)"
                )


# ---------------------------------------------------------------------- part 2: uvicorn + wrk


def before_args() -> list[str]:
    """The --before argument again, for the processes this script starts."""
    return [] if BEFORE is None else ["--before", BEFORE_SRC]


BEFORE_SRC = ""


def serve(variant: str, port: int, http: str, loop: str) -> None:
    import uvicorn

    uvicorn.run(
        build(variant),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http=http,  # type: ignore[arg-type]
        loop=loop,  # type: ignore[arg-type]
        lifespan="off",
    )


_RPS = re.compile(rb"Requests/sec:\s*([0-9.]+)")


_TOTAL = re.compile(rb"([0-9]+) requests in")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, seconds: int, cookies: bytes) -> tuple[float, int]:
    """(requests/s, requests completed)."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c16",
            f"-d{seconds}s",
            "-H",
            "Cookie: " + cookies.decode(),
            "-H",
            "Accept: text/html",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    if b"Non-2xx" in out or b"Socket errors" in out:
        raise RuntimeError("wrk saw errors:\n" + out.decode())
    found, total = _RPS.search(out), _TOTAL.search(out)
    if found is None or total is None:
        raise RuntimeError("cannot read wrk output:\n" + out.decode())
    return float(found[1]), int(total[1])


def server_rounds(
    rounds: int, seconds: int, variants: list[str], http: str, loop: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(requests/s, server CPU µs per request), per variant per round."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for name in order:
            port = free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    name,
                    "--port",
                    str(port),
                    "--http",
                    http,
                    "--loop",
                    loop,
                    *before_args(),
                ]
            )
            cookies = header_for(name)
            try:
                wait_for_port(port, proc)
                wrk(port, 1, cookies)  # warm-up, discarded
                used = cpu_seconds(proc.pid)
                rate, total = wrk(port, seconds, cookies)
                used = cpu_seconds(proc.pid) - used
                results[name].append(rate)
                cpu[name].append(used / total * 1e6)
            finally:
                stop(proc)
    return results, cpu


def report_server(results: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    bare, bare_cpu = results["bare"], cpu["bare"]
    rows = []
    for name, values in results.items():
        ratio = [v / b for v, b in zip(values, bare, strict=True)]
        used = cpu[name]
        cpu_ratio = [c / b for c, b in zip(used, bare_cpu, strict=True)]
        rows.append(
            [
                name,
                fmt3(values, ".0f"),
                fmt3(ratio, ".3f"),
                fmt3(used, ".0f"),
                fmt3(cpu_ratio, ".2f"),
            ]
        )
    print(
        table(
            [
                "variant",
                "requests/s min / median / max",
                "x bare (per round)",
                "server CPU µs/request",
                "CPU x bare",
            ],
            rows,
        )
    )


# ---------------------------------------------------------------------- profile


def profile(requests: int, visitors: int = 0) -> None:
    """Where the middleware's time goes: one visitor again and again, or with ``visitors``
    each request from the next of that many visitors (after each was seen once)."""
    scope = make_scope(cookie_header())
    app = build("consent")
    headers = visitor_headers(visitors) if visitors else [scope["headers"][-1][1]]

    async def batch(n: int) -> None:
        scopes = []
        for i in range(n):
            fresh = dict(scope)
            cookie = bytes(bytearray(headers[i % len(headers)]))
            fresh["headers"] = [*scope["headers"][:-1], (b"cookie", cookie)]
            scopes.append(fresh)
        for fresh in scopes:
            await app(fresh, _receive, _drop)

    async def run() -> None:
        await batch(max(200, visitors))
        await batch(requests)

    if importlib.util.find_spec("pyinstrument") is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        with profiler:
            asyncio.run(run())
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        import cProfile
        import pstats

        with cProfile.Profile() as prof:
            asyncio.run(run())
        stats = pstats.Stats(prof)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(30)


# ------------------------------------------------------------ part 3: instruction counts


def _count_run(variant: str, requests: int, visitors: int = 0) -> None:
    """Body of one counted process: 50 warm-up requests, then ``requests`` more; with
    ``visitors``, each of them seen once first, then ``requests`` more taking turns."""
    app = build(variant)
    if not visitors:
        scope = make_scope(header_for(variant))

        async def run() -> None:
            await _batch(app, scope, 50)
            if requests:
                await _batch(app, scope, requests)

        asyncio.run(run())
        return
    headers = visitor_headers(visitors, is_before(variant))
    base = make_scope(headers[0])

    async def turns(start: int, n: int) -> None:
        for i in range(start, start + n):
            scope = dict(base)
            cookie = bytes(bytearray(headers[i % visitors]))
            scope["headers"] = [*base["headers"][:-1], (b"cookie", cookie)]
            await app(scope, _receive, _drop)

    async def visits() -> None:
        await turns(0, visitors)
        await turns(visitors, requests)

    asyncio.run(visits())


def _instructions(variant: str, requests: int, visitors: int = 0) -> int:
    """Instructions executed by a process serving ``requests`` requests (callgrind)."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--count-run",
        variant,
        "--requests",
        str(requests),
        "--count-visitors",
        str(visitors),
        *before_args(),
    ]
    # A fixed hash seed: with a random one the count moves by about 1,000 per request from
    # one process to the next (dict and set layouts differ).
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def instructions(requests: int, visitors: int = 0) -> None:
    """Instructions per request of each variant: a steady measure on a noisy machine.

    Each variant runs twice under ``valgrind --tool=callgrind``, with 0 and with ``requests``
    requests after the same start-up; the difference divided by ``requests`` is the cost of one
    request. Instructions are not time (memory stalls and branch misses are not counted), so
    this complements the timings rather than replacing them. With ``visitors``, the start-up
    includes one request from each of that many visitors, and the requests counted take turns
    among them.
    """
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None:
        print("## Instructions per request: skipped (valgrind not installed)")
        return
    who = f", {visitors:,} visitors taking turns" if visitors else ""
    print(
        f"## Instructions per request (callgrind, {requests} requests after the same start-up{who})"
    )
    variants = [v for v in VARIANTS if not (visitors and "noinject" in v)]
    jobs = [(v, n) for v in variants for n in (0, requests)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(
            zip(jobs, pool.map(lambda job: _instructions(*job, visitors), jobs), strict=True)
        )
    per = {v: (counts[(v, requests)] - counts[(v, 0)]) / requests for v in variants}
    bare, session = per["bare"], per["session"] - per["bare"]
    rows = [
        (
            v,
            f"{per[v]:,.0f}",
            f"{per[v] / bare:.3f}",
            "-" if v == "bare" else f"{per[v] - bare:,.0f}",
            "-" if v in ("bare", "session") else f"{(per[v] - bare) / session:.2f}",
        )
        for v in variants
    ]
    print(
        table(
            ["variant", "instructions/request", "x bare", "added", "added / session's added"],
            rows,
        )
    )


# ------------------------------------------------------------ part 6: many visitors


def visitor_headers(count: int, before: bool = False) -> list[bytes]:
    """The Cookie headers of ``count`` returning visitors: each has its own consent cookie
    (granting analytics, like the single visitor's; written by the --before tree's code with
    ``before``), its own signed session cookie and its own ids."""
    return [cookie_header(new_decision(i, before), i) for i in range(count)]


_GA = b"GA1.1.1234567890.1732540000"


def many_visitors(counts: list[int], rounds: int, requests: int, changing: bool = False) -> None:
    """µs/request when ``count`` visitors take turns, for each count, variants interleaved.

    The single-visitor benchmark sends one Cookie header again and again, so every lookup the
    middleware caches hits. Here each request comes from the next of ``count`` visitors, as
    fresh bytes (a server builds new header bytes for every request), each with its own
    signed session cookie for ``SessionMiddleware`` and its own consent cookie. Beyond what
    the middleware keeps (the Cookie headers it parsed, the consent cookies it verified), a
    returning visitor's header is parsed again and the cookie verified again. With
    ``changing``, each visitor's ``_ga`` cookie counts its page views, as client-side
    analytics cookies do, so no header is ever sent twice.
    """
    names = ["bare", "session", "consent"] + (["consent-before"] if BEFORE is not None else [])
    headers = {False: visitor_headers(max(counts))}
    if BEFORE is not None:
        headers[True] = visitor_headers(max(counts), before=True)
    apps = {name: build(name) for name in names}
    for name in names:
        if not name.startswith("consent"):
            continue
        rec = Recorder()
        asyncio.run(apps[name](make_scope(headers[is_before(name)][0]), _receive, rec))
        assert rec.start is not None
        sent = sorted(v.split(b"=", 1)[0] for k, v in rec.start["headers"] if k == b"set-cookie")
        assert sent == [b"sessionid", b"stats_vid"], (name, sent)  # the visitor's consent read
    base = make_scope(headers[False][0])
    position: dict[tuple[str, int], int] = {}
    results: dict[tuple[str, int], list[float]] = {(v, n): [] for v in names for n in counts}

    async def batch(name: str, visitors: int, n: int) -> float:
        start = position.get((name, visitors), 0)
        position[name, visitors] = start + n
        own = headers[is_before(name)]
        scopes = []
        for i in range(start, start + n):
            scope = dict(base)
            fresh = bytes(bytearray(own[i % visitors]))
            if changing:
                fresh = fresh.replace(_GA, b"GA1.1.1234567890.%010d" % i)
            scope["headers"] = [*base["headers"][:-1], (b"cookie", fresh)]
            scopes.append(scope)
        app = apps[name]
        started = CLOCK()
        for scope in scopes:
            await app(scope, _receive, _drop)
        return (CLOCK() - started) / n * 1e6

    async def run() -> None:
        for name in names:  # every visitor seen once: the caches hold what they can
            for visitors in counts:
                await batch(name, visitors, max(visitors, requests))
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for visitors in counts:
                for name in order:
                    results[name, visitors].append(await batch(name, visitors, requests))

    asyncio.run(run())
    consents = [n for n in names if n.startswith("consent")]
    rows = []
    for visitors in counts:
        bare = results["bare", visitors]
        added = {
            v: [x - b for x, b in zip(results[v, visitors], bare, strict=True)]
            for v in names
            if v != "bare"
        }
        row = [f"{visitors:,}", fmt3(bare), fmt3(added["session"])]
        for v in consents:
            ratio = [c / s for c, s in zip(added[v], added["session"], strict=True)]
            row += [fmt3(added[v]), fmt3(ratio, ".2f")]
        rows.append(row)
    heads = ["visitors taking turns", "bare µs", "session added µs"]
    for v in consents:
        heads += [f"{v} added µs", f"{v} added / session's"]
    print(table(heads, rows))


# ------------------------------------------------------------ part 5: bytecodes


def bytecodes() -> None:
    """Bytecodes executed in one request, per function, with ``sys.settrace`` opcode events.

    A count of work that does not depend on the machine, finer than instructions: which of the
    middleware's functions execute how much Python, against the whole request's. Taken after
    200 warm-up requests (caches filled, the consent cookie verified).
    """
    import collections

    def count(variant: str) -> collections.Counter[tuple[str, str]]:
        app = build(variant)
        scope = make_scope(cookie_header())
        counts: collections.Counter[tuple[str, str]] = collections.Counter()

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            code = frame.f_code
            where = code.co_filename
            where = where.rsplit("/site-packages/", 1)[-1].rsplit("/src/", 1)[-1]
            key = (where, code.co_qualname)

            def local(frame: Any, event: str, arg: Any) -> Any:
                if event == "opcode":
                    counts[key] += 1
                return local

            return local

        async def one(traced: bool) -> None:
            request = dict(scope, headers=list(scope["headers"]))
            if traced:
                sys.settrace(tracer)
            try:
                await app(request, _receive, _drop)
            finally:
                sys.settrace(None)

        loop = asyncio.new_event_loop()
        try:
            for _ in range(200):
                loop.run_until_complete(one(False))
            loop.run_until_complete(one(True))
        finally:
            loop.close()
        return counts

    print("## Bytecodes executed in one request (after 200 warm-up requests)")
    totals = {}
    for variant in VARIANTS:
        counts = count(variant)
        own = sum(n for (where, _), n in counts.items() if where.startswith("consent/"))
        totals[variant] = (sum(counts.values()), own)
        if variant == "consent":
            functions = sorted(
                ((n, f"{where}:{name}") for (where, name), n in counts.items()),
                reverse=True,
            )
            consent_functions = [(n, f) for n, f in functions if f.startswith("consent/")]
    bare = totals["bare"][0]
    print(
        table(
            ["variant", "bytecodes/request", "x bare", "in consent/"],
            [
                (v, f"{total:,}", f"{total / bare:.3f}", f"{own:,}")
                for v, (total, own) in totals.items()
            ],
        )
    )
    print()
    print(table(["bytecodes", "function (consent, injection on)"], consent_functions))


# ------------------------------------------------------------ part 4: in context


class PassThrough:
    """A pure-ASGI middleware that only wraps ``send``: the cost of one more layer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def wrapped(message: Message) -> None:
            await send(message)

        await self.app(scope, receive, wrapped)


def context_apps() -> dict[str, dict[str, ASGIApp]]:
    """Per base application, the base alone and wrapped: ``replay`` sends the messages the
    Starlette page sends (recorded once; fresh dicts, the same bytes) and does nothing else;
    ``replay + other work`` first runs the Starlette page with its output dropped (the same
    work as ``starlette``, outside the middleware's reach); ``starlette`` is part 1's page."""
    scope = make_scope(cookie_header())
    rec = Recorder()
    asyncio.run(bare_app()(dict(scope), _receive, rec))
    assert rec.start is not None
    headers, body = rec.start["headers"], rec.body
    other = bare_app()
    other_scope = make_scope(cookie_header())

    async def replay(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    async def busy_replay(scope: Any, receive: Any, send: Any) -> None:
        await other(dict(other_scope), _receive, _drop)
        await replay(scope, receive, send)

    bases: dict[str, Callable[[], ASGIApp]] = {
        "replay": lambda: replay,
        "replay + other work": lambda: busy_replay,
        "starlette": bare_app,
    }
    return {
        name: {
            "alone": base(),
            "+ pass-through": PassThrough(base()),
            "+ consent": VARIANTS["consent"](base()),
            "+ consent-noinject": VARIANTS["consent-noinject"](base()),
        }
        for name, base in bases.items()
    }


def in_context(rounds: int, requests: int) -> None:
    """The middleware's added cost alone with a trivial app and inside a real request."""
    scope = make_scope(cookie_header())
    apps = context_apps()
    results: dict[tuple[str, str], list[float]] = {
        (b, w): [] for b, wraps in apps.items() for w in wraps
    }

    async def run() -> None:
        for wraps in apps.values():
            for app in wraps.values():
                await _batch(app, scope, max(50, requests // 10))
        for _ in range(rounds):
            for (b, w), values in results.items():
                values.append(await _batch(apps[b][w], scope, requests) * 1e6)

    asyncio.run(run())
    rows = []
    for (b, w), values in results.items():
        alone = results[b, "alone"]
        added = [v - a for v, a in zip(values, alone, strict=True)]
        rows.append([b, w, fmt3(values), "-" if w == "alone" else fmt3(added)])
    print(table(["application", "variant", "µs/request min / median / max", "added µs"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--server-rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per round")
    parser.add_argument("--no-server", action="store_true", help="skip the uvicorn + wrk part")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct ASGI part")
    parser.add_argument(
        "--server-variants",
        default="bare,session,consent,consent-noinject",
        help="comma-separated variants for the uvicorn + wrk part",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per request under callgrind (steady on a noisy machine; ~2 min)",
    )
    parser.add_argument(
        "--context",
        action="store_true",
        help="the middleware's added cost with a trivial app and inside a real request",
    )
    parser.add_argument(
        "--visitors",
        help="comma-separated counts of visitors taking turns (e.g. 1,1000,5000,20000)",
    )
    parser.add_argument(
        "--changing",
        action="store_true",
        help="with --visitors: each visitor's _ga cookie changes on every request",
    )
    parser.add_argument(
        "--bytecodes",
        action="store_true",
        help="bytecodes executed per request, per function of the middleware",
    )
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="another tree's source (holding consent/ or src/consent/): its middleware is "
        "measured too, as consent-before, interleaved",
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the direct calls by this process's CPU time instead of wall time",
    )
    parser.add_argument("--count-run", help=argparse.SUPPRESS)
    parser.add_argument("--count-visitors", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8000, help=argparse.SUPPRESS)
    parser.add_argument("--http", default="auto", help="uvicorn --http (auto, h11, httptools)")
    parser.add_argument("--loop", default="auto", help="uvicorn --loop (auto, asyncio, uvloop)")
    args = parser.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if args.before:
        global BEFORE, BEFORE_SRC
        BEFORE, BEFORE_SRC = load_before(args.before), args.before
        add_before_variants()

    if args.serve:
        serve(args.serve, args.port, args.http, args.loop)
        return
    if args.count_run:
        _count_run(args.count_run, args.requests, args.count_visitors)
        return
    if args.profile:
        profile(args.requests * 5, int(args.visitors or 0))
        return
    if args.bytecodes:
        bytecodes()
        return
    if args.instructions:
        print(f"machine: {machine()}; load average before: {load()}")
        instructions(100 if args.quick else 1000, int(args.visitors or 0))
        return
    if args.quick:
        args.rounds, args.requests, args.server_rounds, args.seconds = 3, 300, 1, 1
    if args.visitors:
        counts = [int(c) for c in args.visitors.split(",")]
        print(f"machine: {machine()}; load average before: {load()}")
        kind = ", each _ga cookie changing on every request" if args.changing else ""
        clock = "CPU time" if args.cpu_time else "wall time"
        print(
            f"## Many visitors{kind} ({args.rounds} rounds x {args.requests} requests, "
            f"interleaved; {clock})"
        )
        many_visitors(counts, args.rounds, args.requests, args.changing)
        print(f"load average after: {load()}")
        return
    if args.context:
        print(f"machine: {machine()}; load average before: {load()}")
        in_context(args.rounds, args.requests)
        print(f"load average after: {load()}")
        return

    print(f"machine: {machine()}; load average before: {load()}")
    print(f"request: {len(cookie_header())}-byte Cookie header (8 cookies), page {len(PAGE)} bytes")
    print()
    if not args.no_direct:
        print(
            f"## Direct ASGI calls ({args.rounds} rounds x {args.requests} requests, interleaved)"
        )
        results = direct(args.rounds, args.requests, list(VARIANTS))
        report_direct(results)
        print(f"load average: {load()}")

    if args.no_server:
        return
    print()
    if shutil.which("wrk") is None:
        print("## uvicorn + wrk: skipped (wrk not installed)")
        return
    http = args.http
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = args.loop
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    variants = ["bare", "consent"] if args.quick else args.server_variants.split(",")
    print(
        f"## uvicorn (1 worker, --http {http}, --loop {loop}) + wrk -t1 -c16 -d{args.seconds}s "
        f"({args.server_rounds} rounds, interleaved)"
    )
    report_server(*server_rounds(args.server_rounds, args.seconds, variants, http, loop))
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

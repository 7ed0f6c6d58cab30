"""Helpers shared by the benchmark scripts (not part of the library).

Numbers from a shared, noisy machine mean little on their own, so every script interleaves the
variants it compares, round after round, and reports min / median / max over the rounds, and
ratios computed *within* each round.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consent.receipts import Receipt

ROOT = Path(__file__).resolve().parent.parent
# CONSENT_BENCH_POLICY: another policy directory (to run these scripts against an older version
# of the library, whose policy loader may not know newer keys of the example policy).
POLICY = Path(os.environ.get("CONSENT_BENCH_POLICY") or ROOT / "examples" / "policy")
SECRET = "benchmark-secret-key-0123456789abcdef"
_COLUMNS = "seq, receipt_id, subject_id, ts, event, body, kid, signature, prev_hash, hash"

#: What :func:`generate_store` writes as row ``seq``: a template receipt and its canonical
#: JSON, and the row's subject id (32 hex digits), timestamp and event.
Row = tuple["Receipt", str, str, int, str]


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """``(min, median, max)``."""
    return min(values), statistics.median(values), max(values)


def fmt3(values: Sequence[float], spec: str = ".1f") -> str:
    lo, mid, hi = spread(values)
    return f"{lo:{spec}} / {mid:{spec}} / {hi:{spec}}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into the docs)."""
    body = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body
    ]
    return "\n".join(lines)


def machine() -> str:
    """One line describing where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def load() -> str:
    """The 1/5/15-minute load averages (the machine is shared: say how busy it was)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20
) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server we started (by its own process handle) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def python() -> str:
    return sys.executable


def generate_store(
    path: Path, count: int, row: Callable[[int], Row], *, analyze: bool = False
) -> float:
    """Write ``count`` sealed receipts straight into a new SQLite store; returns seconds.

    The store creates its own tables (and the statistics triggers, which fill
    ``consent_stats`` as the rows go in). Row ``seq`` is ``row(seq)``'s template body with its
    own receipt id, subject id, timestamp and event substituted (fixed-width fields, so the body
    stays canonical), then signed and chained exactly as ``consent.store.chain.seal`` does (with
    keyed links, or, with a version that predates them, the unkeyed ones it writes); the signed
    chain head comes last. ``analyze``: run ``ANALYZE`` at the end.
    """
    import asyncio
    import sqlite3
    import uuid

    from consent.receipts import GENESIS_HASH, ChainHead, ReceiptSigner, chain_hash
    from consent.store.sqlite import SQLiteStore

    try:
        from consent.store.chain import link_hash
    except ImportError:  # a version before keyed links: rows are linked with chain_hash
        link_hash = None  # type: ignore[assignment]

    signer = ReceiptSigner([SECRET])
    store = SQLiteStore(f"sqlite:///{path}", signer)
    asyncio.run(store.open())
    asyncio.run(store.close())
    insert = f"INSERT INTO consent_receipts ({_COLUMNS}) VALUES ({','.join('?' * 10)})"
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    prev = GENESIS_HASH
    batch = []
    for seq in range(1, count + 1):
        base, body_t, sid, ts, event = row(seq)
        rid = str(uuid.UUID(int=seq, version=4))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
        body = (
            body_t.replace(base.receipt_id, rid)
            .replace(base.subject_id, sid)
            .replace(f'"timestamp":{base.timestamp}', f'"timestamp":{ts}')
            .replace(base.time, stamp)
        )
        if event != base.event:
            body = body.replace(f'"event":"{base.event}"', f'"event":"{event}"')
        kid, signature = signer.sign(body)
        if link_hash is None:
            digest = chain_hash(prev, body, kid, signature)
        else:
            digest = link_hash(signer, seq, prev, kid, signature)
        batch.append((seq, rid, sid, ts, event, body, kid, signature, prev, digest))
        prev = digest
        if len(batch) == 10_000:
            conn.executemany(insert, batch)
            batch.clear()
    if batch:
        conn.executemany(insert, batch)
    head = ChainHead.make(count, prev, signer)
    conn.execute(
        "INSERT INTO consent_chain (id, head_seq, head_hash, head_kid, head_signature)"
        " VALUES (1, ?, ?, ?, ?)",
        (head.seq, head.hash, head.kid, head.signature),
    )
    conn.execute("COMMIT")
    if analyze:
        conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started

"""Export and verification speed of the receipt log, and their peak memory, by log size.

    python benchmarks/audit.py [--quick] [--sizes 100000,1000000] [--keep DIR]

For each size a SQLite receipt log is generated with the store's own schema and sealing code
(each receipt a distinct, realistic receipt: canonical body, HMAC signature, chain hash, and
the signed chain head at the end), then, each in a fresh subprocess:

* ``export``: ``consent.audit.export`` to a JSON Lines file (what ``consent export`` does);
* ``verify store``: ``consent.audit.verify_store`` (what ``consent verify --store`` does);
* ``verify file``: ``consent.audit.verify_file`` on that export (``consent verify --file``).

Reports rows/s and the subprocess's peak RSS (``resource.getrusage``), which must not grow
with the log: everything streams. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import SECRET, load, machine, table

from consent.receipts import (
    GENESIS_HASH,
    ChainHead,
    Controller,
    Purpose,
    Receipt,
    ReceiptSigner,
    canonical_json,
    chain_hash,
)
from consent.store.sqlite import SQLiteStore

_COLUMNS = "seq, receipt_id, subject_id, ts, event, body, kid, signature, prev_hash, hash"
_T0 = 1_790_000_000


def template() -> Receipt:
    return Receipt(
        receipt_id="00000000-0000-4000-8000-000000000000",
        subject_id="0" * 32,
        timestamp=_T0,
        event="given",
        granted=["analytics"],
        refused=["embedded", "marketing", "preferences"],
        revision="9f2c" * 16,
        policy_url="https://lindenhof-clinic.example/cookie-policy",
        method="banner",
        jurisdiction="EU",
        language="en",
        controller=Controller(
            name="Lindenhof Clinic gGmbH",
            email="privacy@lindenhof-clinic.example",
            address="Lindenallee 12, 10115 Berlin, Germany",
            url="https://lindenhof-clinic.example",
            phone="+49 30 1234567",
        ),
        purposes=[
            Purpose(key="necessary", title="Strictly necessary", necessary=True, granted=True),
            Purpose(key="analytics", title="Analytics", granted=True),
            Purpose(key="marketing", title="Marketing", third_parties=["AdPixel Networks"]),
            Purpose(key="preferences", title="Preferences"),
            Purpose(key="embedded", title="Embedded videos", third_parties=["Google (YouTube)"]),
        ],
        page="/visiting-hours",
        ip="203.0.113.0",
    )


def generate(path: Path, count: int) -> float:
    """Write ``count`` sealed receipts straight into a new SQLite store; returns seconds.

    The canonical body of the template is rendered once; each receipt substitutes its own
    receipt id, subject id and timestamp (fixed-width fields, so the body stays canonical),
    then is signed and chained exactly as ``StoredReceipt.seal`` does.
    """
    import asyncio

    signer = ReceiptSigner([SECRET])
    store = SQLiteStore(f"sqlite:///{path}", signer)
    asyncio.run(store.open())
    asyncio.run(store.close())
    base = template()
    body_t = canonical_json(base)
    assert body_t.count(base.receipt_id) == 1
    assert body_t.count(base.subject_id) == 1
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    prev = GENESIS_HASH
    batch = []
    t_old = str(_T0)
    time_old = base.time
    for seq in range(1, count + 1):
        rid = str(uuid.UUID(int=seq, version=4))
        sid = f"{seq:032x}"
        ts = _T0 + seq
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
        body = (
            body_t.replace(base.receipt_id, rid)
            .replace(base.subject_id, sid)
            .replace(f'"timestamp":{t_old}', f'"timestamp":{ts}')
            .replace(time_old, stamp)
        )
        kid, signature = signer.sign(body)
        digest = chain_hash(prev, body, kid, signature)
        batch.append((seq, rid, sid, ts, "given", body, kid, signature, prev, digest))
        prev = digest
        if len(batch) == 10_000:
            conn.executemany(
                f"INSERT INTO consent_receipts ({_COLUMNS}) VALUES ({','.join('?' * 10)})", batch
            )
            batch.clear()
    if batch:
        conn.executemany(
            f"INSERT INTO consent_receipts ({_COLUMNS}) VALUES ({','.join('?' * 10)})", batch
        )
    head = ChainHead.make(count, prev, signer)
    conn.execute(
        "INSERT INTO consent_chain (id, head_seq, head_hash, head_kid, head_signature)"
        " VALUES (1, ?, ?, ?, ?)",
        (head.seq, head.hash, head.kid, head.signature),
    )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


# ---------------------------------------------------------------------- measured subprocess


def child(task: str, db: Path, export_path: Path) -> None:
    from consent.audit import export, verify_file, verify_store
    from consent.store import open_store

    signer = ReceiptSigner([SECRET])
    store = open_store(f"sqlite:///{db}", signer)
    started, cpu = time.perf_counter(), time.process_time()
    if task == "export":
        # With the key, as `consent export` passes it when CONSENT_SECRET_KEY is set (older
        # versions of export() took no key).
        keyed = "signer" in inspect.signature(export).parameters
        with open(export_path, "w", encoding="utf-8", newline="") as out:
            rows = export(store, out, signer=signer) if keyed else export(store, out)
        ok = True
    elif task == "verify-store":
        result = verify_store(store, signer)
        rows, ok = result.count, result.ok
    else:
        result = verify_file(export_path, signer)
        rows, ok = result.count, result.ok
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu, "peak_kib": peak_kib, "ok": ok})
    )


def measure(task: str, db: Path, export_path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", task, str(db), str(export_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def baseline_rss() -> int:
    """Peak RSS of a subprocess that only imports what the measured ones import."""
    code = (
        "import resource, consent.audit, consent.store.sqlite;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    return int(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--keep", help="directory for the generated logs (default: a temp dir)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, db, export_path = args.child
        child(task, Path(db), Path(export_path))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [2000, 20000]

    print(f"machine: {machine()}; load average before: {load()}")
    print(f"imports alone: peak RSS {baseline_rss() / 1024:.0f} MiB")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        for size in sizes:
            db = Path(tmp) / f"log-{size}.db"
            export_path = Path(tmp) / f"log-{size}.jsonl"
            made = generate(db, size)
            rows.append([f"{size:,}", "generate", f"{size / made:,.0f}", "-", "-", "-"])
            for task in ("export", "verify-store", "verify-file"):
                result = measure(task, db, export_path)
                assert result["rows"] == size, (task, result)
                assert result["ok"], (task, result)
                rows.append(
                    [
                        f"{size:,}",
                        task,
                        f"{size / result['seconds']:,.0f}",
                        f"{size / result['cpu']:,.0f}",
                        f"{result['seconds']:.1f}",
                        f"{result['peak_kib'] / 1024:.0f}",
                    ]
                )
            db.unlink()
            export_path.unlink()
    print(table(["receipts", "task", "rows/s", "rows/CPU-s", "seconds", "peak RSS MiB"], rows))
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

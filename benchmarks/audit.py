"""Export and verification speed of the receipt log, and their peak memory, by log size.

    python benchmarks/audit.py [--quick] [--sizes 100000,1000000] [--keep DIR]
                               [--rounds N] [--before SRC] [--workers N] [--tasks T,...]

For each size a SQLite receipt log is generated with the store's own schema and sealing code
(each receipt a distinct, realistic receipt: canonical body, HMAC signature, chain hash, and
the signed chain head at the end), then, each in a fresh subprocess:

* ``export``: ``consent.audit.export`` to a JSON Lines file (what ``consent export -o`` does);
* ``verify store``: ``consent.audit.verify_store`` (what ``consent verify --store`` does);
* ``verify file``: ``consent.audit.verify_file`` on that export (``consent verify --file``).

Reports rows/s (min / median / max over ``--rounds``), rows per CPU second (the measured
process and its helper process, if any, together) and the peak RSS of the measured process
and of its helper (``resource.getrusage``), which must not grow with the log: everything
streams. ``--before SRC`` runs the same tasks with the package found in SRC (an older
``src/`` directory) too, interleaved round by round with this one, on the log this version
generated: only for versions that link rows the same way (to compare with a version from before
keyed links, run the whole script with each version's ``PYTHONPATH`` in turn). Not a test: the
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SECRET, Row, fmt3, generate_store, load, machine, table

from consent.receipts import Controller, Purpose, Receipt, ReceiptSigner, canonical_json

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
    """Write ``count`` receipts, each its own visitor's first decision, into a new SQLite
    store; returns seconds."""
    base = template()
    body_t = canonical_json(base)
    assert body_t.count(base.receipt_id) == 1
    assert body_t.count(base.subject_id) == 1

    def row(seq: int) -> Row:
        return base, body_t, f"{seq:032x}", _T0 + seq, "given"

    return generate_store(path, count, row)


# ---------------------------------------------------------------------- measured subprocess


def child(task: str, db: Path, export_path: Path, workers: int | None) -> None:
    from consent.audit import export, verify_file, verify_store
    from consent.store import open_store

    signer = ReceiptSigner([SECRET])
    store = open_store(f"sqlite:///{db}", signer)
    options = {} if workers is None else {"workers": workers}
    started, cpu = time.perf_counter(), time.process_time()
    if task == "export":
        # With the key, as `consent export` passes it when CONSENT_SECRET_KEY is set (older
        # versions of export() took no key, nor workers).
        params = inspect.signature(export).parameters
        if "signer" in params:
            options["signer"] = signer
        if "workers" not in params:
            options.pop("workers", None)
        with open(export_path, "w", encoding="utf-8", newline="") as out:
            rows = export(store, out, **options)  # type: ignore[arg-type]
        ok = True
    elif task == "verify-store":
        if "workers" not in inspect.signature(verify_store).parameters:
            options.pop("workers", None)
        result = verify_store(store, signer, **options)  # type: ignore[arg-type]
        rows, ok = result.count, result.ok
    else:
        result = verify_file(export_path, signer)
        rows, ok = result.count, result.ok
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    helper = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "cpu": cpu + helper.ru_utime + helper.ru_stime,
                "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "helper_peak_kib": helper.ru_maxrss,
                "ok": ok,
            }
        )
    )


def measure(
    task: str, db: Path, export_path: Path, src: str | None, workers: int | None
) -> dict[str, float]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--child", task, str(db), str(export_path)]
    if workers is not None:
        command += ["--workers", str(workers)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
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
    parser.add_argument(
        "--keep", help="directory for the generated logs, kept and reused (default: a temp dir)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each task")
    parser.add_argument("--before", metavar="SRC", help="also measure the package in SRC")
    parser.add_argument("--workers", type=int, help="processes for export/verify (default: auto)")
    parser.add_argument(
        "--tasks",
        default="export,verify-store,verify-file",
        help="which to measure (verify-file reads the file export writes)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, db, export_path = args.child
        child(task, Path(db), Path(export_path), args.workers)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [2000, 20000]
    versions: list[tuple[str, str | None]] = [("after", None)]
    if args.before:
        versions.insert(0, ("before", str(Path(args.before).resolve())))

    print(f"machine: {machine()}; load average before: {load()}")
    print(f"imports alone: peak RSS {baseline_rss() / 1024:.0f} MiB")
    tasks = tuple(args.tasks.split(","))
    if "verify-file" in tasks and "export" not in tasks:
        parser.error("verify-file needs export (it reads the exported file)")
    rows = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = args.keep
            Path(tmp).mkdir(parents=True, exist_ok=True)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
        for size in sizes:
            db = Path(tmp) / f"log-{size}.db"
            export_path = Path(tmp) / f"log-{size}.jsonl"
            if not db.exists():
                made = generate(db, size)
                rows.append(
                    [f"{size:,}", "generate", "", f"{size / made:,.0f}", "-", "-", "-", "-"]
                )
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for _ in range(args.rounds):
                for name, src in versions:
                    for task in tasks:
                        result = measure(task, db, export_path, src, args.workers)
                        assert result["rows"] == size, (task, result)
                        assert result["ok"], (task, result)
                        results.setdefault((task, name), []).append(result)
                    export_path.unlink(missing_ok=True)
            for task in tasks:
                for name, _ in versions:
                    runs = results[(task, name)]
                    rows.append(
                        [
                            f"{size:,}",
                            task,
                            name,
                            fmt3([size / r["seconds"] for r in runs], ",.0f"),
                            f"{size / min(r['cpu'] for r in runs):,.0f}",
                            f"{min(r['seconds'] for r in runs):.1f}",
                            f"{max(r['peak_kib'] for r in runs) / 1024:.0f}",
                            f"{max(r.get('helper_peak_kib', 0) for r in runs) / 1024:.0f}"
                            if any(r.get("helper_peak_kib") for r in runs)
                            else "-",
                        ]
                    )
            if not args.keep:
                db.unlink()
    headers = [
        "receipts",
        "task",
        "version",
        "rows/s min / median / max",
        "rows/CPU-s",
        "best seconds",
        "peak RSS MiB",
        "helper peak RSS MiB",
    ]
    print(table(headers, rows))
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

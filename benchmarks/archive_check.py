"""What checking the policy archive adds to ``consent verify --store``, by log size.

    python benchmarks/archive_check.py [--quick] [--sizes 100000] [--rounds 3]

A SQLite receipt log is generated as ``benchmarks/audit.py`` does, then, in this process and
one after the other in each round: ``verify_store`` with one worker (the log's own checks and
the archive's), and the archive's pass over the receipts of a log whose archiving began at its
first row (every receipt's revision read and looked up): the worst case, a log archived from
the start. Reports seconds (min / median / max) and the archive pass as a share of the whole
verification. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import SECRET, fmt3, load, machine, table
from audit import generate

from consent.audit import verify_store
from consent.audit.archive import receipt_revision
from consent.receipts import ReceiptSigner
from consent.store.chain import RECORD_EVENTS
from consent.store.sqlite import SQLiteStore


def archive_pass(store: SQLiteStore) -> int:
    """The rows :func:`consent.audit.archive.check_store` reads once archiving began at seq 1."""
    archived = {"0" * 64: 0}
    found = 0
    for batch in store.iter_values(min_seq=1):
        for values in batch:
            seq, _, _, _, event, body = values[:6]
            if event in RECORD_EVENTS:
                continue
            if archived.get(str(receipt_revision(body)), seq) >= seq:
                found += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small log, for smoke tests")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.rounds = "2000", 1
    signer = ReceiptSigner([SECRET])
    print(f"machine: {machine()}; load average before: {load()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            db = Path(tmp) / f"log-{size}.db"
            generate(db, size)
            store = SQLiteStore(f"sqlite:///{db}", signer)
            verify, walk = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                assert verify_store(store, signer, workers=1).ok
                verify.append(time.perf_counter() - started)
                started = time.perf_counter()
                assert archive_pass(store) == size
                walk.append(time.perf_counter() - started)
            share = sorted(w / v for w, v in zip(walk, verify, strict=True))[len(walk) // 2]
            rows.append([f"{size:,}", fmt3(verify, ".2f"), fmt3(walk, ".2f"), f"{share:.2f}"])
    print(
        table(["receipts", "verify --store, s", "archive pass, s", "archive pass / verify"], rows)
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

"""CPU per receipt of the SQLite store's group commit, by log size and kind of id.

    python benchmarks/append.py [--quick] [--sizes 35000,300000] [--batch 14] [--rounds 4]

For each log size, two SQLite files are filled to that size with the store's own sealing and
insert code (``consent.store.sqlite._write``), one with random ids (UUID version 4, as receipt
and subject ids were made before) and one with time-ordered ids (UUID version 7, as they are
made now). Then batches of ``--batch`` receipts are appended to each, alternating file by file
and round by round, and the process CPU time and the wall time per receipt are reported
(``synchronous=FULL``, WAL: every batch is one sync to disk).

Random keys land on random pages of the ``receipt_id`` and ``(subject_id, seq)`` indexes: each
receipt dirties index pages of its own, which are written to the WAL and back at the
checkpoint, and the more so the larger the log. Time-ordered keys go to the right-hand edge of
both indexes, as the rows themselves do.

Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from _common import fmt3, load, machine, table
from audit import template

from consent.receipts import Receipt, ReceiptSigner, hyphenated, uuid7_hex
from consent.store import open_store
from consent.store.chain import ChainWriter
from consent.store.sqlite import SQLiteStore, _write

SIGNER = ReceiptSigner(["benchmark-secret-key-0123456789abcdef"])
TEMPLATE = template()
FILL = 2000  # receipts per transaction while filling


def uuid4_hex() -> str:
    return uuid.uuid4().hex


def uuid7_now() -> str:
    return uuid7_hex(os.urandom(10), time.time_ns() // 1_000_000)


KINDS: dict[str, Callable[[], str]] = {"uuid4": uuid4_hex, "uuid7": uuid7_now}


def receipt(new_id: Callable[[], str]) -> Receipt:
    """The audit benchmark's realistic receipt with fresh ids of one kind (a first decision:
    a new subject)."""
    return TEMPLATE.model_copy(
        update={
            "receipt_id": hyphenated(new_id()),
            "subject_id": new_id(),
            "timestamp": int(time.time()),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="35000,300000", help="log sizes, comma-separated")
    parser.add_argument("--batch", type=int, default=14, help="receipts per commit")
    parser.add_argument("--per-round", type=int, default=2800, help="receipts per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 round (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.per_round, args.rounds = "2000", 280, 1
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"machine: {machine()}; load average before: {load()}")
    print(f"batches of {args.batch}, {args.per_round} receipts per round, {args.rounds} rounds")
    rows = []
    with tempfile.TemporaryDirectory(prefix="consent-append-") as tmp:
        for size in sizes:
            conns = {}
            writers = {}
            for kind, new_id in KINDS.items():
                store = open_store(f"sqlite:///{tmp}/{kind}-{size}.db", SIGNER)
                assert isinstance(store, SQLiteStore)
                conn = store._connect(create=True)
                writer = writers[kind] = ChainWriter(SIGNER, store.path)
                for start in range(0, size, FILL):
                    count = min(FILL, size - start)
                    _write([receipt(new_id) for _ in range(count)], writer, conn)
                conns[kind] = conn
            cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
            wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
            for _ in range(args.rounds):
                for kind, new_id in KINDS.items():
                    batches = [
                        [receipt(new_id) for _ in range(args.batch)]
                        for _ in range(args.per_round // args.batch)
                    ]
                    n = sum(len(b) for b in batches)
                    c, t = time.process_time(), time.perf_counter()
                    for batch in batches:
                        _write(batch, writers[kind], conns[kind])
                    cpu[kind].append((time.process_time() - c) / n * 1e6)
                    wall[kind].append((time.perf_counter() - t) / n * 1e6)
            for kind in KINDS:
                ratio = [a / b for a, b in zip(cpu[kind], cpu["uuid4"], strict=True)]
                rows.append((size, kind, fmt3(cpu[kind]), fmt3(wall[kind]), fmt3(ratio, ".2f")))
            for conn in conns.values():
                conn.close()
            print(f"  {size}: done", file=sys.stderr)
    print(
        table(
            [
                "receipts in the log",
                "ids",
                "CPU µs per receipt min / median / max",
                "wall µs per receipt",
                "CPU / uuid4's",
            ],
            rows,
        )
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

"""Speed and memory of ``consent stats`` over a large receipt log.

    python benchmarks/stats.py [--sizes 100000,1000000] [--rounds 3] [--keep DIR] [--quick]
                               [--before SRC]

For each size an SQLite store is written with the store's own schema (so the statistics
triggers fill ``consent_stats`` as the rows go in) and sealing code: signed canonical bodies,
keyed links and a signed head. The receipts vary like a site's: 600 visitors in 1,000 come
back, two policy revisions (the second adds a category), four methods, three languages, eight
choices, GPC on about one in eight, spread over a year.

Then, each in a fresh subprocess and round after round: ``consent.stats.query.collect`` (what
``consent stats`` runs) per decision by day, per decision by month split by language, per
visitor by week, and per decision over one month (``--since``/``--until``). Reports seconds
(min / median / max), the peak RSS of the process (``resource.getrusage``) and the peak of
Python allocations (``tracemalloc``, in a separate run): both must stay flat as the log grows,
because only the aggregates leave the database. Also times the migration of a store of an
earlier version (the statistics tables dropped, then ``migrate_sqlite``). ``--before SRC``
measures the package in SRC (an older ``src/`` directory) too, round by round with this one,
on a store it generates itself (with its own schema and indexes). Not a test: the numbers
depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Row, fmt3, generate_store, load, machine, table

from consent.receipts import Controller, Purpose, Receipt, canonical_json

_T0 = 1_767_225_600  # 2026-01-01
_STEP = 31  # seconds between receipts: 1,000,000 receipts span about a year
_CATEGORIES = ["analytics", "marketing", "preferences", "embedded"]


def _variant(revision: int, method: str, language: str, choice: int, gpc: bool) -> Receipt:
    offered = _CATEGORIES if revision == 2 else _CATEGORIES[:3]
    granted = [key for i, key in enumerate(offered) if choice >> i & 1]
    return Receipt(
        receipt_id="00000000-0000-4000-8000-000000000000",
        subject_id="0" * 32,
        timestamp=_T0,
        event="given",
        granted=granted,
        refused=[key for key in offered if key not in granted],
        revision=("1a2b" if revision == 1 else "9f2c") * 16,
        policy_url="https://lindenhof-clinic.example/cookie-policy",
        method=method,
        jurisdiction="EU",
        language=language,
        controller=Controller(
            name="Lindenhof Clinic gGmbH",
            email="privacy@lindenhof-clinic.example",
            address="Lindenallee 12, 10115 Berlin, Germany",
            url="https://lindenhof-clinic.example",
        ),
        purposes=[
            Purpose(key="necessary", title="Strictly necessary", necessary=True, granted=True)
        ]
        + [Purpose(key=k, title=k.title(), granted=k in granted) for k in offered],
        page="/visiting-hours",
        ip="203.0.113.0",
        gpc=gpc,
    )


def generate(path: Path, count: int) -> float:
    """Write ``count`` receipts that vary like a site's into a new SQLite store; returns
    seconds."""
    methods, languages = ["banner", "banner", "banner", "form", "api", "gpc"], ["en", "de", "fr"]
    choices = [0, 0, 0, 7, 7, 1, 3, 5]  # reject all thrice as often as a custom choice
    templates: dict[tuple[int, str, str, int, bool], tuple[Receipt, str]] = {}

    def row(seq: int) -> Row:
        revision = 1 if seq <= count // 2 else 2
        method = methods[seq * 7 % len(methods)]
        key = (revision, method, languages[seq % 3], choices[seq * 13 % 8], seq % 8 == 0)
        if key not in templates:
            base = _variant(*key)
            templates[key] = (base, canonical_json(base))
        base, body_t = templates[key]
        subject = seq if seq % 10 < 4 else seq - seq % 10 - 3  # 6 in 10 come back
        event = "given" if subject == seq else "updated"
        return base, body_t, f"{subject:032x}", _T0 + seq * _STEP, event

    return generate_store(path, count, row, analyze=True)


TASKS = {
    "per decision, by day": {"by": "day"},
    "per decision, by month, split by language": {"by": "month", "split": "language"},
    "per visitor, by week": {"by": "week", "per": "visitor"},
    "per decision, by day, one month": {
        "by": "day",
        "since": _T0 + 150 * 86_400,
        "until": _T0 + 180 * 86_400,
    },
}


def child(db: str, task: str, trace: bool) -> None:
    from consent.stats.query import collect

    if trace:
        import tracemalloc

        tracemalloc.start()
    started = time.perf_counter()
    stats = collect(f"sqlite:///{db}", **TASKS[task])  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss": rss,
                "traced": peak,
                "buckets": len(stats.buckets),
                "decisions": sum(b.decisions for b in stats.buckets),
            }
        )
    )


def _env(src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def run_child(db: Path, task: str, trace: bool = False, src: str | None = None) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(db), task] + (["--trace"] if trace else []),
        capture_output=True,
        text=True,
        check=True,
        env=_env(src),
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def migration(db: Path) -> float:
    """Seconds to migrate a copy of ``db`` with the statistics tables dropped."""
    from consent.store.statistics import migrate_sqlite

    copy = db.with_name(db.stem + "-old.db")
    src = sqlite3.connect(db)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    for name in ("consent_stats_insert", "consent_stats_update", "consent_stats_delete"):
        dst.execute(f"DROP TRIGGER {name}")
    dst.execute("DROP TABLE consent_stats")
    dst.execute("DROP TABLE consent_stats_categories")
    dst.commit()
    dst.close()
    conn = sqlite3.connect(copy, isolation_level=None)
    started = time.perf_counter()
    migrate_sqlite(conn)
    seconds = time.perf_counter() - started
    conn.close()
    copy.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the generated stores here")
    parser.add_argument("--quick", action="store_true", help="10,000 receipts, one round")
    parser.add_argument("--no-migration", action="store_true")
    parser.add_argument("--before", metavar="SRC", help="also measure the package in SRC")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.trace)
        return
    if args.generate:
        print(generate(Path(args.generate[0]), int(args.generate[1])))
        return
    versions: list[tuple[str, str | None]] = [("after", None)]
    if args.before:
        versions.insert(0, ("before", str(Path(args.before).resolve())))
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    rounds = 1 if args.quick else args.rounds
    where = args.keep or Path(tempfile.mkdtemp(prefix="consent-stats-bench-"))
    where.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; load {load()}")
    results = []
    for size in sizes:
        dbs = {}
        for name, src in versions:
            db = dbs[name] = where / (
                f"stats-{size}.db" if src is None else f"stats-{size}-{name}.db"
            )
            if not db.exists():
                done = subprocess.run(
                    [sys.executable, __file__, "--generate", str(db), str(size)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=_env(src),
                )
                seconds = float(done.stdout.strip().splitlines()[-1])
                print(
                    f"generated {size:,} receipts ({name}) in {seconds:.1f} s"
                    f" ({db.stat().st_size / 1e6:.0f} MB)"
                )
        db = dbs["after"]
        for task in TASKS:
            runs: dict[str, tuple[list[float], list[float], dict[str, float]]] = {
                name: ([], [], {}) for name, _ in versions
            }
            for _ in range(rounds):
                for name, src in versions:
                    found = run_child(dbs[name], task, src=src)
                    runs[name][0].append(found["seconds"])
                    runs[name][1].append(found["rss"])
                    runs[name][2].update(found)
            for name, src in versions:
                times, rss, found = runs[name]
                traced = run_child(dbs[name], task, trace=True, src=src)
                results.append(
                    (
                        f"{size:,}",
                        task,
                        name,
                        fmt3(times, ".2f"),
                        f"{max(rss) / 2**20:.0f}",
                        f"{traced['traced'] / 2**20:.2f}",
                        f"{int(found['decisions']):,}",
                    )
                )
        if not args.no_migration:
            results.append(
                (
                    f"{size:,}",
                    "migration of an earlier version's store",
                    "after",
                    f"{migration(db):.2f}",
                    "",
                    "",
                    "",
                )
            )
        if not args.keep:
            for path in dbs.values():
                path.unlink()
    print(
        table(
            [
                "receipts",
                "statistics",
                "version",
                "seconds (min / median / max)",
                "peak RSS MB",
                "Python peak MB",
                "decisions counted",
            ],
            results,
        )
    )


if __name__ == "__main__":
    main()

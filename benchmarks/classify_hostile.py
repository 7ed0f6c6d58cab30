"""How long classifying one hostile cookie name takes, for globs with several ``*``.

    python benchmarks/classify_hostile.py [--globs '*_*_id,*_*_*_*_id'] [--sizes 800,40000,1000000]
    python benchmarks/classify_hostile.py --quick

A policy whose only rule beyond the necessary category is ``pattern = GLOB``; names made of
``_`` only, of each size (the worst case for a backtracking matcher: every ``_`` is a place
where each ``*`` could end). One classification per cell, of a name not seen before (the
classifier's cache does not help), best of three. A glob matcher that backtracks takes time
that grows as a power of the name's length (one request with a 40 KB name blocked a worker for
7.5 s with ``*_*_id``); a linear one grows with the length.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import load, machine, table

from consent.classify import Classifier
from consent.policy import load_policy


def policy_with(glob: str, directory: Path) -> Classifier:
    (directory / "site.toml").write_text(
        'policy_url = "/p"\n[controller]\nname = "A"\nemail = "a@b.example"\n'
    )
    (directory / "necessary.toml").write_text('title = "N"\ndescription = "d"\nnecessary = true\n')
    (directory / "analytics.toml").write_text(
        f'title = "A"\ndescription = "d"\n[[cookies]]\npattern = "{glob}"\n'
    )
    return Classifier(load_policy(directory))


def seconds(classifier: Classifier, size: int) -> float:
    best = float("inf")
    for attempt in range(3):
        name = "_" * (size - 1) + "abc"[attempt]  # a name not seen before, each time
        started = time.perf_counter()
        classifier.match(name)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--globs", default="*_*_id,*_*_*_*_id")
    parser.add_argument("--sizes", default="800,40000,1000000")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args()
    sizes = [800, 40000] if args.quick else [int(s) for s in args.sizes.split(",")]
    globs = args.globs.split(",")
    print(f"machine: {machine()}; load average before: {load()}")
    print("## One classification of a name of underscores, best of 3")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for glob in globs:
            directory = Path(tmp) / str(globs.index(glob))
            directory.mkdir()
            classifier = policy_with(glob, directory)
            rows.append(
                [f"`{glob}`", *(f"{seconds(classifier, size) * 1000:.2f}" for size in sizes)]
            )
    print(table(["glob", *(f"{size:,} chars: ms" for size in sizes)], rows))
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

"""Time of 10,000 lookups in the known-cookie catalog, indexed and by reading every row.

    python benchmarks/catalog.py [--quick] [--lookups 10000] [--rounds 5]

The names looked up are a fixed, seeded mixture: 40 % names the catalog has exactly (``_ga``),
30 % names one of its prefix rows answers (``_ga_`` for ``_ga_4F2A``), 30 % names it does not
know (a site's own cookies). Each round times

* ``indexed``: ``Catalog.lookup`` (exact names in a dict, prefix rows bucketed by their first
  characters), what the scanner, ``consent catalog`` and the middleware's log line use;
* ``every row``: ``Catalog.lookup_by_scan``, the same answer found by reading all 2,263 rows
  (the plain way the index is tested against); it looks up a tenth of the names and its time is
  scaled to the same count;
* ``read``: reading and indexing the shipped CSV (what the first lookup in a process costs).

The target: 10,000 indexed lookups well under 50 ms. Not a test: the numbers depend on the
machine; the ratio is taken within each round.
"""

from __future__ import annotations

import argparse
import random
import string
import time
from importlib import resources

from _common import fmt3, load, machine, table

from consent.catalog import Catalog


def names(catalog: Catalog, count: int) -> list[str]:
    rng = random.Random(20)
    exact = sorted({e.name for e in catalog.entries if not e.prefix})
    prefixes = sorted({e.name for e in catalog.entries if e.prefix})
    alphabet = string.ascii_letters + string.digits
    out = []
    for i in range(count):
        kind = i % 10
        suffix = "".join(rng.choices(alphabet, k=rng.randint(3, 12)))
        if kind < 4:
            out.append(rng.choice(exact))
        elif kind < 7:
            out.append(rng.choice(prefixes) + suffix)
        else:
            out.append(rng.choice(("app_", "shop-", "sid", "cart_", "x")) + suffix)
    rng.shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 round (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1

    text = (resources.files("consent.catalog") / "open-cookie-database.csv").read_text("utf-8")
    catalog = Catalog.from_csv(text)
    wanted = names(catalog, args.lookups)
    sample = wanted[::10]
    print(f"machine: {machine()}; load average before: {load()}")
    print(f"{len(catalog.entries)} rows, {args.lookups} lookups per round, {args.rounds} rounds")

    indexed: list[float] = []
    scanned: list[float] = []
    read: list[float] = []
    for _ in range(args.rounds):
        lookup = catalog.lookup
        t = time.perf_counter()
        for name in wanted:
            lookup(name)
        indexed.append((time.perf_counter() - t) * 1e3)

        scan = catalog.lookup_by_scan
        t = time.perf_counter()
        for name in sample:
            scan(name)
        scanned.append((time.perf_counter() - t) * 1e3 * len(wanted) / len(sample))

        t = time.perf_counter()
        Catalog.from_csv(text)
        read.append((time.perf_counter() - t) * 1e3)

    ratio = [s / i for s, i in zip(scanned, indexed, strict=True)]
    per = [v * 1e3 / args.lookups for v in indexed]
    print(
        table(
            [
                "variant",
                f"ms for {args.lookups} lookups min / median / max",
                "µs per lookup",
                "time / indexed",
            ],
            [
                ("indexed", fmt3(indexed, ".2f"), fmt3(per, ".2f"), "1"),
                ("every row", fmt3(scanned, ".0f"), "", fmt3(ratio, ".0f")),
                ("read (first lookup)", fmt3(read, ".1f") + " (once)", "", ""),
            ],
        )
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

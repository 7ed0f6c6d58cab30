"""Draws docs/images/stats-chart.png: the statistics chart of eight weeks of decisions on the
demo site (the Lindenhof Clinic's categories and controller), the banner text changed after
four weeks.

    PYTHONPATH=src python scripts/stats_chart.py [--store sqlite:///demo-stats.db] [--out FILE]

The decisions are made up (a fixed random seed), with the demo policy's own categories and
revision; the first four weeks carry an earlier revision. They are appended through the
receipt store like the site's, then ``consent stats --format png`` draws them.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import random
import tempfile
import uuid
from pathlib import Path

from consent.cli import main as consent
from consent.policy import load_policy
from consent.receipts import Controller, Purpose, Receipt, ReceiptSigner
from consent.store import open_store

ROOT = Path(__file__).resolve().parent.parent
DEMO_POLICY = ROOT / "src" / "consent" / "demo" / "policy"
KEY = "demo-statistics-key-0123456789abcdef"
START = calendar.timegm((2026, 9, 7, 0, 0, 0))  # a Monday

# Chance that a visitor grants each category: before and after the banner text changed.
BEFORE = {"analytics": 0.42, "marketing": 0.18, "preferences": 0.55, "embedded": 0.47}
AFTER = {"analytics": 0.58, "marketing": 0.21, "preferences": 0.61, "embedded": 0.52}


def receipts() -> list[Receipt]:
    policy = load_policy(DEMO_POLICY)
    site = policy.site
    controller = Controller.model_validate(site.controller.model_dump(exclude_none=True))
    keys = [key for key, cat in policy.ordered() if not cat.necessary]
    titles = {key: cat.text("en").title for key, cat in policy.ordered()}
    earlier = "e" * 4 + policy.revision[4:]
    rng = random.Random(7)
    out = []
    visitors = 0
    for day in range(56):
        revision, chances = (earlier, BEFORE) if day < 28 else (policy.revision, AFTER)
        weekend = day % 7 >= 5
        for _ in range(rng.randint(25, 40) if weekend else rng.randint(50, 80)):
            visitors += 1
            gpc = rng.random() < 0.07
            roll = rng.random()
            if gpc or roll < 0.35:
                granted = []
            elif roll < 0.62:
                granted = list(keys)
            else:
                granted = [k for k in keys if rng.random() < chances[k]]
            method = "gpc" if gpc else rng.choice(["banner"] * 8 + ["form", "api"])
            out.append(
                Receipt(
                    receipt_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    subject_id=f"visitor-{visitors}",
                    timestamp=START + day * 86_400 + rng.randint(7 * 3600, 22 * 3600),
                    event="given" if granted else "refused",
                    granted=granted,
                    refused=[k for k in keys if k not in granted],
                    revision=revision,
                    policy_url=site.policy_url,
                    method=method,
                    jurisdiction=site.jurisdiction,
                    language=rng.choice(["de"] * 3 + ["en"]),
                    controller=controller,
                    purposes=[
                        Purpose(
                            key=k,
                            title=titles[k],
                            necessary=k not in keys,
                            granted=k in granted or k not in keys,
                        )
                        for k in titles
                    ],
                    gpc=gpc,
                )
            )
    return sorted(out, key=lambda r: r.timestamp)


async def record(url: str) -> None:
    store = open_store(url, ReceiptSigner([KEY]))
    try:
        for receipt in receipts():
            await store.append(receipt)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", help="where to record (default: a temporary file)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "stats-chart.png"))
    parser.add_argument("--by", default="week")
    args = parser.parse_args()
    url = args.store or f"sqlite:///{tempfile.mkdtemp()}/demo-stats.db"
    asyncio.run(record(url))
    consent(["stats", "--store", url, "--by", args.by, "--format", "png", "--output", args.out])
    consent(["stats", "--store", url, "--by", "week"])


if __name__ == "__main__":
    main()

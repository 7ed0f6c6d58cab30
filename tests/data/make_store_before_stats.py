"""Writes a receipt store made by an earlier version of asgi-consent, for the migration tests.
Run it with that version's sources:

* ``store-before-stats.db``: before the statistics columns existed (commit 4007cf0);
* ``store-before-next.db``: statistics columns without ``next_ts`` (commit bdc4a69).

    git worktree add /tmp/old 4007cf0
    PYTHONPATH=/tmp/old/src python tests/data/make_store_before_stats.py tests/data/store-before-stats.db

The decisions are those of ``tests/stats_seed.py`` (``SEED``), with the same key.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.stats_seed import TEST_KEY, seed_receipts

from consent.receipts import ReceiptSigner
from consent.store import open_store


async def main(path: str) -> None:
    store = open_store(f"sqlite:///{path}", ReceiptSigner([TEST_KEY]))
    try:
        for receipt in seed_receipts():
            await store.append(receipt)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

"""Receipt stores: where signed consent receipts are durably chained.

``open_store(url, signer)`` picks the backend from the URL:

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the default),
* ``postgresql://user@host/dbname`` (or ``postgres://``), needs ``asgi-consent[postgres]``,
* ``memory://`` for tests.
"""

from __future__ import annotations

from ..receipts import ReceiptSigner
from .base import (
    ChainBroken,
    ReceiptRow,
    ReceiptStore,
    StoreDamaged,
    StoreUnavailable,
    redact_url,
)
from .chain import ChainState

__all__ = [
    "ChainBroken",
    "ChainState",
    "ReceiptRow",
    "ReceiptStore",
    "StoreDamaged",
    "StoreUnavailable",
    "open_store",
]


def open_store(
    url: str, signer: ReceiptSigner | None = None, *, timeout: float = 5.0
) -> ReceiptStore:
    """The store for ``url``, not yet connected.

    The web side calls ``await store.open()`` (which never raises for an unreachable store)
    and then ``append``; the command line uses the sync methods directly. ``signer`` may be
    None for read-only use (export); ``append`` and ``purge`` need it. ``timeout`` bounds how
    long a call waits for a lock or a connection before raising StoreUnavailable.

    Raises ValueError for a URL no backend understands.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(url, signer, timeout=timeout)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ValueError(
                "a postgresql:// store needs psycopg 3: pip install 'asgi-consent[postgres]'"
            ) from exc
        return PostgresStore(url, signer, timeout=timeout)
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore(url, signer)
    raise ValueError(
        f"unsupported receipt store URL {redact_url(url)!r}: use sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db, postgresql://user@host/dbname or memory://"
    )

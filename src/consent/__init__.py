"""Server-side cookie consent for ASGI sites."""

from __future__ import annotations

__version__ = "0.1.0"

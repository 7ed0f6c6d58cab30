"""The module ``ConsentMiddleware`` lived in before :mod:`consent.web`: its names, re-exported."""

from __future__ import annotations

from .web.metrics import LONG_NAMES, UNDECLARED, ConsentMetrics
from .web.middleware import ConsentMiddleware

__all__ = ["LONG_NAMES", "UNDECLARED", "ConsentMetrics", "ConsentMiddleware"]

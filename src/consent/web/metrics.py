"""What the middleware counts (``middleware.metrics``), and the log line for each undeclared name."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

__all__ = ["LONG_NAMES", "UNDECLARED", "ConsentMetrics", "MetricsRecorder"]

logger = logging.getLogger("consent")

#: The category under which cookies the policy does not declare are counted as blocked.
UNDECLARED = "(undeclared)"
_UNDECLARED_LOG_LIMIT = 1000
#: Undeclared names longer than this are counted and logged together, under LONG_NAMES.
_UNDECLARED_NAME_MAX = 256
LONG_NAMES = "(names of more than 256 characters)"


@dataclass
class ConsentMetrics:
    """Counters an operator can read from Python (``middleware.metrics``) or export to a monitor.

    ``blocked`` counts cookies removed per category and direction key (``"request"``/``"response"``);
    ``undeclared`` counts every cookie name the policy does not declare, in either direction.
    ``decisions`` counts receipts recorded per event (``given``, ``updated``, ...);
    ``store_failures`` the times the receipt store could not be reached, ``unavailable`` the 503
    answers that followed.
    """

    requests: int = 0
    websockets: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    blocked_request: Counter[str] = field(default_factory=Counter)
    blocked_response: Counter[str] = field(default_factory=Counter)
    expired: Counter[str] = field(default_factory=Counter)
    undeclared: Counter[str] = field(default_factory=Counter)
    gpc_requests: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    store_failures: int = 0
    unavailable: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "websockets": self.websockets,
            "gpc_requests": self.gpc_requests,
            "blocked": dict(self.blocked),
            "blocked_request": dict(self.blocked_request),
            "blocked_response": dict(self.blocked_response),
            "expired": dict(self.expired),
            "undeclared": dict(self.undeclared),
            "decisions": dict(self.decisions),
            "store_failures": self.store_failures,
            "unavailable": self.unavailable,
        }


class MetricsRecorder:
    """Counts what the cookie filter did into a :class:`ConsentMetrics`, within bounds, and
    logs each undeclared cookie name once (at most ``1000`` names)."""

    def __init__(self, metrics: ConsentMetrics, allow_undeclared: bool) -> None:
        self.metrics = metrics
        self.allow_undeclared = allow_undeclared
        self._logged: set[str] = set()
        self._lock = Lock()

    def request(
        self, undeclared: tuple[str, ...], blocked: tuple[str, ...], expired: tuple[str, ...]
    ) -> None:
        """What filtering one request's Cookie header removed and expired."""
        for cname in undeclared:
            self.undeclared(cname)
        for category in blocked:
            self.blocked(category, "request")
        counts = self.metrics.expired
        for category in expired:
            counts[category] += 1

    def blocked(self, category: str, direction: str) -> None:
        m = self.metrics
        m.blocked[category] += 1
        (m.blocked_request if direction == "request" else m.blocked_response)[category] += 1

    def undeclared(self, name: str) -> None:
        long_name = len(name) > _UNDECLARED_NAME_MAX
        if long_name:  # counted and logged together: a visitor's names are not kept
            name = LONG_NAMES
        counts = self.metrics.undeclared
        if name in counts or len(counts) < _UNDECLARED_LOG_LIMIT:
            counts[name] += 1
        else:
            counts["(other names)"] += 1
        if name in self._logged or len(self._logged) >= _UNDECLARED_LOG_LIMIT:
            return
        with self._lock:
            if name in self._logged:
                return
            self._logged.add(name)
        if long_name:
            logger.warning(
                "cookie names of more than %d characters are not declared in the cookie policy; "
                "such cookies are %s",
                _UNDECLARED_NAME_MAX,
                "allowed" if self.allow_undeclared else "blocked",
            )
            return
        from ..catalog.note import log_note  # read when this line is written, once per name

        logger.warning(
            "cookie %r is not declared in the cookie policy; it is %s (declare it in a category "
            "file)%s",
            name,
            "allowed" if self.allow_undeclared else "blocked",
            log_note(name),
        )

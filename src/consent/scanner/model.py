"""What a scan records: the decisions it makes, and per decision the pages, cookies, storage keys
and other hosts a browser saw. Plain data, filled in by :mod:`consent.scanner.browser`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CookieSeen",
    "Decision",
    "DecisionRun",
    "PageVisit",
    "StorageKind",
    "StorageSeen",
    "plan",
]

StorageKind = Literal["localStorage", "sessionStorage"]


@dataclass(frozen=True, slots=True)
class Decision:
    """A consent decision the scanner makes, as a visitor would, in a fresh browser profile."""

    #: ``none`` (no choice made), ``reject``, a category key (that category alone), ``all``,
    #: ``gpc`` (``Sec-GPC: 1``, then accept all)
    name: str
    #: the non-necessary categories the visitor grants (for ``gpc``: all those not
    #: ``sale_or_share``, which the signal refuses)
    granted: frozenset[str] = frozenset()
    #: what the visitor asks for: ``None`` for no decision, a list of keys, or ``"all"``
    accept: list[str] | Literal["all"] | None = None
    gpc: bool = False


def plan(optional: Sequence[str], sale_or_share: Collection[str]) -> list[Decision]:
    """``none``, ``reject``, each non-necessary category alone, ``all`` and ``gpc``."""
    everything = frozenset(optional)
    return [
        Decision("none"),
        Decision("reject", accept=[]),
        *(Decision(key, frozenset({key}), accept=[key]) for key in optional),
        Decision("all", everything, accept="all"),
        Decision("gpc", everything - frozenset(sale_or_share), accept="all", gpc=True),
    ]


@dataclass(slots=True)
class PageVisit:
    url: str
    status: int | None = None
    error: str | None = None


@dataclass(slots=True)
class CookieSeen:
    """A cookie in the browser's jar, as first seen under one decision."""

    name: str
    domain: str
    path: str
    #: Unix time, ``None`` for a session cookie
    expires: float | None
    http_only: bool
    secure: bool
    same_site: str
    third_party: bool
    #: ``server`` when a response's ``Set-Cookie`` carried it, ``script`` when none did
    set_by: Literal["server", "script"]
    #: the page being visited when it first appeared
    page: str


@dataclass(slots=True)
class StorageSeen:
    """A ``localStorage`` or ``sessionStorage`` key, as first seen under one decision."""

    kind: StorageKind
    origin: str
    key: str
    third_party: bool
    page: str


@dataclass(slots=True)
class DecisionRun:
    """Everything one decision's browser profile saw."""

    decision: Decision
    #: how the decision was made: ``banner``, ``endpoint``, or ``None`` (``none``)
    via: str | None = None
    #: why the decision could not be made (the run is then incomplete)
    error: str | None = None
    #: why the banner could not be used, when the decision was posted instead
    banner_error: str | None = None
    pages: list[PageVisit] = field(default_factory=list)
    cookies: list[CookieSeen] = field(default_factory=list)
    storage: list[StorageSeen] = field(default_factory=list)
    #: other hosts contacted -> (first page that contacted it, a third party?)
    hosts: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: cookie names the site's consent endpoint set with the decision (its consent cookie)
    consent_cookies: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.decision.name

    @property
    def third_party_hosts(self) -> list[str]:
        return sorted(h for h, (_, third) in self.hosts.items() if third)

"""Known decisions for the statistics tests (and the store file made by an earlier version).

Each entry: subject, time (UTC), event, granted, refused, method, language, GPC, revision.
Revision ``rev-A`` offers analytics and marketing; ``rev-B`` adds preferences on 2026-11-10.
"""

from __future__ import annotations

import calendar
import uuid

from consent.receipts import Controller, Purpose, Receipt

TEST_KEY = "test-receipt-key-0123456789abcdef"

AM = ["analytics", "marketing"]
AMP = ["analytics", "marketing", "preferences"]

SEED = [
    ("s1", "2026-11-02 10:00", "given", AM, [], "banner", "en", False, "rev-A"),
    ("s2", "2026-11-02 11:00", "refused", [], AM, "banner", "de", True, "rev-A"),
    (
        "s1",
        "2026-11-02 12:00",
        "updated",
        ["analytics"],
        ["marketing"],
        "form",
        "en",
        False,
        "rev-A",
    ),
    ("s3", "2026-11-03 09:00", "given", ["marketing"], ["analytics"], "api", "fr", False, "rev-A"),
    ("s2", "2026-11-03 10:00", "updated", AM, [], "banner", "de", False, "rev-A"),
    ("s4", "2026-11-10 09:00", "given", AMP, [], "banner", "en", False, "rev-B"),
    ("s4", "2026-11-10 09:30", "withdrawn", [], AMP, "api", "en", False, "rev-B"),
    ("s5", "2026-11-11 14:00", "refused", [], AMP, "gpc", "en", True, "rev-B"),
    ("s6", "2026-12-01 08:00", "given", ["preferences"], AM, "form", "de", False, "rev-B"),
    (
        "s6",
        "2026-12-01 08:05",
        "updated",
        ["analytics", "preferences"],
        ["marketing"],
        "form",
        "de",
        False,
        "rev-B",
    ),
]


def at(text: str) -> int:
    """``YYYY-MM-DD HH:MM`` in UTC -> unix seconds."""
    day, clock = text.split()
    y, m, d = map(int, day.split("-"))
    hh, mm = map(int, clock.split(":"))
    return calendar.timegm((y, m, d, hh, mm, 0))


Seed = tuple[str, "str | int", str, list[str], list[str], str, str, bool, str]


def seed_receipts(seed: list[Seed] | None = None) -> list[Receipt]:
    """The receipts of ``seed`` (default: ``SEED``); a time may be unix seconds."""
    receipts = []
    for n, (subject, when, event, granted, refused, method, language, gpc, revision) in enumerate(
        SEED if seed is None else seed
    ):
        purposes = [Purpose(key="necessary", title="Necessary", necessary=True, granted=True)]
        purposes += [
            Purpose(key=key, title=key.title(), granted=key in granted)
            for key in sorted([*granted, *refused])
        ]
        receipts.append(
            Receipt(
                receipt_id=str(uuid.UUID(int=n + 1)),
                subject_id=subject,
                timestamp=when if isinstance(when, int) else at(when),
                event=event,
                granted=granted,
                refused=refused,
                revision=revision,
                policy_url="https://example.org/cookies",
                method=method,
                jurisdiction="EU",
                language=language,
                controller=Controller(name="Example Ltd", email="privacy@example.org"),
                purposes=purposes,
                gpc=gpc,
            )
        )
    return receipts

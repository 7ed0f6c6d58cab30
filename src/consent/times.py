"""Time arguments: ``YYYY-MM-DD``, RFC 3339 or unix seconds, read as unix seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(value: str) -> int:
    """Unix seconds from ``YYYY-MM-DD`` (midnight UTC), RFC 3339, or plain unix seconds.

    ``2026-11-25``, ``2026-11-25T12:00:00Z``, ``2026-11-25T13:00:00+01:00`` and ``1795608000``
    are accepted; a date-time without an offset is taken as UTC.
    """
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        if _DATE.match(text):
            moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"invalid time {value!r}: use YYYY-MM-DD or RFC 3339 (2026-11-25T12:00:00Z)"
        ) from None
    return int(moment.timestamp())


def _as_time(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return parse_time(value)


# --------------------------------------------------------------------------- fast path

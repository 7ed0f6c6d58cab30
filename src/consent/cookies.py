"""Cookie and Set-Cookie header handling (RFC 6265 / RFC 6265bis), on raw header bytes.

Nothing here raises on malformed input: a header that cannot be understood is reported as such
(``None``) so the caller can drop it, never turned into an exception.
"""

from __future__ import annotations

import re
import time
from calendar import timegm

__all__ = [
    "build_deletion",
    "cookie_pairs",
    "deletion_variants",
    "is_deletion",
    "set_cookie_name",
]


def cookie_pairs(header: bytes) -> list[tuple[str, bytes]]:
    """Split a request ``Cookie`` header into ``(name, raw_pair)`` items.

    ``raw_pair`` is the pair exactly as sent (``name=value``), so a filtered header can be
    rebuilt byte for byte. A pair with no ``=`` has the empty name (RFC 6265bis 5.6). Names are
    decoded as Latin-1, which cannot fail.
    """
    out = []
    for part in header.split(b";"):
        part = part.strip(b" \t")
        if not part:
            continue
        eq = part.find(b"=")
        name = b"" if eq < 0 else part[:eq].strip(b" \t")
        out.append((name.decode("latin-1"), part))
    return out


def set_cookie_name(value: bytes) -> str:
    """The cookie name of a ``Set-Cookie`` value (RFC 6265bis 5.6: before the first ``=`` of
    the first ``;``-part; the empty name when that part has no ``=``)."""
    semi = value.find(b";")
    first = value if semi < 0 else value[:semi]
    eq = first.find(b"=")
    if eq < 0:
        return ""
    return first[:eq].strip(b" \t").decode("latin-1")


_MAX_AGE = re.compile(rb";\s*max-age\s*=\s*([^;]*)", re.IGNORECASE)
_EXPIRES = re.compile(rb";\s*expires\s*=\s*([^;]*)", re.IGNORECASE)
_INTEGER = re.compile(rb"-?[0-9]+")
_ATTRS_CACHE_LIMIT = 1024
_ATTRS_MAX = 512
# Attribute part of a Set-Cookie value -> (Max-Age verdict or None, Expires timestamp or None).
# The attributes of a site's cookies repeat on every response while the values change, so the
# parsing is done once per distinct attribute string; the Expires date is compared each time.
_attrs_cache: dict[bytes, tuple[bool | None, int | None]] = {}


def _deletion_attrs(attrs: bytes) -> tuple[bool | None, int | None]:
    low = attrs.lower()
    if b"max-age" not in low and b"expires" not in low:
        return None, None
    # RFC 6265bis 5.6: the last attribute of a kind wins; Max-Age beats Expires.
    for raw in reversed(_MAX_AGE.findall(attrs)):
        raw = raw.strip()
        if _INTEGER.fullmatch(raw):
            # <= 0 by sign and digits: int() refuses numbers of more than 4,300 digits.
            return raw.startswith(b"-") or not raw.strip(b"0"), None
    for raw in reversed(_EXPIRES.findall(attrs)):
        ts = parse_cookie_date(raw.decode("latin-1"))
        if ts is not None:
            return None, ts
    return None, None


def is_deletion(value: bytes, now: float | None = None) -> bool:
    """True when a ``Set-Cookie`` value removes the cookie: ``Max-Age`` <= 0, or (without a
    ``Max-Age``) an ``Expires`` date in the past. Deletions always pass the filter: removing a
    cookie never needs consent."""
    # Attributes start at the first ";": the name and value before it never count.
    _, semi, attrs = value.partition(b";")
    if not semi:
        return False
    found = _attrs_cache.get(attrs)
    if found is None:
        found = _deletion_attrs(semi + attrs)
        if len(attrs) <= _ATTRS_MAX:
            if len(_attrs_cache) >= _ATTRS_CACHE_LIMIT:
                _attrs_cache.clear()
            _attrs_cache[attrs] = found
    max_age, expires = found
    if max_age is not None:
        return max_age
    if expires is not None:
        return expires <= (time.time() if now is None else now)
    return False


_DELIMS = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_TIME = re.compile(r"^([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[^0-9]|$)")
_DAY = re.compile(r"^([0-9]{1,2})(?:[^0-9]|$)")
_YEAR = re.compile(r"^([0-9]{2,4})(?:[^0-9]|$)")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def parse_cookie_date(text: str) -> int | None:
    """Parse a cookie date with the algorithm of RFC 6265 section 5.1.1; ``None`` if invalid."""
    hms: tuple[int, int, int] | None = None
    day = month = year = None
    for token in _DELIMS.split(text):
        if not token:
            continue
        if hms is None and (m := _TIME.match(token)):
            hms = (int(m[1]), int(m[2]), int(m[3]))
        elif day is None and (m := _DAY.match(token)):
            day = int(m[1])
        elif month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS.index(token[:3].lower()) + 1
        elif year is None and (m := _YEAR.match(token)):
            year = int(m[1])
    if hms is None or day is None or month is None or year is None:
        return None
    if 70 <= year <= 99:
        year += 1900
    elif 0 <= year <= 69:
        year += 2000
    h, mi, s = hms
    if not 1 <= day <= 31 or year < 1601 or h > 23 or mi > 59 or s > 59:
        return None
    try:
        return timegm((year, month, day, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        return None


def build_deletion(
    name: str,
    *,
    path: str = "/",
    domain: str | None = None,
    secure: bool = False,
    partitioned: bool = False,
) -> bytes:
    """A ``Set-Cookie`` value that expires ``name`` for the given Path/Domain.

    Obeys the cookie prefixes: ``__Host-`` cookies get ``Secure; Path=/`` and no Domain,
    ``__Secure-`` cookies get ``Secure``. ``Partitioned`` implies ``Secure``.
    """
    if name.startswith("__Host-"):
        path, domain, secure = "/", None, True
    elif name.startswith("__Secure-"):
        secure = True
    if partitioned:
        secure = True
    parts = [f"{name}=", "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT", f"Path={path}"]
    if domain:
        parts.append(f"Domain={domain}")
    if secure:
        parts.append("Secure")
    if partitioned:
        parts.append("Partitioned")
    return "; ".join(parts).encode("latin-1")


def deletion_variants(
    name: str,
    *,
    path: str,
    domains: tuple[str, ...],
    secure: bool,
    partitioned: bool = False,
) -> list[bytes]:
    """Deletion headers for every place the cookie may live: host-only and each listed Domain.

    A browser only removes a cookie whose Domain (or host-only flag) and Path match, so a rule that
    lists domains gets one header per domain plus the host-only variant (deduplicated; ``__Host-``
    cookies have only the host-only variant).
    """
    out: list[bytes] = []
    for domain in (None, *domains):
        header = build_deletion(
            name, path=path, domain=domain, secure=secure, partitioned=partitioned
        )
        if header not in out:
            out.append(header)
    return out

"""Cookie and Set-Cookie header handling (RFC 6265 / RFC 6265bis), on raw header bytes.

Nothing here raises on malformed input: a header that cannot be understood is reported as such
(``None``) so the caller can drop it, never turned into an exception.
"""

from __future__ import annotations

import re
import time
from calendar import monthrange, timegm
from collections.abc import Iterable
from typing import Any

__all__ = [
    "build_deletion",
    "bytes_headers",
    "cookie_names",
    "cookie_pairs",
    "deletion_variants",
    "header_bytes",
    "is_deletion",
    "parse_cookie_date",
    "plain_cookie_date",
    "set_cookie_name",
]


def header_bytes(value: object) -> bytes | None:
    """A response header's name or value as bytes, whatever type the application gave it.

    ASGI says bytes, but servers pass other types through to the wire: ``str`` (h11),
    ``memoryview`` (httptools), ``bytearray``. ``None`` for anything that is no header at all
    (or a ``str`` beyond Latin-1), which the caller drops: it may be a ``Set-Cookie``.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value)
        except (TypeError, ValueError, BufferError):  # a released memoryview
            return None
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            return None
    return None


def bytes_headers(headers: Iterable[Any]) -> list[tuple[bytes, bytes]]:
    """A response's headers as bytes (see :func:`header_bytes`), without those that cannot be
    read (or are no pair)."""
    out = []
    for item in headers:
        try:
            name, value = item
        except (TypeError, ValueError):
            continue
        name, value = header_bytes(name), header_bytes(value)
        if name is not None and value is not None:
            out.append((name, value))
    return out


def cookie_pairs(header: bytes) -> list[tuple[str, bytes]]:
    """Split a request ``Cookie`` header into ``(name, raw_pair)`` items.

    ``raw_pair`` is the pair exactly as sent (``name=value``), so a filtered header can be
    rebuilt byte for byte. A pair with no ``=`` has the empty name (RFC 6265bis 5.6). Names are
    decoded as Latin-1, which cannot fail.
    """
    parts = header.split(b";")
    return [(name, parts[at].strip(b" \t")) for at, name in cookie_names(header)]


def cookie_names(header: bytes) -> list[tuple[int, str]]:
    """The names of a request ``Cookie`` header's pairs, each with where the pair is in
    ``header.split(b";")`` (stripped of spaces and tabs, it is the pair as sent): the items
    of :func:`cookie_pairs`, in order, by position."""
    out = []
    for at, part in enumerate(header.split(b";")):
        part = part.strip(b" \t")
        if not part:
            continue
        eq = part.find(b"=")
        name = b"" if eq < 0 else part[:eq].strip(b" \t")
        out.append((at, name.decode("latin-1")))
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


_INTEGER = re.compile(rb"-?[0-9]+")  # a valid Max-Age (RFC 6265bis 5.6.2)
_SIGNED_INTEGER = re.compile(rb"[+-]?[0-9]+")  # one Chromium reads as a number
# RFC 6265bis 5.6, and Chromium: an attribute value longer than this is ignored.
_ATTR_VALUE_MAX = 1024
# A date that RFC 6265bis 5.1.1 and Chromium's cookie date parser read alike: an optional
# weekday, day, month, year (two or four digits) and hh:mm:ss, separated by spaces or dashes
# (RFC 9110's IMF-fixdate and the older RFC 850 form).
_PLAIN_DATE = re.compile(
    rb"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,? )?([0-9]{1,2})[ -]([a-z]{3})[ -]"
    rb"([0-9]{4}|[0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?: gmt)?",
    re.IGNORECASE,
)
_ATTRS_CACHE_LIMIT = 1024
_ATTRS_MAX = 512
# Attribute part of a Set-Cookie value -> (Max-Age verdict or None, Expires timestamp or None).
# The attributes of a site's cookies repeat on every response while the values change, so the
# parsing is done once per distinct attribute string; the Expires date is compared each time.
_attrs_cache: dict[bytes, tuple[bool | None, int | None]] = {}


def _deletion_attrs(attrs: bytes) -> tuple[bool | None, int | None]:
    """How the attributes of a ``Set-Cookie`` value (after its first ``;``) decide whether it
    deletes: ``(True, None)`` or ``(False, None)`` whenever; ``(None, ts)`` when the time
    ``ts`` is past. A deletion only when every reading deletes (see :func:`is_deletion`)."""
    low = attrs.lower()
    if b"max-age" not in low and b"expires" not in low:
        return False, None
    max_ages: list[bytes] = []
    expires: list[bytes] = []
    for part in attrs.split(b";"):
        name, _, value = part.partition(b"=")
        kind = name.strip().lower()  # (all whitespace: what the most lenient reading trims)
        if kind != b"max-age" and kind != b"expires":
            continue
        if name.strip(b" \t").lower() != kind:
            # Spacing that RFC 6265bis and Chromium keep in the name: some reading would not
            # see this attribute at all.
            return False, None
        value = value.strip(b" \t")
        if len(value) <= _ATTR_VALUE_MAX:  # longer values are ignored, in both readings
            (max_ages if kind == b"max-age" else expires).append(value)
    latest: int | None = None  # the latest Expires date a reading goes by
    # RFC 6265bis 5.6-5.7: the last valid Max-Age wins; else the last valid Expires.
    for value in reversed(max_ages):
        if _INTEGER.fullmatch(value):
            if not _not_positive(value):
                return False, None
            break
    else:
        for value in reversed(expires):
            ts = parse_cookie_date(value.decode("latin-1"))
            if ts is not None:
                latest = ts
                break
        else:
            return False, None  # no expiry: a session cookie
    # Chromium: the last Max-Age when it reads as an integer (a sign allowed, overflow
    # saturating), else the last Expires unless empty, parsed by its own date parser; this
    # side takes only plain dates, which the two parsers read alike.
    if max_ages and _SIGNED_INTEGER.fullmatch(max_ages[-1]):
        if not _not_positive(max_ages[-1]):
            return False, None
    else:
        ts = plain_cookie_date(expires[-1]) if expires else None
        if ts is None:
            return False, None
        latest = ts if latest is None else max(latest, ts)
    return (True, None) if latest is None else (None, latest)


def _not_positive(integer: bytes) -> bool:
    """Whether an integer written in digits (a sign allowed) is <= 0, read by its sign and
    digits: ``int()`` refuses numbers of more than 4,300 digits."""
    return integer.startswith(b"-") or not integer.lstrip(b"+").strip(b"0")


def is_deletion(value: bytes, now: float | None = None) -> bool:
    """True when a ``Set-Cookie`` value removes the cookie in every reading of it: RFC 6265bis
    (the last valid ``Max-Age``, else the last valid ``Expires``) and Chromium's (the last
    ``Max-Age`` whatever it holds, else the last ``Expires``; impossible dates refused).

    Chromium's side takes only dates written plainly (``Thu, 01 Jan 1970 00:00:00 GMT``, or with
    dashes), which its parser and RFC 6265bis read alike. A header the readings disagree on
    (``Max-Age=0; Max-Age=abc``: RFC 6265bis deletes, Chromium keeps a session cookie) is a
    cookie being set. Deletions pass the filter: removing a cookie never needs consent."""
    # Attributes start at the first ";": the name and value before it never count.
    _, semi, attrs = value.partition(b";")
    if not semi:
        return False
    found = _attrs_cache.get(attrs)
    if found is None:
        found = _deletion_attrs(attrs)
        if len(attrs) <= _ATTRS_MAX:
            if len(_attrs_cache) >= _ATTRS_CACHE_LIMIT:
                _attrs_cache.clear()
            _attrs_cache[attrs] = found
    fixed, expires = found
    if expires is None:
        return bool(fixed)
    return expires <= (time.time() if now is None else now)


def plain_cookie_date(value: bytes) -> int | None:
    """The time of a cookie date written plainly (see ``_PLAIN_DATE``), which every reading
    parses alike; ``None`` for anything else, or a date that does not exist."""
    m = _PLAIN_DATE.fullmatch(value)
    if m is None:
        return None
    month = m[2].decode("ascii").lower()
    if month not in _MONTHS:
        return None
    year = int(m[3])
    if len(m[3]) == 2:
        year += 1900 if year >= 70 else 2000
    return _timestamp(year, _MONTHS.index(month) + 1, int(m[1]), int(m[4]), int(m[5]), int(m[6]))


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
    return _timestamp(year, month, day, *hms)


def _timestamp(year: int, month: int, day: int, h: int, mi: int, s: int) -> int | None:
    """Seconds since the epoch of a UTC time, or ``None`` when RFC 6265bis 5.1.1 refuses it: a
    day the month does not have (31 February is not 3 March), an hour past 23, a year before
    1601."""
    if year < 1601 or h > 23 or mi > 59 or s > 59:
        return None
    if not 1 <= day <= monthrange(year, month)[1]:
        return None
    return timegm((year, month, day, h, mi, s, 0, 0, 0))


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

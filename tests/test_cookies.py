"""Cookie / Set-Cookie parsing and deletion headers."""

from __future__ import annotations

from calendar import timegm

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.cookies import (
    build_deletion,
    cookie_pairs,
    is_deletion,
    parse_cookie_date,
    set_cookie_name,
)


def test_cookie_pairs_keep_raw_bytes() -> None:
    pairs = cookie_pairs(b'a=1; b="quoted; value"; c=; noequals ;d=x=y')
    assert [n for n, _ in pairs] == ["a", "b", "", "c", "", "d"]
    assert pairs[-1][1] == b"d=x=y"
    assert pairs[3][1] == b"c="


def test_cookie_pairs_non_utf8_and_empty() -> None:
    assert cookie_pairs(b"") == []
    assert cookie_pairs(b" ; ;") == []
    pairs = cookie_pairs(b"n\xffme=v\xfe")
    assert pairs == [("n\xffme", b"n\xffme=v\xfe")]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b"sid=abc; Path=/; HttpOnly", "sid"),
        (b"  sid  =abc", "sid"),
        (b"_ga=GA1.2.3; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Domain=.example.org", "_ga"),
        (b'q="a;b"; Path=/', "q"),
        (b"noequals; Path=/", ""),
        (b"=value", ""),
        (b"a=b=c; Partitioned; Priority=High; Secure", "a"),
        (b"", ""),
    ],
)
def test_set_cookie_name(header: bytes, name: str) -> None:
    assert set_cookie_name(header) == name


NOW = timegm((2026, 11, 25, 12, 0, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("header", "deletion"),
    [
        (b"a=; Max-Age=0", True),
        (b"a=; max-age=-1; Path=/", True),
        (b"a=1; Max-Age=3600", False),
        (b"a=1; Max-Age=3600; Expires=Thu, 01 Jan 1970 00:00:00 GMT", False),
        (b"a=; Max-Age=0; Expires=Wed, 21 Oct 2099 07:28:00 GMT", True),
        (b"a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT", True),
        (b"a=; expires=Thursday, 01-Jan-70 00:00:01 GMT", True),
        (b"a=1; Expires=Wed, 21 Oct 2099 07:28:00 GMT", False),
        (b"a=1; Expires=not a date", False),
        (b"a=1; Max-Age=soon", False),
        (b"a=1; Max-Age=5; Max-Age=0", True),
        (b"a=; Max-Age=000", True),
        (b"a=1; Max-Age=" + b"9" * 5000, False),
        (b"a=; Max-Age=-" + b"9" * 1000, True),
        # (values of more than 1,024 bytes are ignored: no expiry, a session cookie)
        (b"a=; Max-Age=-" + b"9" * 5000, False),
        (b"a=1", False),
        (b"max-age=0", False),
        # Deletions in every reading: RFC 6265bis and Chromium both go by the last Max-Age.
        (b"a=; Max-Age=abc; Max-Age=0", True),
        (b"a=; Max-Age=0; Expires=bogus", True),
        (b"a=; Expires=Sat, 31 Feb 2099 00:00:00 GMT; Expires=Thu, 01 Jan 1970 00:00:00 GMT", True),
        (b"a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=abc", True),
        (b"a=; Max-Age= 0 ", True),
    ],
)
def test_is_deletion(header: bytes, deletion: bool) -> None:
    assert is_deletion(header, now=NOW) is deletion


@pytest.mark.parametrize(
    "attributes",
    [
        # RFC 6265bis deletes by the last *valid* Max-Age; Chromium reads the last Max-Age,
        # fails to, and keeps a session cookie.
        b"Max-Age=0; Max-Age=abc",
        b"Max-Age=0; Max-Age=",
        b"Max-Age=0; Max-Age=1e9",
        b"Max-Age=0; Max-Age",
        b"Max-Age=0; Max-Age=0x10",
        b'Max-Age=0; Max-Age="0"',
        b"Max-Age=0; Max-Age=+5",
        b"Max-Age=0; Max-Age=-",
        # ... the same with Expires
        b"Expires=Thu, 01 Jan 1970 00:00:00 GMT; Expires=bogus",
        b"Expires=Thu, 01 Jan 1970 00:00:00 GMT; Expires=",
        b"Expires=Thu, 01 Jan 1970 00:00:00 GMT; Expires=Sat, 31 Feb 2099 00:00:00 GMT",
        # a day February does not have is no date (it is not 3 March)
        b"Expires=Sat, 31 Feb 1970 00:00:00 GMT",
        b"Expires=Fri, 29 Feb 2019 00:00:00 GMT",
        # Chromium saturates a date before 1601 to the past; RFC 6265bis refuses it
        b"Expires=Thu, 01 Jan 1500 00:00:00 GMT",
        # a Max-Age of more than 1,024 bytes is ignored: the Expires decides
        b"Max-Age=" + b"0" * 1025 + b"; Expires=Thu, 01 Jan 2099 00:00:00 GMT",
        # spacing in the name that not every reading trims
        b"\x0bMax-Age=0",
    ],
)
def test_a_header_the_readings_disagree_on_is_no_deletion(attributes: bytes) -> None:
    assert is_deletion(b"px_uid=x; " + attributes, now=NOW) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", (2015, 10, 21, 7, 28, 0)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", (1994, 11, 6, 8, 49, 37)),
        ("Sun Nov  6 08:49:37 1994", (1994, 11, 6, 8, 49, 37)),
        ("6 Nov 2030 8:9:7", (2030, 11, 6, 8, 9, 7)),
    ],
)
def test_parse_cookie_date(text: str, expected: tuple[int, ...]) -> None:
    assert parse_cookie_date(text) == timegm((*expected, 0, 0, 0))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "32 Jan 2020 00:00:00",
        "1 Jan 1500 00:00:00",
        "1 Foo 2020 1:1:1",
        "31 Feb 1970 00:00:00",
        "29 Feb 2100 00:00:00",
        "31 Apr 2030 00:00:00",
    ],
)
def test_parse_cookie_date_invalid(text: str) -> None:
    assert parse_cookie_date(text) is None


def test_build_deletion() -> None:
    assert build_deletion("a") == b"a=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"
    assert build_deletion("a", path="/x", domain=".example.org", secure=True) == (
        b"a=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/x; Domain=.example.org; Secure"
    )
    host = build_deletion("__Host-a", path="/x", domain="example.org")
    assert host == b"__Host-a=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure"
    assert build_deletion("__Secure-a").endswith(b"; Secure")
    assert build_deletion("p", partitioned=True).endswith(b"; Secure; Partitioned")
    for header in (host, build_deletion("a"), build_deletion("p", partitioned=True)):
        assert is_deletion(header)
        assert set_cookie_name(header) in {"__Host-a", "a", "p"}


@given(st.binary(max_size=300))
def test_parsers_never_raise(data: bytes) -> None:
    cookie_pairs(data)
    set_cookie_name(data)
    is_deletion(data)
    parse_cookie_date(data.decode("latin-1"))

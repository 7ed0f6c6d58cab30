"""The consent cookie against a reference reading made only of public parts: itsdangerous'
``Signer`` and ``URLSafeTimedSerializer`` deriving their own keys, ``base64_decode``, ``uuid``
and the ``ConsentState`` constructor. Payloads are signed with the site's keys (what a key
holder could write, well formed or not), then edited, so that the fast signature check, the
usual-ids reading and the decided state made without the constructor are all compared with
the plain way, through ``loads`` as the middleware calls it.
"""

from __future__ import annotations

import hashlib
import struct
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from consent.policy import load_policy
from consent.state import ConsentCookie, ConsentState

from .helpers import EXAMPLE_POLICY, cookie_signer

KEY = "consent-cookie-review-key-0123456789ab"
OLD_KEY = "consent-cookie-review-old-0123456789ab"
GONE_KEY = "consent-cookie-review-gone-012345678a"
POLICY = load_policy(EXAMPLE_POLICY)
OPTIONAL = frozenset(POLICY.optional)
ORDER = sorted(OPTIONAL)
LIFETIME = POLICY.site.consent_cookie.max_age
REVISION = POLICY.short_revision
NOW = int(time.time())
NO_DECISION = ConsentState(necessary=POLICY.necessary)


SIGNERS = {3: cookie_signer([KEY, OLD_KEY], 3), 2: cookie_signer([KEY, OLD_KEY], 2)}
FIRST = URLSafeTimedSerializer(
    [OLD_KEY, KEY],
    salt="asgi-consent.cookie",
    signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
)


def _id(kind: int, data: bytes, at: int) -> tuple[str | None, int]:
    if kind == 0:
        return None, at
    if kind == 3:
        end = at + 1 + data[at]
        if end > len(data):
            raise ValueError("cut short")
        return data[at + 1 : end].decode("utf-8"), end
    if at + 16 > len(data):
        raise ValueError("cut short")
    raw = uuid.UUID(bytes=bytes(data[at : at + 16]))
    return (raw.hex if kind == 1 else str(raw)), at + 16


def _decided(granted: frozenset[str], receipt: str | None, subject: str, at: int) -> ConsentState:
    return ConsentState(
        granted=granted,
        denied=OPTIONAL - granted,
        decided=True,
        necessary=POLICY.necessary,
        revision=REVISION,
        receipt_id=receipt,
        subject_id=subject,
        decided_at=at,
        expires_at=at + LIFETIME,
    )


def reference(value: str, now: float) -> tuple[ConsentState, str | None]:
    """What the documented format means, read the plain way."""
    if len(value) > 4096:
        return NO_DECISION, None
    found: tuple[ConsentState | None, str | None, int] = (None, None, 0)
    payload: bytes | None = None
    try:
        for version in (3, 2):
            try:
                payload = SIGNERS[version].unsign(value)
                break
            except BadData:
                pass
    except UnicodeError:
        return NO_DECISION, None
    if payload is None:
        try:
            obj, signed = FIRST.loads(value, return_timestamp=True)
            at = int(signed.timestamp())
        except (BadData, ValueError, TypeError, UnicodeError, OverflowError, OSError):
            obj, at = None, 0
        if isinstance(obj, dict) and isinstance(obj.get("s"), str) and obj["s"]:
            subject, granted, receipt = obj["s"], obj.get("g"), obj.get("i")
            if (
                obj.get("r") != REVISION
                or not isinstance(granted, list)
                or not all(isinstance(g, str) for g in granted)
                or not (receipt is None or isinstance(receipt, str))
            ):
                found = (None, subject, at)
            else:
                found = (_decided(frozenset(granted) & OPTIONAL, receipt, subject, at), subject, at)
    else:
        try:
            data = base64_decode(payload)
            written, at, kinds, revision = struct.unpack_from(">BIB8s", data)
            subject, end = _id(kinds & 3, data, 14)
            receipt, end = _id(kinds >> 2 & 3, data, end)
        except (BadData, ValueError, IndexError, UnicodeError, struct.error):
            written, subject = -1, None
        if written == version and subject:
            bits = data[end:]
            if revision.hex() != REVISION or len(bits) != (len(ORDER) + 7) // 8:
                found = (None, subject, at)
            else:
                mask = int.from_bytes(bits, "little")
                granted = frozenset(k for i, k in enumerate(ORDER) if mask >> i & 1)
                found = (_decided(granted, receipt, subject, at), subject, at)
    state, subject, at = found
    if now - at > LIFETIME:
        return NO_DECISION, None
    return (NO_DECISION if state is None else state), subject


def _id_bytes(draw: st.DrawFn, kind: int) -> bytes:
    if kind == 0:
        return b""
    if kind in (1, 2):
        return draw(st.binary(min_size=16, max_size=16))
    text = draw(st.binary(max_size=40))
    length = draw(st.one_of(st.just(len(text)), st.integers(0, 255)))
    return bytes((length,)) + text


@st.composite
def signed_values(draw: st.DrawFn) -> str:
    """A payload signed by a key of the site (or one it never had), well formed or not."""
    version = draw(st.sampled_from([3, 3, 2]))
    if draw(st.integers(0, 4)) == 0:
        data = draw(st.binary(max_size=70))
    else:
        # mostly as the endpoints write it: a hex subject id, a hyphenated receipt id
        usual = draw(st.booleans())
        subject_kind = 1 if usual else draw(st.integers(0, 3))
        receipt_kind = 2 if usual else draw(st.integers(0, 3))
        data = struct.pack(
            ">BIB8s",
            draw(st.sampled_from([version, version, version, 5 - version, 1, 255])),
            draw(st.sampled_from([NOW - 5, NOW - LIFETIME, NOW - LIFETIME - 1, NOW + 10**6, 0])),
            subject_kind | receipt_kind << 2 | draw(st.sampled_from([0, 0, 0, 0x10, 0xF0])),
            draw(st.sampled_from([bytes.fromhex(REVISION)] * 3 + [b"\0" * 8])),
        )
        data += _id_bytes(draw, subject_kind) + _id_bytes(draw, receipt_kind)
        mask_size = (len(ORDER) + 7) // 8
        data += draw(st.binary(min_size=mask_size, max_size=mask_size) | st.binary(max_size=2))
    keys = draw(st.sampled_from([[KEY], [OLD_KEY], [GONE_KEY]]))
    return cookie_signer(keys, version).sign(base64_encode(data)).decode()


@st.composite
def edited(draw: st.DrawFn, values: st.SearchStrategy[str]) -> str:
    value = draw(values)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(value)))
        char = draw(st.sampled_from([*"AZaz09-_.=+/~! ", "é", "\udc80", "\x00", ".."]))
        how = draw(st.integers(0, 3))
        if how == 0:
            value = value[:at] + char + value[at + 1 :]
        elif how == 1:
            value = value[:at] + char + value[at:]
        elif how == 2:
            value = value[:at] + value[at + 1 :]
        else:
            value = value[:at]
    return value


first_format = st.sampled_from(
    [
        FIRST.dumps({"r": REVISION, "g": ["analytics", "nope"], "i": None, "s": "s-1"}),
        FIRST.dumps({"r": REVISION, "g": "analytics", "s": "s-1"}),
        FIRST.dumps({"r": "0" * 16, "g": [], "s": "s-2"}),
        FIRST.dumps([1, 2]),
        FIRST.dumps({"s": ""}),
    ]
)


@settings(max_examples=600, deadline=None)
@given(
    value=st.one_of(signed_values(), edited(signed_values()), edited(first_format)),
    now=st.sampled_from([0.0, float(NOW), float(NOW + LIFETIME)]),
)
def test_loads_reads_what_the_plain_reading_reads(value: str, now: float) -> None:
    """Every answer of ``loads`` (state, its hash, its ``allowed``, the subject id), also
    from its cache, is the plain reading's; nothing raises."""
    cookie = ConsentCookie([KEY, OLD_KEY], POLICY)
    expected = reference(value, now)
    for _ in range(3):  # verified, verified again (kept), then from the cache
        state, subject = cookie.loads(value, now=now)
        assert (state, subject) == expected
        assert repr(state) == repr(expected[0])
        assert hash(state) == hash(expected[0])
        assert state.allowed == expected[0].allowed


def test_a_decision_written_under_a_rotated_key_reads_in_every_version() -> None:
    """The first key signs; a retired key still verifies versions 3 and 2; a key the site no
    longer has verifies neither."""
    cookie = ConsentCookie([KEY, OLD_KEY], POLICY)
    state = cookie.decision(
        {"analytics"}, receipt_id=str(uuid.uuid4()), subject_id=uuid.uuid4().hex, decided_at=NOW
    )
    value = cookie.dumps(state)
    text = value.rsplit(".", 1)[0]
    assert cookie_signer([KEY], 3).sign(text).decode() == value
    data = base64_decode(text)
    text_2 = base64_encode(b"\x02" + data[1:])
    for keys, counts in (([OLD_KEY], True), ([GONE_KEY], False)):
        for version, signed in ((3, text), (2, text_2)):
            read = cookie.loads(cookie_signer(keys, version).sign(signed).decode(), now=NOW)[0]
            assert (read == state) is counts, (keys, version)
    # a version 2 signature on a version 3 payload, and the other way round: no decision
    assert cookie.loads(cookie_signer([KEY], 2).sign(text).decode(), now=NOW) == (NO_DECISION, None)
    assert cookie.loads(cookie_signer([KEY], 3).sign(text_2).decode(), now=NOW) == (
        NO_DECISION,
        None,
    )


def test_a_header_of_many_forged_consent_cookies_costs_a_bounded_number_of_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every consent cookie a header carries is verified on each request (forged ones are not
    kept): only the first four are read, so a header of a thousand forged ones costs four
    checks, and the visitor's own decision among the first four still counts."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from consent import ConsentMiddleware

    mw = ConsentMiddleware(Starlette(), policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")
    checks = 0
    verify = ConsentCookie._verify

    def counting(self: ConsentCookie, value: str) -> Any:
        nonlocal checks
        checks += 1
        return verify(self, value)

    monkeypatch.setattr(ConsentCookie, "_verify", counting)
    header = "; ".join(["consent=A.A.A"] * 1000)
    genuine = mw.cookie.dumps(
        mw.cookie.decision({"analytics"}, receipt_id=None, subject_id=uuid.uuid4().hex)
    )
    with TestClient(mw, base_url="http://testserver") as client:
        for _ in range(3):
            assert client.get("/_consent", headers={"Cookie": header}).json()["decided"] is False
        assert checks == 3 * 4
        mine = "; ".join(["consent=A.A.A"] * 3 + [f"consent={genuine}"])
        assert client.get("/_consent", headers={"Cookie": mine}).json()["granted"] == ["analytics"]

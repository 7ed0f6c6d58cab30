"""The consent cookie: its compact format, what it refuses, and the earlier format still read.

Every case runs through a real Starlette app behind the middleware (``TestClient``): what the app
sees in ``request.state.consent`` and the cookies it is handed, and what ``GET /_consent`` says.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent import state as state_module
from consent.policy import load_policy
from consent.receipts import hyphenated
from consent.state import ConsentCookie, ConsentState

from .helpers import EXAMPLE_POLICY, cookie_signer, copy_policy

KEY = "consent-cookie-test-key-0123456789abcdef"
OLD_KEY = "the-key-before-rotation-0123456789abcd"
HOST = "http://testserver"
POLICY = load_policy(EXAMPLE_POLICY)


async def echo(request: Request) -> JSONResponse:
    consent = request.state.consent
    return JSONResponse(
        {
            "decided": consent.decided,
            "granted": sorted(consent.granted),
            "receipt_id": consent.receipt_id,
            "subject_id": consent.subject_id,
            "cookies": sorted(request.cookies),
        }
    )


def app(policy: Path = EXAMPLE_POLICY, keys: str | list[str] = KEY) -> ConsentMiddleware:
    return ConsentMiddleware(
        Starlette(routes=[Route("/echo", echo)]), policy=policy, secret_key=keys, store="memory://"
    )


@pytest.fixture
def mw() -> ConsentMiddleware:
    return app()


@pytest.fixture
def client(mw: ConsentMiddleware) -> Iterator[TestClient]:
    with TestClient(mw, base_url=HOST) as c:
        yield c


def seen(client: TestClient, consent: str) -> dict[str, Any]:
    """What the app behind the middleware sees for this consent cookie value."""
    header = f"consent={consent}; stats_vid=1; px_uid=2; session=3".encode()
    data: dict[str, Any] = client.get("/echo", headers={"Cookie": header}).json()
    own = f"consent={consent}".encode()
    data["state"] = client.get("/_consent", headers={"Cookie": own}).json()
    return data


def undecided(data: dict[str, Any]) -> bool:
    """No decision: nothing granted, the analytics and marketing cookies withheld."""
    return (
        data["decided"] is False
        and data["granted"] == []
        and data["cookies"] == ["consent", "session"]
        and data["state"]["decided"] is False
    )


def new_cookie(
    cookie: ConsentCookie,
    granted: set[str],
    *,
    subject: str = "0193a5b2c4d67e8f9a0b1c2d3e4f5a6b",
    receipt: str | None = "0193a5b2-c4d6-7e8f-9a0b-1c2d3e4f5a6b",
    at: int | None = None,
) -> str:
    return cookie.dumps(
        cookie.decision(granted, receipt_id=receipt, subject_id=subject, decided_at=at)
    )


def old_cookie(keys: list[str], payload: Any, at: int | None = None) -> str:
    """A cookie of the earlier format, as that version wrote it (itsdangerous'
    ``URLSafeTimedSerializer``, the first key signing)."""
    serializer = URLSafeTimedSerializer(
        list(reversed(keys)),
        salt="asgi-consent.cookie",
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )
    signed_at = int(time.time()) if at is None else at
    signer = serializer.make_signer()
    signer.get_timestamp = lambda: signed_at  # type: ignore[method-assign]
    return signer.sign(serializer.dump_payload(payload)).decode("ascii")


def version_2(value: str, keys: Sequence[str] = (KEY,)) -> str:
    """The cookie the previous release wrote for the decision in ``value``: the same payload
    with version 2, signed with HMAC-SHA256."""
    return cookie_signer(keys, 2).sign(b64(b"\x02" + payload_of(value)[1:])).decode()


def payload_of(value: str) -> bytes:
    data = value.rsplit(".", 1)[0]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------- the format


def test_a_decision_is_read_back_as_it_was_made(mw: ConsentMiddleware, client: TestClient) -> None:
    at = int(time.time()) - 30
    value = new_cookie(mw.cookie, {"analytics", "embedded"}, at=at)
    data = seen(client, value)
    assert data["decided"] is True
    assert data["granted"] == ["analytics", "embedded"]
    assert data["subject_id"] == "0193a5b2c4d67e8f9a0b1c2d3e4f5a6b"
    assert data["receipt_id"] == "0193a5b2-c4d6-7e8f-9a0b-1c2d3e4f5a6b"
    assert data["cookies"] == ["consent", "session", "stats_vid"]
    assert data["state"]["decided_at"] == at
    assert data["state"]["expires"] == at + mw.cookie.lifetime
    # Ids that are not UUIDs are written as text, and come back the same.
    for subject, receipt in [("s", None), ("ü" * 100, "r-1"), ("A" * 32, "0" * 36)]:
        state, sub = mw.cookie.loads(new_cookie(mw.cookie, set(), subject=subject, receipt=receipt))
        assert (state.decided, sub, state.receipt_id) == (True, subject, receipt)
    with pytest.raises(ValueError, match="too long"):
        new_cookie(mw.cookie, set(), subject="s" * 256)


def test_the_cookie_is_compact(mw: ConsentMiddleware) -> None:
    """Version, time, revision prefix, two UUIDs and the category bits, signed: 86 characters
    in all, 21 fewer than version 2's and under half of the first format's (the sizes are in
    docs/middleware.md)."""
    everything = set(POLICY.optional)
    value = new_cookie(mw.cookie, everything)
    data = payload_of(value)
    assert data[0] == 3  # the version
    assert data[6:14] == bytes.fromhex(POLICY.short_revision)
    assert data[-1] == 0b1111  # four optional categories, every one granted
    assert len(value) == 86
    assert len(version_2(value)) == 107
    old = old_cookie(
        [KEY],
        {
            "r": POLICY.short_revision,
            "g": sorted(everything),
            "i": "0193a5b2-c4d6-7e8f-9a0b-1c2d3e4f5a6b",
            "s": "0193a5b2c4d67e8f9a0b1c2d3e4f5a6b",
        },
    )
    assert len(old) > 1.5 * len(value)


def test_bits_follow_the_category_keys_not_the_display_order(tmp_path: Path) -> None:
    """The revision covers the category keys but not their display order: a cookie written
    before the order changed keeps granting the same categories."""
    reordered = copy_policy(tmp_path)
    path = reordered / "analytics.toml"
    path.write_text(path.read_text().replace("order = 10", "order = 50"))
    assert load_policy(reordered).optional != POLICY.optional
    assert load_policy(reordered).short_revision == POLICY.short_revision
    value = new_cookie(ConsentCookie([KEY], POLICY), {"analytics", "preferences"})
    with TestClient(app(reordered), base_url=HOST) as client:
        data = seen(client, value)
    assert data["granted"] == ["analytics", "preferences"]
    assert data["cookies"] == ["consent", "session", "stats_vid"]


# --------------------------------------------------------------------------- refused cookies


def test_forged_cookies_are_no_decision(mw: ConsentMiddleware, client: TestClient) -> None:
    genuine = new_cookie(mw.cookie, set())
    signature = genuine.rsplit(".", 1)[1]
    data = bytearray(payload_of(genuine))
    data[-1] = 0b1111  # every category granted, the signature kept
    other = ConsentCookie(["a-key-the-site-never-had-0123456789"], POLICY)
    forged = {
        "bits edited": f"{b64(bytes(data))}.{signature}",
        "signature dropped": b64(bytes(data)),
        "signature truncated": genuine[:-5],
        "signature of another cookie": f"{b64(bytes(data))}.{new_cookie(mw.cookie, set(), subject='x' * 32).rsplit('.', 1)[1]}",
        "empty": "",
        "dots": "...",
        "not base64": "%%%.###",
        "not ASCII": "é.é",
    }
    for what, value in forged.items():
        assert undecided(seen(client, value)), what
    # Signed with a key the site does not have: no decision, and its subject is not taken on.
    value = new_cookie(other, set(POLICY.optional), subject="f" * 32)
    assert undecided(seen(client, value))
    answer = client.post(
        "/_consent", json={"accept": []}, headers={"Origin": HOST, "Cookie": f"consent={value}"}
    ).json()
    assert answer["event"] == "refused"
    assert answer["receipt"]["subject_id"] != "f" * 32


def test_a_signed_payload_that_does_not_parse_is_no_decision(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    """Even under the site's own key (a bug elsewhere, a leaked key): a payload cut short, of
    another version (one version's payload under the other's signature too) or with ids
    running past its end is no decision, never an error."""
    for version in (3, 2):
        genuine = bytes([version]) + payload_of(new_cookie(mw.cookie, {"analytics"}))[1:]
        bad = [genuine[:n] for n in range(len(genuine))]
        bad += [bytes([other]) + genuine[1:] for other in (0, 1, 2, 3, 4) if other != version]
        bad.append(genuine + b"\x00")
        bad.append(genuine[:5] + bytes([0b1111]) + genuine[6:])  # both ids as text, too short
        for payload in bad:
            value = cookie_signer([KEY], version).sign(b64(payload)).decode()
            assert undecided(seen(client, value)), (version, payload)
        assert seen(client, cookie_signer([KEY], version).sign(b64(genuine)).decode())["decided"]


def test_cookies_of_a_rotated_key_still_count() -> None:
    """The first key signs, every key verifies."""
    before = app(keys=OLD_KEY)
    rotated = app(keys=[KEY, OLD_KEY])
    issued_before = new_cookie(before.cookie, {"analytics"})
    issued_after = new_cookie(rotated.cookie, {"analytics"})
    with TestClient(rotated, base_url=HOST) as client:
        assert seen(client, issued_before)["granted"] == ["analytics"]
        assert seen(client, issued_after)["granted"] == ["analytics"]
    with TestClient(app(keys=KEY), base_url=HOST) as client:  # the old key retired
        assert undecided(seen(client, issued_before))
        assert seen(client, issued_after)["granted"] == ["analytics"]
    with TestClient(before, base_url=HOST) as client:  # not signed with the old key
        assert undecided(seen(client, issued_after))


def test_an_expired_cookie_is_no_decision(mw: ConsentMiddleware, client: TestClient) -> None:
    lifetime = mw.cookie.lifetime
    fresh = new_cookie(mw.cookie, {"analytics"}, at=int(time.time()) - lifetime + 60)
    expired = new_cookie(mw.cookie, {"analytics"}, at=int(time.time()) - lifetime - 1)
    assert seen(client, fresh)["granted"] == ["analytics"]
    assert undecided(seen(client, expired))
    # Kept in the cache, and still expired on the next look, as an hour later for the fresh one.
    assert undecided(seen(client, expired))
    assert mw.cookie.loads(fresh, now=time.time() + 3600)[0].decided is False


def test_a_policy_revision_change_asks_again_with_the_same_subject(tmp_path: Path) -> None:
    changed = copy_policy(tmp_path)
    path = changed / "analytics.toml"
    path.write_text(path.read_text().replace('title = "Analytics"', 'title = "Statistics"'))
    assert load_policy(changed).short_revision != POLICY.short_revision
    value = new_cookie(ConsentCookie([KEY], POLICY), {"analytics"})
    with TestClient(app(changed), base_url=HOST) as client:
        data = seen(client, value)
        assert undecided(data)
        assert data["state"]["revision_changed"] is True
        answer = client.post(
            "/_consent",
            json={"accept": ["analytics"]},
            headers={"Origin": HOST, "Cookie": f"consent={value}"},
        ).json()
    assert answer["receipt"]["subject_id"] == "0193a5b2c4d67e8f9a0b1c2d3e4f5a6b"


def test_an_oversize_cookie_is_no_decision_and_not_kept(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    genuine = new_cookie(mw.cookie, {"analytics"})
    for value in (genuine + "A" * 5000, "A" * 5000, genuine + "." + "A" * 3000):
        assert undecided(seen(client, value))
    assert all(len(v) < 200 for v in mw.cookie._cache)


def test_the_cache_of_verified_values_is_bounded_by_count_and_bytes(
    monkeypatch: pytest.MonkeyPatch, mw: ConsentMiddleware, client: TestClient
) -> None:
    monkeypatch.setattr(state_module, "_CACHE_LIMIT", 5)
    values = [new_cookie(mw.cookie, {"analytics"}, subject=f"{i:032x}") for i in range(8)]
    for value in values:
        assert seen(client, value)["granted"] == ["analytics"]
    assert list(mw.cookie._cache) == values[-5:]  # the oldest out first
    # Long ones (ids written as text): fewer of them fit in the bytes.
    long = [new_cookie(mw.cookie, set(), subject=f"{i}" + "s" * 250) for i in range(4)]
    cost = len(long[0]) + state_module._ENTRY_COST
    monkeypatch.setattr(state_module, "_CACHE_BYTES", 3 * cost)
    for value in long:
        assert seen(client, value)["decided"] is True
    assert list(mw.cookie._cache) == long[-3:]
    assert mw.cookie._cache_bytes == 3 * cost


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete"]),
            st.integers(0),
            st.sampled_from([*"aZ09-_.=+/ !é", "\x00"]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_an_edited_cookie_is_no_decision(edits: list[tuple[str, int, str]]) -> None:
    cookie = ConsentCookie([KEY], POLICY)
    genuine = new_cookie(cookie, set())
    value = genuine
    for kind, position, char in edits:
        i = position % (len(value) + 1)
        if kind == "replace" and value:
            i %= len(value)
            value = value[:i] + char + value[i + 1 :]
        elif kind == "insert":
            value = value[:i] + char + value[i:]
        elif value:
            value = value[: i % len(value)] + value[i % len(value) + 1 :]
    state, _ = cookie.loads(value)
    # (itsdangerous skips characters other than ASCII in a signature: the same decision)
    assert not state.decided or state == cookie.loads(genuine)[0]
    assert state.decided or value != genuine


# --------------------------------------------------------------------------- the earlier format


def test_a_cookie_of_the_earlier_format_still_counts_until_the_next_decision(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    subject, receipt = "0193a5b2c4d67e8f9a0b1c2d3e4f5a6b", "0193a5b2-c4d6-7e8f-9a0b-1c2d3e4f5a6b"
    at = int(time.time()) - 100
    payload = {"r": POLICY.short_revision, "g": ["analytics"], "i": receipt, "s": subject}
    old = old_cookie([KEY], payload, at)
    data = seen(client, old)
    assert data["decided"] is True
    assert data["granted"] == ["analytics"]
    assert (data["subject_id"], data["receipt_id"]) == (subject, receipt)
    assert data["cookies"] == ["consent", "session", "stats_vid"]
    assert data["state"]["decided_at"] == at
    # Signed with a retired key: still read.
    with TestClient(app(keys=[KEY, OLD_KEY]), base_url=HOST) as rotated:
        assert seen(rotated, old_cookie([OLD_KEY], payload))["granted"] == ["analytics"]
    # Expired, stale or forged in the earlier format: no decision.
    lifetime = mw.cookie.lifetime
    assert undecided(seen(client, old_cookie([KEY], payload, int(time.time()) - lifetime - 1)))
    assert undecided(seen(client, old_cookie([KEY], {**payload, "r": "0" * 16})))
    assert undecided(seen(client, old_cookie(["a-key-the-site-never-had-01234"], payload)))
    assert undecided(seen(client, old_cookie([KEY], {**payload, "g": "analytics"})))
    # The next decision writes the new format, continuing the same subject.
    response = client.post(
        "/_consent",
        json={"accept": ["analytics", "marketing"]},
        headers={"Origin": HOST, "Cookie": f"consent={old}"},
    )
    assert response.json()["event"] == "updated"
    assert response.json()["receipt"]["subject_id"] == subject
    new = response.cookies["consent"]
    assert payload_of(new)[0] == 3
    assert seen(client, new)["granted"] == ["analytics", "marketing"]


def test_the_signer_signs_as_itsdangerous_does_with_its_own_key_derivation() -> None:
    """The keys are derived once; a Signer deriving them itself, as documented (the last key
    of its list signing), writes the same cookies, and a cookie it signs with the retired key
    is read."""
    cookie = ConsentCookie([KEY, OLD_KEY], POLICY)
    value = new_cookie(cookie, {"analytics"})
    payload = value.rsplit(".", 1)[0]
    assert cookie_signer([KEY, OLD_KEY]).sign(payload).decode() == value
    retired = cookie_signer([OLD_KEY]).sign(payload).decode()
    assert retired != value
    assert cookie.loads(retired)[0].granted == {"analytics"}
    # The signature is keyed BLAKE2s of the signed text, 16 bytes, under the derived key.
    key = cookie_signer([KEY]).derive_key()
    tag = hashlib.blake2s(payload.encode(), key=key, digest_size=16).digest()
    assert value.rsplit(".", 1)[1] == b64(tag)


def test_a_cookie_of_version_2_still_counts_until_the_next_decision(
    mw: ConsentMiddleware, client: TestClient
) -> None:
    """A cookie the previous release wrote (HMAC-SHA256) keeps its decision, under a rotated
    key too; forged or expired it is no decision; the next decision writes version 3 for the
    same visitor."""
    at = int(time.time()) - 100
    current = new_cookie(mw.cookie, {"analytics"}, at=at)
    old = version_2(current)
    data = seen(client, old)
    assert data["decided"] is True
    assert data["granted"] == ["analytics"]
    assert data["subject_id"] == "0193a5b2c4d67e8f9a0b1c2d3e4f5a6b"
    assert data["receipt_id"] == "0193a5b2-c4d6-7e8f-9a0b-1c2d3e4f5a6b"
    assert data["cookies"] == ["consent", "session", "stats_vid"]
    assert data["state"]["decided_at"] == at
    assert mw.cookie.loads(old)[0] == mw.cookie.loads(current)[0]
    with TestClient(app(keys=[KEY, OLD_KEY]), base_url=HOST) as rotated:
        assert seen(rotated, version_2(current, [OLD_KEY]))["granted"] == ["analytics"]
    lifetime = mw.cookie.lifetime
    expired = new_cookie(mw.cookie, {"analytics"}, at=int(time.time()) - lifetime - 1)
    assert undecided(seen(client, version_2(expired)))
    assert undecided(seen(client, version_2(current, ["a-key-the-site-never-had-01234"])))
    edited = bytearray(payload_of(old))
    edited[-1] = 0b1111
    assert undecided(seen(client, f"{b64(bytes(edited))}.{old.rsplit('.', 1)[1]}"))
    response = client.post(
        "/_consent",
        json={"accept": ["analytics", "marketing"]},
        headers={"Origin": HOST, "Cookie": f"consent={old}"},
    )
    assert response.json()["event"] == "updated"
    assert response.json()["receipt"]["subject_id"] == "0193a5b2c4d67e8f9a0b1c2d3e4f5a6b"
    new = response.cookies["consent"]
    assert payload_of(new)[0] == 3
    assert seen(client, new)["granted"] == ["analytics", "marketing"]


def _mutations() -> st.SearchStrategy[str]:
    """Cookie values near genuine ones: signed by either key or another, edited, cut, joined
    with another value, or text that was never a cookie."""
    issued = [
        new_cookie(ConsentCookie([KEY], POLICY), {"analytics"}),
        new_cookie(ConsentCookie([OLD_KEY], POLICY), set()),
        new_cookie(ConsentCookie(["a-key-the-site-never-had-01234"], POLICY), set()),
    ]
    genuine = st.sampled_from(
        [*issued, version_2(issued[0]), version_2(issued[1], [OLD_KEY]), version_2(issued[2])]
    )
    edit = st.tuples(
        st.sampled_from(["replace", "insert", "delete", "cut"]),
        st.integers(0),
        st.sampled_from([*"aZ09-_.=+/ !é", "\x00", "\udc80", ".."]),
    )

    def apply(value: str, edits: list[tuple[str, int, str]]) -> str:
        for kind, position, char in edits:
            i = position % (len(value) + 1)
            if kind == "replace":
                value = value[:i] + char + value[i + 1 :]
            elif kind == "insert":
                value = value[:i] + char + value[i:]
            elif kind == "delete":
                value = value[:i] + value[i + 1 :]
            else:
                value = value[:i]
        return value

    return st.one_of(
        st.builds(apply, genuine, st.lists(edit, max_size=3)),
        st.text(max_size=120),
        st.builds(lambda a, b: a.rsplit(".", 1)[0] + "." + b.rsplit(".", 1)[-1], genuine, genuine),
    )


@settings(max_examples=500, deadline=None)
@given(value=_mutations())
def test_the_signature_check_answers_as_the_itsdangerous_signer_does(value: str) -> None:
    """``ConsentCookie`` checks signatures in one call on the request path; it accepts and
    rejects exactly what itsdangerous ``Signer``s deriving their own keys do (version 3's,
    then version 2's; rotated keys included), with the same payload."""
    cookie = ConsentCookie([KEY, OLD_KEY], POLICY)
    expected: tuple[bytes, int] | type[Exception] | None = None
    for version in (3, 2):
        try:
            expected = (cookie_signer([KEY, OLD_KEY], version).unsign(value), version)
            break
        except BadData:
            pass
        except UnicodeError:
            expected = UnicodeError
            break
    try:
        found: tuple[bytes, int] | type[Exception] | None = cookie._unsign(value)
    except UnicodeError:
        found = UnicodeError
    assert found == expected


def test_every_choice_is_read_back_as_the_plain_decision() -> None:
    """The sets of granted and refused categories are made once per choice read from a
    cookie: each choice reads back as ``decision`` makes it, and the sets kept are bounded."""
    cookie = ConsentCookie([KEY], POLICY)
    keys = sorted(POLICY.optional)
    for mask in range(1 << len(keys)):
        granted = {key for i, key in enumerate(keys) if mask >> i & 1}
        for _ in range(2):  # made, then kept
            state = cookie.decision(
                granted, receipt_id="r-1", subject_id="s-1", decided_at=int(time.time())
            )
            assert cookie.loads(cookie.dumps(state))[0] == state
    assert len(cookie._masks) == 1 << len(keys)
    assert len(cookie._masks) <= state_module._MASKS_LIMIT


@settings(max_examples=500, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=90),
        st.text(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=90
        ).map(str.encode),
        st.text("AZaz09-_+/=.! \n\x00", max_size=30).map(str.encode),
    )
)
def test_the_base64_reading_answers_as_itsdangerous_does(data: bytes) -> None:
    """Signatures and payloads are read from URL-safe base64 in one step; the same bytes as
    itsdangerous' ``base64_decode``, and ``ValueError`` where it raises ``BadData``."""
    try:
        expected: bytes | None = base64_decode(data)
    except BadData:
        expected = None
    try:
        found: bytes | None = state_module._b64decode(data)
    except ValueError:
        found = None
    assert found == expected


def test_a_state_read_from_a_cookie_is_the_plain_constructor_s() -> None:
    """A decided state read from a cookie is made without ``ConsentState``'s keyword
    arguments; it is the state that the constructor makes, in every field, its equality,
    hash and text, and as frozen."""
    cookie = ConsentCookie([KEY], POLICY)
    keys = sorted(POLICY.optional)
    at = int(time.time())
    for mask in range(1 << len(keys)):
        granted = {key for i, key in enumerate(keys) if mask >> i & 1}
        for receipt in ("0193a5b2-c4d6-7e8f-9a0b-1c2d3e4f5a6b", "r-1", None):
            value = new_cookie(cookie, granted, receipt=receipt, at=at)
            read = cookie._verify(value)[0]
            assert read is not None
            plain = ConsentState(
                granted=frozenset(granted),
                denied=frozenset(POLICY.optional) - granted,
                decided=True,
                necessary=POLICY.necessary,
                revision=POLICY.short_revision,
                receipt_id=receipt,
                subject_id="0193a5b2c4d67e8f9a0b1c2d3e4f5a6b",
                decided_at=at,
                expires_at=at + POLICY.site.consent_cookie.max_age,
            )
            assert type(read) is ConsentState
            assert read == plain
            assert hash(read) == hash(plain)
            assert repr(read) == repr(plain)
            for f in dataclasses.fields(ConsentState):
                assert getattr(read, f.name) == getattr(plain, f.name), f.name
            assert read.with_gpc(POLICY.sale_or_share) == plain.with_gpc(POLICY.sale_or_share)
            with pytest.raises(dataclasses.FrozenInstanceError):
                read.decided = False  # type: ignore[misc]


def test_the_usual_ids_are_read_as_the_general_reading_reads_them() -> None:
    """A cookie with a hex subject id and a hyphenated receipt id (as the endpoints write
    it) is read in one step; the general reading of the same payload gives the same state."""
    cookie = ConsentCookie([KEY], POLICY)
    receipt = "0193a5b2-c4d6-7e8f-9a0b-77e0aa11bb22"
    value = new_cookie(cookie, {"analytics"}, receipt=receipt, at=int(time.time()))
    data = payload_of(value)
    assert len(data) == cookie._usual_size
    assert data[5] == state_module._USUAL_KINDS
    usual = cookie._read(data)
    general = ConsentCookie([KEY], POLICY)
    general._usual_size = -1  # never the usual size: the general reading
    assert general._read(data) == usual
    assert usual[0] is not None
    assert usual[0].receipt_id == receipt


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=16, max_size=16))
def test_a_receipt_id_is_read_as_the_uuid_text(raw: bytes) -> None:
    """The usual receipt id is written out in C calls only; the same text as Python's UUID
    and as the general reading's ``hyphenated``."""
    text = state_module._uuid_text(raw)
    assert text == str(uuid.UUID(bytes=raw))
    assert text == hyphenated(raw.hex())

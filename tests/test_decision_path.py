"""The decision path's shortcuts give exactly what the general code gives.

A decision serialises its receipt once (:func:`canonical_json` written out field by field),
signs with kept HMAC keys, writes the consent cookie without itsdangerous' per-call key
derivation, and splices its JSON answer from pre-rendered parts. Each shortcut is checked here
against the general path it replaces.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import Signer
from starlette.applications import Starlette
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.endpoints.responses import _JSON, _js, stored_receipt_json
from consent.policy import load_policy
from consent.receipts import (
    ChainHead,
    Controller,
    Purpose,
    Receipt,
    ReceiptSigner,
    StoredReceipt,
    _canonical_reference,
    canonical_json,
    hyphenated,
    new_receipt_id,
    uuid7_hex,
)
from consent.state import ConsentCookie, new_subject_id
from consent.store import open_store
from consent.store.chain import link, link_all, seal

from .conftest import make_receipt
from .helpers import EXAMPLE_POLICY

KEY = "decision-path-key-0123456789"
HOST = "http://testserver"

text = st.text(max_size=40)
maybe_text = st.none() | text


@st.composite
def receipts(draw: st.DrawFn) -> Receipt:
    keys = draw(st.lists(st.text(min_size=1, max_size=12), max_size=5, unique=True))
    return Receipt(
        receipt_id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        subject_id=draw(st.text(min_size=1, max_size=40)),
        timestamp=draw(st.integers(0, 253_402_300_799)),
        event=draw(st.sampled_from(["given", "refused", "updated", "withdrawn"])),
        granted=draw(st.lists(text, max_size=4)),
        refused=draw(st.lists(text, max_size=4)),
        revision=draw(text),
        policy_url=draw(text),
        method=draw(st.sampled_from(["banner", "form", "api", "gpc"])),
        jurisdiction=draw(text),
        language=draw(text),
        controller=Controller(
            name=draw(text),
            email=draw(text),
            address=draw(maybe_text),
            url=draw(maybe_text),
            phone=draw(maybe_text),
            contact=draw(maybe_text),
        ),
        purposes=[
            Purpose(
                key=key,
                title=draw(text),
                necessary=draw(st.booleans()),
                granted=draw(st.booleans()),
                third_parties=draw(st.lists(text, max_size=2)),
            )
            for key in keys
        ],
        page=draw(maybe_text),
        ip=draw(st.none() | st.sampled_from(["203.0.113.77", "2001:db8::1", "bad"])),
        user_agent=draw(maybe_text),
        gpc=draw(st.booleans()),
    )


@settings(max_examples=300)
@given(receipts())
def test_canonical_json_is_the_reference_serialisation(receipt: Receipt) -> None:
    assert canonical_json(receipt) == _canonical_reference(receipt)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_canonical_json_of_unusual_values_takes_the_reference_path() -> None:
    receipt = make_receipt()
    # model_construct skips validation: an int where a bool belongs must stay an int.
    odd = Receipt.model_construct(**{**dict(receipt), "gpc": 1})
    assert canonical_json(odd) == _canonical_reference(odd)
    assert '"gpc":1' in canonical_json(odd)
    purpose = Purpose.model_construct(key="a", title="A", necessary=1, granted=True)
    with_odd_purpose = Receipt.model_construct(**{**dict(receipt), "purposes": [purpose]})
    assert canonical_json(with_odd_purpose) == _canonical_reference(with_odd_purpose)


def test_signatures_are_itsdangerous_signatures() -> None:
    signer = ReceiptSigner(["new-key", "old-key"])
    for salt, sign in (("consent-receipt", signer.sign), ("consent-chain", signer.sign_text)):
        reference = Signer("new-key", salt=salt, key_derivation="hmac", digest_method="sha256")
        for value in ("", "body", "é" * 300):
            kid, signature = sign(value)
            assert kid == signer.kid
            assert signature == reference.get_signature(value.encode()).decode()
    kid, signature = signer.sign("body")
    assert signer.verify("body", kid, signature)


def test_link_all_is_link_after_link() -> None:
    signer = ReceiptSigner([KEY])
    batch = [make_receipt() for _ in range(3)]
    rows, head = link_all(batch, signer, (7, "a" * 64))
    last = (7, "a" * 64)
    for receipt, row in zip(batch, rows, strict=True):
        expected, expected_head = link(receipt, signer, last)
        assert row == expected
        last = (expected.seq, expected.hash)
    assert head == expected_head == ChainHead.make(10, rows[-1].hash, signer)
    assert isinstance(rows[0], StoredReceipt)
    with pytest.raises(ValueError, match="nothing to link"):
        link_all([], signer, last)


def test_cookie_is_signed_at_the_moment_of_the_decision() -> None:
    # The answer to a POST and the receipt carry the decision's time; the cookie written after
    # the store's commit must say the same, even when a second has ticked in between.
    cookie = ConsentCookie(["k"], load_policy(EXAMPLE_POLICY))
    at = int(time.time()) - 3
    state = cookie.decision(["analytics"], receipt_id="r", subject_id="s", decided_at=at)
    loaded, _ = cookie.loads(cookie.dumps(state))
    assert loaded.decided_at == at
    assert loaded.expires_at == state.expires_at


# --------------------------------------------------------------------------- the answer


@pytest.fixture
def mw(tmp_path: Path) -> ConsentMiddleware:
    return ConsentMiddleware(
        Starlette(),
        policy=EXAMPLE_POLICY,
        secret_key=KEY,
        store=f"sqlite:///{tmp_path / 'consent.db'}",
    )


@pytest.fixture
def client(mw: ConsentMiddleware) -> Iterator[TestClient]:
    with TestClient(mw, base_url=HOST, client=("203.0.113.77", 50000)) as c:
        yield c


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"accept": ["analytics"], "page": "/a"}, {}),
        ({"accept": "all", "page": "/ü\u2028"}, {"Accept-Language": "de"}),
        ({"accept": "none"}, {"Sec-GPC": "1"}),
        ({"accept": "all"}, {"Sec-GPC": "1", "User-Agent": "x" * 600}),
    ],
)
def test_answer_is_the_state_and_the_stored_receipt(
    client: TestClient, mw: ConsentMiddleware, body: dict[str, object], headers: dict[str, str]
) -> None:
    response = client.post("/_consent", json=body, headers={"Origin": HOST, **headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Cookie"
    assert int(response.headers["content-length"]) == len(response.content)
    answer = response.json()
    assert list(answer) == ["receipt_id", "event", "state", "receipt"]

    endpoints = mw.endpoints
    store = open_store(endpoints._store_spec, endpoints.signer)  # type: ignore[arg-type]
    (stored,) = list(store.iter_rows())
    assert answer["receipt"] == stored.to_dict()
    assert answer["receipt_id"] == stored.receipt_id
    assert answer["event"] == stored.receipt.event

    # The receipt is what validating its own fields gives.
    receipt = stored.receipt
    assert Receipt.model_validate(receipt.model_dump(exclude={"time"})) == receipt

    # The state is what GET answers for the same cookie (and what state_json builds).
    state, _ = endpoints.cookie.loads(response.cookies["consent"])
    if "Sec-GPC" in headers:
        state = state.with_gpc(endpoints.policy.sale_or_share)
    expected = endpoints.state_json(state, state.subject_id, receipt.language, "/_consent")
    assert answer["state"] == expected
    assert client.get("/_consent", headers=headers).json() == expected


def test_decided_state_text_of_an_undecided_state(mw: ConsentMiddleware) -> None:
    endpoints = mw.endpoints
    state = endpoints.cookie.no_decision
    text = endpoints.decided_state_text(state, "en", "/x")
    assert json.loads(text) == endpoints.state_json(state, None, "en", "/x")


@given(st.binary(min_size=10, max_size=10), st.integers(0, 2**48 - 1))
def test_uuid7_hex_is_a_version_7_uuid_of_that_millisecond(random: bytes, ms: int) -> None:
    made = uuid7_hex(random, ms)
    u = uuid.UUID(hex=made)
    assert made == u.hex
    assert (u.version, u.variant) == (7, uuid.RFC_4122)
    assert u.int >> 80 == ms  # unix_ts_ms
    bits = int.from_bytes(random, "big")
    assert (u.int >> 64) & 0xFFF == (bits >> 64) & 0xFFF  # rand_a
    assert u.int & (2**62 - 1) == bits & (2**62 - 1)  # rand_b
    assert str(u) == hyphenated(made)


@given(st.binary(min_size=10, max_size=10), st.binary(min_size=10, max_size=10))
def test_uuid7_ids_sort_by_their_millisecond(a: bytes, b: bytes) -> None:
    ms = 1_795_000_000_123
    assert uuid7_hex(a, ms) < uuid7_hex(b, ms + 1)
    assert hyphenated(uuid7_hex(a, ms)) < hyphenated(uuid7_hex(b, ms + 1))


def test_new_ids_are_time_ordered_version_7_uuids() -> None:
    before = time.time_ns() // 1_000_000
    receipt_id, subject_id = new_receipt_id(), new_subject_id()
    after = time.time_ns() // 1_000_000
    for value in (receipt_id, subject_id):
        u = uuid.UUID(value)
        assert u.version == 7
        assert before <= u.int >> 80 <= after
    assert len(subject_id) == 32
    assert "-" in receipt_id
    assert len({new_receipt_id() for _ in range(1000)}) == 1000


def test_decisions_get_ids_that_sort_in_the_order_they_were_made(
    client: TestClient, mw: ConsentMiddleware
) -> None:
    """Receipt ids and new visitors' subject ids grow with time, so the store's indexes on them
    are appended to at one end (the log's own order) rather than at random places."""
    answers = []
    for _ in range(4):
        client.cookies.clear()
        response = client.post("/_consent", json={"accept": "all"}, headers={"Origin": HOST})
        assert response.status_code == 200, response.text
        answers.append(response.json()["receipt"])
        time.sleep(0.002)
    receipt_ids = [a["receipt_id"] for a in answers]
    subject_ids = [a["subject_id"] for a in answers]
    assert receipt_ids == sorted(receipt_ids)
    assert len(set(receipt_ids)) == 4
    assert subject_ids == sorted(subject_ids)
    assert len(set(subject_ids)) == 4
    for answer in answers:
        rid, sid = uuid.UUID(answer["receipt_id"]), uuid.UUID(answer["subject_id"])
        assert rid.version == sid.version == 7
        # the id's millisecond is the decision's second
        assert rid.int >> 80 == sid.int >> 80
        assert (rid.int >> 80) // 1000 == answer["timestamp"]


@given(
    st.text()
    | st.integers()
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False, allow_infinity=False)
)
def test_js_is_the_json_encoder(value: object) -> None:
    assert _js(value) == _JSON(value)


def test_stored_receipt_json_splices_only_what_it_sealed() -> None:
    signer = ReceiptSigner([KEY])
    receipt = make_receipt(page="/ü\u2028\"'")
    stored = seal(receipt, seq=3, prev_hash="b" * 64, signer=signer)
    spliced = stored_receipt_json(stored, receipt)
    assert json.loads(spliced) == stored.to_dict()
    # Another store's row (its receipt object is not the one passed): the general path.
    other = make_receipt(receipt_id=receipt.receipt_id, page="/ü\u2028\"'")
    assert stored_receipt_json(stored, other) == json.dumps(
        stored.to_dict(), ensure_ascii=False, separators=(",", ":")
    )

"""Receipts: the model, the canonical body, signatures with key rotation, Kantara output."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import Signer
from pydantic import ValidationError

from consent.kantara import to_kantara
from consent.receipts import (
    GENESIS_HASH,
    MAX_TIMESTAMP,
    ChainHead,
    Checkpoint,
    Controller,
    Purpose,
    Receipt,
    ReceiptSigner,
    StoredReceipt,
    canonical_json,
    chain_hash,
    event_for,
    key_id,
    truncate_ip,
)
from consent.store.chain import seal

from .conftest import make_receipt

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "kantara-cr-1.1.0.schema.json").read_text("utf-8")
)


# --------------------------------------------------------------------------- model


def test_receipt_defaults_and_time() -> None:
    receipt = make_receipt(timestamp=1795608000)
    assert receipt.time == "2026-11-25T12:00:00Z"
    assert len(receipt.receipt_id) == 36
    assert receipt.receipt_id.count("-") == 4
    assert make_receipt().receipt_id != receipt.receipt_id
    assert receipt.model_dump()["time"] == "2026-11-25T12:00:00Z"


def test_receipt_is_frozen_and_strict() -> None:
    receipt = make_receipt()
    with pytest.raises(ValidationError):
        receipt.event = "refused"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        make_receipt(event="maybe")
    with pytest.raises(ValidationError):
        make_receipt(method="carrier-pigeon")
    with pytest.raises(ValidationError):
        make_receipt(receipt_id="not-a-uuid")
    with pytest.raises(ValidationError):
        make_receipt(timestamp=-1)
    with pytest.raises(ValidationError):
        make_receipt(timestamp=MAX_TIMESTAMP + 1)
    with pytest.raises(ValidationError):
        make_receipt(unexpected="field")


def test_receipt_never_keeps_a_full_ip_address() -> None:
    assert make_receipt(ip="198.51.100.23").ip == "198.51.100.0"
    assert make_receipt(ip="2001:db8:abcd:1234::42").ip == "2001:db8:abcd::"
    assert make_receipt(ip="bogus").ip is None
    assert make_receipt(ip=None).ip is None


def test_receipt_caps_long_headers() -> None:
    receipt = make_receipt(user_agent="x" * 5000, page="https://example.org/" + "p" * 5000)
    assert receipt.user_agent is not None
    assert len(receipt.user_agent) == 512
    assert receipt.page is not None
    assert len(receipt.page) == 2048


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        (" 203.0.113.77 ", "203.0.113.0"),
        ("203.0.113.0", "203.0.113.0"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::"),
        ("[2001:db8:1234:5678::1]", "2001:db8:1234::"),
        ("fe80::1%eth0", "fe80::"),
        ("::ffff:192.0.2.128", "192.0.2.0"),
        ("::1", "::"),
        ("127.0.0.1", "127.0.0.0"),
        ("", None),
        ("not an ip", None),
        ("256.1.1.1", None),
        ("203.0.113.77:443", None),
    ],
)
def test_truncate_ip(ip: str, expected: str | None) -> None:
    assert truncate_ip(ip) == expected


@given(st.ip_addresses())
def test_truncate_ip_is_idempotent(addr: object) -> None:
    once = truncate_ip(str(addr))
    assert once is not None
    assert truncate_ip(once) == once


@pytest.mark.parametrize(
    ("previous", "granted", "withdraw", "event"),
    [
        (None, {"analytics"}, False, "given"),
        (None, set(), False, "refused"),
        (set(), {"analytics"}, False, "updated"),
        ({"analytics"}, set(), False, "withdrawn"),
        ({"analytics", "marketing"}, {"marketing"}, False, "updated"),
        (set(), set(), False, "updated"),
        ({"analytics"}, {"analytics", "marketing"}, False, "updated"),
        ({"analytics"}, set(), True, "withdrawn"),
        (None, set(), True, "withdrawn"),
    ],
)
def test_event_for(
    previous: set[str] | None, granted: set[str], withdraw: bool, event: str
) -> None:
    assert event_for(previous, granted, withdraw) == event


# --------------------------------------------------------------------------- canonical body


def test_canonical_json_is_sorted_compact_utf8() -> None:
    receipt = make_receipt(
        controller=Controller(name="Überwald GmbH", email="dpo@example.de"), language="de"
    )
    body = canonical_json(receipt)
    assert "\n" not in body
    assert '", "' not in body
    assert '": ' not in body
    assert "Überwald" in body  # not \u-escaped
    data = json.loads(body)
    assert list(data) == sorted(data)
    assert data["time"] == receipt.time
    assert body == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_from_body_round_trips() -> None:
    receipt = make_receipt()
    body = canonical_json(receipt)
    again = Receipt.from_body(body)
    assert again == receipt
    assert canonical_json(again) == body


text = st.text(max_size=40)


@given(
    subject=st.text(min_size=1, max_size=40),
    granted=st.lists(text, max_size=5),
    refused=st.lists(text, max_size=5),
    ts=st.integers(min_value=0, max_value=MAX_TIMESTAMP),
    ua=st.none() | st.text(max_size=600),
    gpc=st.booleans(),
)
def test_canonical_body_is_stable(
    subject: str, granted: list[str], refused: list[str], ts: int, ua: str | None, gpc: bool
) -> None:
    receipt = make_receipt(
        subject_id=subject,
        granted=granted,
        refused=refused,
        timestamp=ts,
        user_agent=ua,
        gpc=gpc,
    )
    body = canonical_json(receipt)
    assert canonical_json(Receipt.from_body(body)) == body


# --------------------------------------------------------------------------- signatures


def test_key_id_is_a_hash_prefix_not_the_key() -> None:
    key = "super-secret-key"
    assert key_id(key) == hashlib.sha256(key.encode()).hexdigest()[:12]
    signer = ReceiptSigner([key])
    assert signer.kid == key_id(key)
    kid, signature = signer.sign("body")
    assert key not in kid
    assert key not in signature


def test_sign_and_verify() -> None:
    signer = ReceiptSigner(["k1"])
    body = canonical_json(make_receipt())
    kid, signature = signer.sign(body)
    assert signer.verify(body, kid, signature)
    assert not signer.verify(body.replace("analytics", "marketing", 1), kid, signature)
    assert not signer.verify(body, kid, signature[:-2] + "AA")
    assert not signer.verify(body, kid, "")
    assert not signer.verify(body, kid, "ümlaut")


def test_rotation_old_receipts_still_verify() -> None:
    old = ReceiptSigner(["old-key"])
    body = canonical_json(make_receipt())
    old_kid, old_sig = old.sign(body)

    rotated = ReceiptSigner(["new-key", "old-key"])
    assert rotated.kid == key_id("new-key") != old_kid
    assert rotated.kids == (key_id("new-key"), key_id("old-key"))
    assert rotated.verify(body, old_kid, old_sig)  # retired key still verifies
    new_kid, new_sig = rotated.sign(body)  # the first key signs
    assert new_kid == key_id("new-key")
    assert rotated.verify(body, new_kid, new_sig)
    assert not old.verify(body, new_kid, new_sig)  # old deployment does not know the new key

    dropped = ReceiptSigner(["new-key"])
    assert not dropped.verify(body, old_kid, old_sig)  # key removed: fails
    assert not dropped.knows(old_kid)


def test_unknown_key_fails_even_with_a_valid_looking_kid() -> None:
    body = canonical_json(make_receipt())
    kid, signature = ReceiptSigner(["attacker"]).sign(body)
    signer = ReceiptSigner(["site-key"])
    assert not signer.verify(body, kid, signature)
    # Claiming the site's kid does not help either.
    assert not signer.verify(body, signer.kid, signature)


def test_text_signatures_are_separate_from_receipt_signatures() -> None:
    signer = ReceiptSigner(["k"])
    kid, signature = signer.sign("same text")
    assert not signer.verify_text("same text", kid, signature)
    kid, signature = signer.sign_text("same text")
    assert signer.verify_text("same text", kid, signature)
    assert not signer.verify("same text", kid, signature)


def test_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        ReceiptSigner([])
    with pytest.raises(ValueError, match="key"):
        ReceiptSigner([""])
    assert ReceiptSigner("single").kid == key_id("single")


def test_signer_from_env() -> None:
    signer = ReceiptSigner.from_env({"CONSENT_SECRET_KEY": " new , old ,"})
    assert signer.kids == (key_id("new"), key_id("old"))
    with pytest.raises(ValueError, match="CONSENT_SECRET_KEY"):
        ReceiptSigner.from_env({})
    with pytest.raises(ValueError, match="CONSENT_SECRET_KEY"):
        ReceiptSigner.from_env({"CONSENT_SECRET_KEY": " , "})


# --------------------------------------------------------------------------- chain records


def test_seal_links_and_hashes() -> None:
    signer = ReceiptSigner(["k"])
    first = seal(make_receipt(), seq=1, prev_hash=GENESIS_HASH, signer=signer)
    assert first.prev_hash == "0" * 64
    # The link is keyed: HMAC-SHA256 under the key derived for "consent-link" (as
    # itsdangerous derives it) over seq, prev_hash, kid and signature.
    link_key = hmac.new(b"k", b"consent-link", "sha256").digest()
    text = f"1\n{GENESIS_HASH}\n{first.kid}\n{first.signature}"
    expected = hmac.new(link_key, text.encode(), "sha256").hexdigest()
    assert first.hash == expected
    # not the unkeyed link of earlier versions, which anyone can compute
    assert first.hash != chain_hash(GENESIS_HASH, first.body, first.kid, first.signature)
    assert ReceiptSigner(["other"]).link_digest(text, first.kid) is None
    second = seal(make_receipt(), seq=2, prev_hash=first.hash, signer=signer)
    assert second.prev_hash == first.hash
    assert signer.verify(second.body, second.kid, second.signature)

    row = second.to_dict()
    for name in ("seq", "kid", "signature", "prev_hash", "hash", "body", "receipt_id", "time"):
        assert name in row
    assert row["seq"] == 2
    assert json.loads(second.to_json()) == row


@given(
    text=st.text(max_size=300),
    key=st.text(min_size=1, max_size=100).filter(lambda k: k.strip() == k and "," not in k),
)
def test_link_digests_are_hmac_sha256_under_the_derived_key(text: str, key: str) -> None:
    """The link's HMAC, from a keyed ``hmac`` object kept per key, is what ``hmac`` computes under the key
    itsdangerous derives for the salt "consent-link", for the signing key and a rotated one."""
    signer = ReceiptSigner([key * 2, key])
    for kid, secret in ((signer.kid, key * 2), (key_id(key), key)):
        derived = Signer(
            secret, salt="consent-link", key_derivation="hmac", digest_method=hashlib.sha256
        ).derive_key()
        expected = hmac.new(derived, text.encode(), "sha256").hexdigest()
        assert signer.link_digest(text, kid) == expected
        assert signer.link_digest(text, kid) == expected  # and again from the kept object
    assert signer.link_digest(text) == signer.link_digest(text, signer.kid)


def test_head_and_checkpoint_signatures() -> None:
    signer = ReceiptSigner(["k"])
    head = ChainHead.make(7, "ab" * 32, signer)
    assert head.verify(signer)
    assert not ChainHead(8, head.hash, head.kid, head.signature).verify(signer)
    assert not head.verify(ReceiptSigner(["other"]))
    cp = Checkpoint.make(seq=3, hash="cd" * 32, count=3, before=100, time=200, signer=signer)
    assert cp.verify(signer)
    assert not Checkpoint(3, cp.hash, 2, 100, 200, cp.kid, cp.signature).verify(signer)


# --------------------------------------------------------------------------- Kantara


def _stored(receipt: Receipt) -> StoredReceipt:
    return seal(receipt, seq=1, prev_hash=GENESIS_HASH, signer=ReceiptSigner(["k"]))


def test_kantara_document_validates_against_the_schema() -> None:
    stored = _stored(make_receipt())
    doc = to_kantara(stored)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert doc["version"] == "KI-CR-v1.1.0"
    assert doc["consentReceiptID"] == stored.receipt.receipt_id
    assert doc["consentTimestamp"] == stored.receipt.timestamp
    assert doc["piiPrincipalId"] == "subject-1"
    assert "publicKey" not in doc
    (controller,) = doc["piiControllers"]
    assert controller["piiController"] == "Example Ltd"
    assert controller["piiControllerUrl"] == "https://example.org"
    (service,) = doc["services"]
    purposes = {p["purposeCategory"][0]: p for p in service["purposes"]}
    assert set(purposes) == {"necessary", "analytics"}  # refused marketing is not a purpose
    assert purposes["necessary"]["primaryPurpose"] is True
    assert purposes["analytics"]["consentType"] == "EXPLICIT"
    assert purposes["analytics"]["purpose"] == "Analytics"


@pytest.mark.parametrize("method", ["banner", "form", "api", "gpc"])
def test_kantara_variants_validate(method: str) -> None:
    receipt = make_receipt(
        method=method,
        event="refused",
        granted=[],
        refused=["analytics", "marketing"],
        controller=Controller(
            name="Shop",
            email="dpo@shop.example",
            address="1 High Street, Town",
            phone="+44 20 7946 0000",
            contact="Data Protection Officer",
        ),
        purposes=[
            Purpose(key="necessary", title="Necessary", necessary=True, granted=True),
            Purpose(key="marketing", title="Ads", granted=True, third_parties=["AdCo", "Pix"]),
        ],
    )
    doc = to_kantara(receipt)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    controller = doc["piiControllers"][0]
    assert controller["address"] == {"streetAddress": "1 High Street, Town"}
    assert controller["contact"] == "Data Protection Officer"
    marketing = doc["services"][0]["purposes"][1]
    assert marketing["thirdPartyDisclosure"] is True
    assert marketing["thirdPartyName"] == "AdCo, Pix"


def test_schema_is_not_vacuous() -> None:
    doc = to_kantara(make_receipt())
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for field in ("consentReceiptID", "piiControllers", "services", "policyUrl"):
        broken = {k: v for k, v in doc.items() if k != field}
        assert not validator.is_valid(broken), field
    assert not validator.is_valid({**doc, "consentTimestamp": "2026-11-25"})
    assert not validator.is_valid({**doc, "version": "KI-CR-v1.0.0"})
    assert not validator.is_valid({**doc, "sensitive": True})  # needs spiCat entries
    purpose = dict(doc["services"][0]["purposes"][0], thirdPartyDisclosure=True)
    assert not validator.is_valid({**doc, "services": [{"service": "s", "purposes": [purpose]}]})


def test_kantara_policy_url_is_made_absolute_against_the_site() -> None:
    relative = make_receipt(policy_url="/cookie-policy")
    assert to_kantara(relative)["policyUrl"] == "/cookie-policy"
    made = to_kantara(relative, base_url="https://www.example.org/")
    assert made["policyUrl"] == "https://www.example.org/cookie-policy"
    absolute = make_receipt(policy_url="https://policies.example.net/cookies")
    assert (
        to_kantara(absolute, base_url="https://www.example.org/")["policyUrl"]
        == "https://policies.example.net/cookies"
    )


@given(
    text=st.text(max_size=300),
    key=st.text(min_size=1, max_size=100).filter(lambda k: k.strip() == k and "," not in k),
    change=st.sampled_from(["none", "pad", "last", "cut", "other", "text"]),
)
@settings(deadline=None)
def test_signatures_are_checked_as_itsdangerous_checks_them(
    text: str, key: str, change: str
) -> None:
    """``verify``, ``verify_text`` and ``verify_record`` copy a keyed ``hmac`` object per key and
    salt and compare the usual signature as text: they answer what itsdangerous'
    ``Signer.verify_signature`` answers, for signatures as signed and changed ones."""
    signer = ReceiptSigner([key * 2, key])
    checks = (
        (signer.sign, signer.verify, "consent-receipt"),
        (signer.sign_text, signer.verify_text, "consent-chain"),
        (signer.sign_record, signer.verify_record, "consent-record"),
    )
    for sign, verify, salt in checks:
        kid, signature = sign(text)
        if change == "pad":  # padding itsdangerous accepts
            signature += "="
        elif change == "last":  # the last character's unused bits
            signature = signature[:-1] + chr(ord(signature[-1]) ^ 1)
        elif change == "cut":
            signature = signature[:-2]
        elif change == "other":
            signature = ReceiptSigner(["other"]).sign(text)[1]
        given_text = text + "x" if change == "text" else text
        plain = Signer(key * 2, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
        try:
            expected = plain.verify_signature(given_text.encode(), signature.encode("ascii"))
        except UnicodeEncodeError:
            expected = False
        assert verify(given_text, kid, signature) is expected
        assert verify(given_text, kid, signature) is expected  # and again from the kept object


def test_a_signer_is_pickled_as_its_keys() -> None:
    """A signer used for a while (its caches hold keyed ``hmac`` objects) still pickles, as its
    keys, to be handed to a worker process."""
    signer = ReceiptSigner(["new", "old"])
    body = canonical_json(make_receipt())
    kid, signature = signer.sign(body)
    assert signer.verify(body, kid, signature)
    assert signer.link_digest("link") is not None
    copy = pickle.loads(pickle.dumps(signer))
    assert copy.kids == signer.kids
    assert copy.kid == signer.kid
    assert copy.verify(body, kid, signature)
    assert copy.link_digest("link") == signer.link_digest("link")

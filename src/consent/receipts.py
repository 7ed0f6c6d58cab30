"""Consent receipts: the record, its canonical body, its signature and its place in the chain.

A :class:`Receipt` is what the site records when a visitor gives, refuses, updates or withdraws
consent. Its canonical JSON body (:func:`canonical_json`) is what gets signed and hashed; the
store keeps that exact text, so verification never depends on re-serialising anything.

Each stored receipt (:class:`StoredReceipt`) carries a sequence number, the signature and a link
to the previous receipt, keyed with the signing key (see :mod:`consent.store.chain`)::

    hash = HMAC-SHA256(link key, seq "\\n" prev_hash "\\n" kid "\\n" signature)

Logs written by earlier versions link without a key (:func:`chain_hash`). The first receipt
links to ``"0" * 64``. A signed :class:`ChainHead` (the last sequence number and hash) and,
after a purge, a signed :class:`Checkpoint` (where the surviving log starts) make truncation at
either end detectable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import operator
import os
import re
import time as _time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring as _json_str  # what json.dumps(ensure_ascii=False) uses
from typing import Any, Literal

from itsdangerous import Signer
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

__all__ = [
    "GENESIS_HASH",
    "KANTARA_VERSION",
    "MAX_TIMESTAMP",
    "ChainHead",
    "Checkpoint",
    "Controller",
    "Event",
    "Method",
    "Purpose",
    "Receipt",
    "ReceiptSigner",
    "StoredReceipt",
    "canonical_json",
    "chain_hash",
    "event_for",
    "format_time",
    "hyphenated",
    "key_id",
    "new_receipt_id",
    "new_uuid7_hex",
    "truncate_ip",
    "uuid7_hex",
]

#: ``once``: consent to load one embedded item on one page view ("Load this once"); the
#: visitor's standing choice (the consent cookie) does not change.
Event = Literal["given", "refused", "updated", "withdrawn", "once"]
#: ``embed``: a button of an embedded item's placeholder ("Load this once", "Always allow").
Method = Literal["banner", "form", "api", "gpc", "embed"]

GENESIS_HASH = "0" * 64
KANTARA_VERSION = "KI-CR-v1.1.0"

RECEIPT_SALT = "consent-receipt"
CHAIN_SALT = "consent-chain"
LINK_SALT = "consent-link"  # the keyed link of each row to the one before
RECORD_SALT = "consent-record"  # signed records in the chain (switch to keyed links, incidents)

MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_USER_AGENT = 512
_MAX_PAGE = 2048


_last_time: tuple[int, str] = (-1, "")


def format_time(timestamp: int) -> str:
    """Unix seconds -> RFC 3339 in UTC, e.g. ``2026-11-25T12:00:00Z``."""
    global _last_time
    last = _last_time  # receipts recorded in the same second share the text
    if last[0] == timestamp and type(timestamp) is int:
        return last[1]
    text = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if type(timestamp) is int:
        _last_time = (timestamp, text)
    return text


# One IPv4 octet as ipaddress accepts it: 0-255, no leading zero.
_OCTET = re.compile(r"0|[1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5]", re.ASCII)


def truncate_ip(ip: str) -> str | None:
    """Shorten an address to its network: IPv4 to /24, IPv6 to /48; anything else -> None.

    ``"203.0.113.77"`` -> ``"203.0.113.0"``; ``"2001:db8:1234:5678::1"`` -> ``"2001:db8:1234::"``.
    IPv4-mapped IPv6 addresses are treated as IPv4. Truncating an already truncated address
    returns it unchanged.
    """
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    parts = text.split(".")
    if len(parts) == 4 and all(_OCTET.fullmatch(p) for p in parts):
        # The usual dotted quad, without building ipaddress objects (same result).
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0"
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        # A mapped IPv4 address counts as IPv4; rebuilding from the bytes drops a zone id.
        mapped = addr.ipv4_mapped
        addr = mapped if mapped is not None else ipaddress.IPv6Address(addr.packed)
    prefix = 24 if isinstance(addr, ipaddress.IPv4Address) else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


def event_for(
    previous_granted: Iterable[str] | None,
    granted: Iterable[str],
    explicit_withdraw: bool = False,
) -> Event:
    """Name the decision being recorded.

    ``explicit_withdraw`` (the visitor withdrew everything, ``DELETE``) -> ``withdrawn``; no
    earlier decision and something granted -> ``given``; no earlier decision and nothing
    granted -> ``refused``; a later decision that refuses every category after at least one
    was granted (Reject all in the banner, the form or the settings) -> ``withdrawn``; any
    other later decision -> ``updated`` (a partial withdrawal among them).
    """
    if explicit_withdraw:
        return "withdrawn"
    now = set(granted)
    if previous_granted is None:
        return "given" if now else "refused"
    if not now and set(previous_granted):
        return "withdrawn"
    return "updated"


class Controller(BaseModel):
    """The data controller named on every receipt (GDPR Art. 13(1)(a))."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    email: str
    address: str | None = None
    url: str | None = None
    phone: str | None = None
    contact: str | None = None


class Purpose(BaseModel):
    """One category as the visitor was shown it, and whether it ended up granted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    title: str
    necessary: bool = False
    granted: bool = False
    third_parties: list[str] = Field(default_factory=list)


def uuid7_hex(random: bytes, unix_ms: int) -> str:
    """A UUID version 7 (RFC 9562) as 32 hex digits: ``unix_ms`` in the first 48 bits, then the
    version, then 74 bits from ``random`` (10 bytes).

    Receipt and subject ids are made this way so that ids made later sort after earlier ones (to
    the millisecond): the store's indexes on them then grow at their right-hand edge, like the
    log itself, instead of dirtying a random index page per receipt. With random (version 4)
    ids an append cost more the larger the log grew; see docs/performance.md. The 74 random bits
    keep them unguessable.
    """
    b = bytearray((unix_ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big"))
    b += random[:10]
    b[6] = (b[6] & 0x0F) | 0x70  # version 7
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 9562 variant
    return b.hex()


def hyphenated(hex32: str) -> str:
    """32 hex digits in the 8-4-4-4-12 form of ``str(uuid.UUID(...))``."""
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def new_uuid7_hex() -> str:
    """A fresh UUID version 7 (now, 74 random bits) as 32 hex digits."""
    return uuid7_hex(os.urandom(10), _time.time_ns() // 1_000_000)


def new_receipt_id() -> str:
    """A fresh receipt id: a UUID version 7, hyphenated."""
    return hyphenated(new_uuid7_hex())


def _now() -> int:
    return int(_time.time())


class Receipt(BaseModel):
    """A consent receipt: one decision by one (pseudonymous) visitor.

    ``subject_id`` is the pseudonymous identifier carried in the consent cookie, never an IP
    address. ``ip`` is stored truncated (see :func:`truncate_ip`) whatever is passed in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_id: str = Field(default_factory=new_receipt_id)
    subject_id: str = Field(min_length=1)
    timestamp: int = Field(default_factory=_now, ge=0, le=MAX_TIMESTAMP)
    event: Event
    granted: list[str] = Field(default_factory=list)
    refused: list[str] = Field(default_factory=list)
    revision: str
    policy_url: str
    method: Method
    jurisdiction: str
    language: str
    controller: Controller
    purposes: list[Purpose] = Field(default_factory=list)
    page: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    gpc: bool = False

    @field_validator("receipt_id")
    @classmethod
    def _check_receipt_id(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("receipt_id must be a UUID") from None

    @field_validator("granted", "refused")
    @classmethod
    def _sort_keys(cls, value: list[str]) -> list[str]:
        return sorted(value)

    @field_validator("ip")
    @classmethod
    def _truncate_ip(cls, value: str | None) -> str | None:
        return None if value is None else truncate_ip(value)

    @field_validator("user_agent")
    @classmethod
    def _cap_user_agent(cls, value: str | None) -> str | None:
        return None if value is None else value[:_MAX_USER_AGENT]

    @field_validator("page")
    @classmethod
    def _cap_page(cls, value: str | None) -> str | None:
        return None if value is None else value[:_MAX_PAGE]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def time(self) -> str:
        """``timestamp`` as RFC 3339 in UTC."""
        return format_time(self.timestamp)

    @classmethod
    def from_body(cls, body: str) -> Receipt:
        """Parse a canonical body back into a receipt (the derived ``time`` is recomputed)."""
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("receipt body is not a JSON object")
        data.pop("time", None)
        return cls.model_validate(data)


def canonical_json(receipt: Receipt) -> str:
    """The signed and hashed text of a receipt: sorted keys, no whitespace, UTF-8 as is.

    Exactly ``json.dumps(receipt.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``, written out field by field (a decision serialises its receipt once,
    and this is three times cheaper); anything unusual takes that reference path.
    """
    body = _canonical_fast(receipt)
    return _canonical_reference(receipt) if body is None else body


def _canonical_reference(receipt: Receipt) -> str:
    return json.dumps(
        receipt.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _json_opt(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


def _json_strs(values: list[str]) -> str:
    return "[" + ",".join(map(_json_str, values)) + "]"


# Controllers and purposes repeat on every receipt of a site: their JSON is kept (bounded).
_CONTROLLER_JSON: dict[tuple[Any, ...], str] = {}
_PURPOSE_JSON: dict[tuple[Any, ...], str] = {}
_PIECES_LIMIT = 1024


def _keep_json(cache: dict[tuple[Any, ...], str], key: tuple[Any, ...], model: BaseModel) -> str:
    """The canonical JSON of a nested model, kept under ``key`` (bounded)."""
    found = json.dumps(
        model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    if len(cache) < _PIECES_LIMIT:
        cache[key] = found
    return found


def _controller_json(controller: Controller) -> str | None:
    d = controller.__dict__
    key = (d["name"], d["email"], d["address"], d["url"], d["phone"], d["contact"])
    found = _CONTROLLER_JSON.get(key)
    if found is None:
        if type(controller) is not Controller or not all(v is None or type(v) is str for v in key):
            return None
        found = _keep_json(_CONTROLLER_JSON, key, controller)
    return found


def _purpose_json(purpose: Purpose) -> str | None:
    d = purpose.__dict__
    parties = d["third_parties"]
    if (
        type(purpose) is not Purpose
        or type(d["necessary"]) is not bool
        or type(d["granted"]) is not bool
        or type(parties) is not list
    ):
        return None
    key = (d["key"], d["title"], d["necessary"], d["granted"], *parties)
    found = _PURPOSE_JSON.get(key)
    if found is None:
        if not all(type(v) is str for v in (key[0], key[1], *parties)):
            return None
        found = _keep_json(_PURPOSE_JSON, key, purpose)
    return found


_STR_FIELDS = (
    "receipt_id",
    "subject_id",
    "event",
    "revision",
    "policy_url",
    "method",
    "jurisdiction",
    "language",
)
_OPT_FIELDS = ("page", "ip", "user_agent")
_str_fields = operator.itemgetter(*_STR_FIELDS)
_opt_fields = operator.itemgetter(*_OPT_FIELDS)
_STR_ONLY = {str}
_STR_OR_NONE = {str, type(None)}


def _canonical_fast(receipt: Receipt) -> str | None:
    """:func:`canonical_json` for the usual receipt (exact built-in types), else ``None``."""
    if type(receipt) is not Receipt:
        return None
    d = receipt.__dict__
    timestamp, gpc, granted, refused = d["timestamp"], d["gpc"], d["granted"], d["refused"]
    if (
        type(timestamp) is not int
        or type(gpc) is not bool
        or type(granted) is not list
        or type(refused) is not list
        or type(d["purposes"]) is not list
        or set(map(type, _str_fields(d))) != _STR_ONLY
        or not set(map(type, _opt_fields(d))) <= _STR_OR_NONE
        or not set(map(type, granted + refused)) <= _STR_ONLY
    ):
        return None
    controller = _controller_json(d["controller"])
    if controller is None:
        return None
    purposes: list[str] = []
    for purpose in d["purposes"]:
        piece = _purpose_json(purpose)
        if piece is None:
            return None
        purposes.append(piece)
    # The keys in sorted order (the model fields and the computed "time").
    return (
        f'{{"controller":{controller}'
        f',"event":{_json_str(d["event"])}'
        f',"gpc":{"true" if gpc else "false"}'
        f',"granted":{_json_strs(granted)}'
        f',"ip":{_json_opt(d["ip"])}'
        f',"jurisdiction":{_json_str(d["jurisdiction"])}'
        f',"language":{_json_str(d["language"])}'
        f',"method":{_json_str(d["method"])}'
        f',"page":{_json_opt(d["page"])}'
        f',"policy_url":{_json_str(d["policy_url"])}'
        f',"purposes":[{",".join(purposes)}]'
        f',"receipt_id":{_json_str(d["receipt_id"])}'
        f',"refused":{_json_strs(refused)}'
        f',"revision":{_json_str(d["revision"])}'
        f',"subject_id":{_json_str(d["subject_id"])}'
        f',"time":"{format_time(timestamp)}"'
        f',"timestamp":{timestamp}'
        f',"user_agent":{_json_opt(d["user_agent"])}}}'
    )


def chain_hash(prev_hash: str, body: str, kid: str, signature: str) -> str:
    """The unkeyed link of logs written by earlier versions:
    ``sha256(prev_hash \\n body \\n kid \\n signature)`` in hex. Anyone can compute it, so it
    proves an order only up to a signed head; new rows are linked with a key
    (:func:`consent.store.chain.link_hash`)."""
    data = "\n".join((prev_hash, body, kid, signature)).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def key_id(key: str) -> str:
    """Public identifier of a key: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


_URLSAFE = bytes.maketrans(b"+/", b"-_")  # standard base64 to its URL-safe alphabet


class ReceiptSigner:
    """HMAC-SHA256 signatures over receipt bodies and chain records, with key rotation.

    The first key signs; every key verifies. Each signature is stored with the signing key's id
    (:func:`key_id`), so a receipt signed by a retired key still verifies for as long as that key
    stays in the list. This is a *symmetric* signature: only holders of the key can check it,
    and they could also have produced it.
    """

    def __init__(self, keys: str | Sequence[str]) -> None:
        key_list = [keys] if isinstance(keys, str) else list(keys)
        key_list = [k for k in key_list if k]
        if not key_list:
            raise ValueError("ReceiptSigner needs at least one non-empty key")
        self._keys: dict[str, str] = {}
        for key in key_list:
            self._keys.setdefault(key_id(key), key)
        self._kid = key_id(key_list[0])
        self._signers: dict[tuple[str, str], Signer] = {}
        # salt -> derived key of the signing key
        self._derived: dict[str, bytes] = {}
        # (kid, salt) -> an hmac object keyed with the key itsdangerous derives for that salt,
        # copied for each signature checked (keying it costs more than a short text)
        self._macs: dict[tuple[str, str], hmac.HMAC] = {}

    def __reduce__(self) -> tuple[type[ReceiptSigner], tuple[list[str]]]:
        """Pickled as its keys (the signing key first), to hand it to another process
        (``concurrent.futures``); its caches are made again there."""
        return ReceiptSigner, (list(self._keys.values()),)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReceiptSigner:
        """Keys from ``CONSENT_SECRET_KEY`` (comma-separated, the first signs).

        Raises ValueError when the variable is unset or holds no key.
        """
        env = os.environ if environ is None else environ
        raw = env.get("CONSENT_SECRET_KEY", "")
        keys = [part.strip() for part in raw.split(",") if part.strip()]
        if not keys:
            raise ValueError(
                "no signing key: set CONSENT_SECRET_KEY (comma-separated for rotation, "
                "the first key signs)"
            )
        return cls(keys)

    @property
    def kid(self) -> str:
        """Key id of the signing (first) key."""
        return self._kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Key ids of every key that verifies, signing key first."""
        return tuple(self._keys)

    def _signer(self, kid: str, salt: str) -> Signer:
        signer = self._signers.get((kid, salt))
        if signer is None:
            signer = Signer(
                self._keys[kid],
                salt=salt,
                key_derivation="hmac",
                digest_method=hashlib.sha256,
            )
            self._signers[(kid, salt)] = signer
        return signer

    def _sign(self, text: str, salt: str) -> tuple[str, str]:
        # What itsdangerous' Signer.get_signature computes (HMAC-SHA256 under the derived key,
        # URL-safe base64 without padding), with the derived key kept instead of re-derived.
        key = self._derived.get(salt)
        if key is None:
            key = self._derived[salt] = self._signer(self._kid, salt).derive_key()
        digest = hmac.digest(key, text.encode("utf-8"), "sha256")
        return self._kid, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def _mac(self, kid: str, salt: str) -> hmac.HMAC | None:
        """The hmac object keyed for ``salt`` with key ``kid`` as itsdangerous derives it
        (made once; copy it before use), or None for a key this signer does not hold."""
        mac = self._macs.get((kid, salt))
        if mac is None:
            if kid not in self._keys:
                return None
            key = self._signer(kid, salt).derive_key()
            mac = self._macs[(kid, salt)] = hmac.new(key, digestmod=hashlib.sha256)
        return mac

    def _verify(self, text: str, kid: str, signature: str, salt: str) -> bool:
        # itsdangerous' Signer.verify_signature, with the keyed hmac object copied instead of
        # the key derived and set up again for every row a verification reads. The usual
        # signature (URL-safe base64 without padding, as signing writes it) is compared as
        # text; anything else is left to itsdangerous, which decides.
        mac = self._macs.get((kid, salt)) or self._mac(kid, salt)
        if mac is None:
            return False
        try:
            data, given = text.encode("utf-8"), signature.encode("ascii")
        except UnicodeEncodeError:
            return False
        mac = mac.copy()
        mac.update(data)
        # base64.urlsafe_b64encode, in one call less (this runs once per row read)
        expected = binascii.b2a_base64(mac.digest(), newline=False).translate(_URLSAFE)
        if hmac.compare_digest(expected.rstrip(b"="), given):
            return True
        return self._signer(kid, salt).verify_signature(data, given)

    def knows(self, kid: str) -> bool:
        """True when ``kid`` names one of this signer's keys."""
        return kid in self._keys

    def sign(self, body: str) -> tuple[str, str]:
        """Sign a receipt body; returns ``(kid, signature)``."""
        return self._sign(body, RECEIPT_SALT)

    def verify(self, body: str, kid: str, signature: str) -> bool:
        """Check a receipt body signature made by any of the configured keys."""
        return self._verify(body, kid, signature, RECEIPT_SALT)

    def sign_text(self, text: str) -> tuple[str, str]:
        """Sign a chain record (head, checkpoint); separate from receipt signatures."""
        return self._sign(text, CHAIN_SALT)

    def verify_text(self, text: str, kid: str, signature: str) -> bool:
        """Check a signature made by :meth:`sign_text`."""
        return self._verify(text, kid, signature, CHAIN_SALT)

    def sign_record(self, body: str) -> tuple[str, str]:
        """Sign the body of a chain record (a switch to keyed links, an incident marker);
        separate from receipt signatures, so neither can pass for the other."""
        return self._sign(body, RECORD_SALT)

    def verify_record(self, body: str, kid: str, signature: str) -> bool:
        """Check a signature made by :meth:`sign_record`."""
        return self._verify(body, kid, signature, RECORD_SALT)

    def link_digest(self, text: str, kid: str | None = None) -> str | None:
        """HMAC-SHA256 of a chain link's text in hex, under the key ``kid`` (default: the
        signing key) derived as itsdangerous derives it for the salt ``consent-link``; None
        for a key this signer does not hold.

        Verification computes one per row, over about 140 bytes: ``hmac.digest`` spends
        more on setting up the key each time than on the text, so an ``hmac`` object keyed
        once per key is copied for each link (see docs/performance.md).
        """
        keyed = self._mac(self._kid if kid is None else kid, LINK_SALT)
        if keyed is None:
            return None
        mac = keyed.copy()
        mac.update(text.encode("utf-8"))
        return mac.hexdigest()


class StoredReceipt(BaseModel):
    """A receipt as recorded: its body, signature and link in the chain (sealed by
    :func:`consent.store.chain.seal`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt: Receipt
    seq: int
    kid: str
    signature: str
    prev_hash: str
    hash: str
    body: str

    @property
    def receipt_id(self) -> str:
        return self.receipt.receipt_id

    def to_dict(self) -> dict[str, Any]:
        """Export row: the receipt fields, then seq, kid, signature, prev_hash, hash, body."""
        row = self.receipt.model_dump(mode="json")
        row.update(
            seq=self.seq,
            kid=self.kid,
            signature=self.signature,
            prev_hash=self.prev_hash,
            hash=self.hash,
            body=self.body,
        )
        return row

    def to_json(self) -> str:
        """:meth:`to_dict` as one line of JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class ChainHead:
    """The signed position of the last receipt; kept in the same transaction as each append."""

    seq: int
    hash: str
    kid: str
    signature: str

    @staticmethod
    def text_for(seq: int, hash: str) -> str:
        return f"consent-chain-head\n{seq}\n{hash}"

    @classmethod
    def make(cls, seq: int, hash: str, signer: ReceiptSigner) -> ChainHead:
        kid, signature = signer.sign_text(cls.text_for(seq, hash))
        return cls(seq=seq, hash=hash, kid=kid, signature=signature)

    def verify(self, signer: ReceiptSigner) -> bool:
        return signer.verify_text(self.text_for(self.seq, self.hash), self.kid, self.signature)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "kid": self.kid, "signature": self.signature}


@dataclass(frozen=True)
class Checkpoint:
    """Written by a purge: the last purged receipt, so the remaining log still verifies.

    ``count`` is the total number of receipts purged so far, ``before`` the cut-off of the
    latest purge and ``time`` when it ran (unix seconds).
    """

    seq: int
    hash: str
    count: int
    before: int
    time: int
    kid: str
    signature: str

    @staticmethod
    def text_for(seq: int, hash: str, count: int, before: int, time: int) -> str:
        return f"consent-chain-checkpoint\n{seq}\n{hash}\n{count}\n{before}\n{time}"

    @classmethod
    def make(
        cls, *, seq: int, hash: str, count: int, before: int, time: int, signer: ReceiptSigner
    ) -> Checkpoint:
        kid, signature = signer.sign_text(cls.text_for(seq, hash, count, before, time))
        return cls(
            seq=seq, hash=hash, count=count, before=before, time=time, kid=kid, signature=signature
        )

    def verify(self, signer: ReceiptSigner) -> bool:
        text = self.text_for(self.seq, self.hash, self.count, self.before, self.time)
        return signer.verify_text(text, self.kid, self.signature)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "count": self.count,
            "before": self.before,
            "time": self.time,
            "kid": self.kid,
            "signature": self.signature,
        }

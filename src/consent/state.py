"""The visitor's consent state and the signed consent cookie that carries it.

The cookie holds a compact binary payload, URL-safe base64, signed with an itsdangerous
``Signer`` whose signature is keyed BLAKE2s (RFC 7693) with a 16-byte tag, the key derived
from the secret key and the salt by HMAC-SHA256 as itsdangerous derives it:

* a version byte (3);
* the decision time (seconds since 1970, 4 bytes): the cookie lasts the configured lifetime
  from it;
* how the two ids are written (one byte);
* the first 16 hex digits of the policy revision, as 8 bytes;
* the pseudonymous subject id and the receipt id: 16 bytes for a UUID in its usual text form
  (32 hex digits for a subject, 8-4-4-4-12 for a receipt), otherwise a length byte and UTF-8;
* the granted categories, one bit each, in the order of their keys (the revision covers the
  keys but not the display order, so a reordered policy keeps the meaning of every bit; a
  category added or removed changes the revision, and the visitor is asked again).

The first secret key signs; every key verifies, so keys can be rotated without losing anybody's
decision. Cookies of the two earlier formats are still read: version 2 (the same payload,
signed with HMAC-SHA256) and version 1 (itsdangerous' ``URLSafeTimedSerializer`` around JSON);
the next decision writes version 3.

A forged or tampered cookie, one older than the configured lifetime, or one given under another
policy revision all mean "no decision". A validly signed cookie of an older revision still lends
its pseudonymous subject id, so the visitor's next receipt continues the same history.

Visitors send the same cookie on every request, so validly signed cookie values are kept in one
cache (from the second time a value is verified), bounded by count and by the bytes the values
hold; the lifetime is checked again on every hit.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import logging
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from itsdangerous import BadData, Signer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.signer import SigningAlgorithm

from .policy import Policy
from .receipts import hyphenated, new_uuid7_hex

logger = logging.getLogger("consent")

__all__ = [
    "ConsentCookie",
    "ConsentState",
    "current_consent",
    "resolve_secret_keys",
]

#: At most this many verified cookie values are kept ...
_CACHE_LIMIT = 8192
#: ... holding at most this many bytes, counting each value's length and _ENTRY_COST for what
#: is kept beside it.
_CACHE_BYTES = 4 << 20
_ENTRY_COST = 256
#: Hashes of values verified once kept, to cache those verified again (see ``_keep``).
_SEEN_LIMIT = 8192
#: A browser keeps no cookie longer than 4096 bytes (name and value): a longer value is no
#: decision, without being verified.
_VALUE_MAX = 4096
#: Bit sets of granted categories whose sets are kept (there are 2 ** categories).
_MASKS_LIMIT = 256


@dataclass(frozen=True, slots=True)
class ConsentState:
    """What the visitor decided, as the app sees it at ``request.state.consent``.

    ``granted`` and ``denied`` hold non-necessary category keys. Necessary categories are always
    allowed. ``decided`` is false until the visitor made a choice under the current policy
    revision. ``gpc`` is true when the browser sent ``Sec-GPC: 1`` and the site honours it: every
    ``sale_or_share`` category is then refused, whatever the cookie says.
    """

    granted: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    decided: bool = False
    necessary: frozenset[str] = frozenset()
    revision: str | None = None
    receipt_id: str | None = None
    subject_id: str | None = None
    decided_at: int | None = None
    expires_at: int | None = None
    gpc: bool = False
    allowed: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", self.necessary | self.granted)

    def allows(self, category: str) -> bool:
        """True when cookies and scripts of ``category`` may be used for this visitor."""
        return category in self.allowed

    def with_gpc(self, sale_or_share: frozenset[str]) -> ConsentState:
        """The state after a ``Sec-GPC: 1`` signal: every sale/share category refused."""
        return replace(
            self,
            granted=self.granted - sale_or_share,
            denied=self.denied | sale_or_share,
            gpc=True,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "decided": self.decided,
            "granted": sorted(self.granted),
            "denied": sorted(self.denied),
            "revision": self.revision,
            "receipt_id": self.receipt_id,
            "decided_at": self.decided_at,
            "expires": self.expires_at,
            "gpc": self.gpc,
        }


def _slot_setter(name: str) -> Callable[[ConsentState, object], None]:
    """The ``__set__`` of a field's slot: what ``object.__setattr__`` looks up and calls for
    a frozen slotted dataclass, called directly."""
    setter: Callable[[ConsentState, object], None] = getattr(ConsentState, name).__set__
    return setter


_new = object.__new__
_set_granted = _slot_setter("granted")
_set_denied = _slot_setter("denied")
_set_decided = _slot_setter("decided")
_set_necessary = _slot_setter("necessary")
_set_revision = _slot_setter("revision")
_set_receipt_id = _slot_setter("receipt_id")
_set_subject_id = _slot_setter("subject_id")
_set_decided_at = _slot_setter("decided_at")
_set_expires_at = _slot_setter("expires_at")
_set_gpc = _slot_setter("gpc")
_set_allowed = _slot_setter("allowed")


def _decided_state(
    granted: frozenset[str],
    denied: frozenset[str],
    necessary: frozenset[str],
    allowed: frozenset[str],
    revision: str,
    receipt_id: str | None,
    subject_id: str,
    decided_at: int,
    expires_at: int,
) -> ConsentState:
    """A decided :class:`ConsentState`, as ``ConsentState(granted=..., decided=True, ...)``
    makes it (``allowed`` is ``necessary | granted``), without its keyword arguments and
    ``__post_init__``, its slots set through their own setters: a new visitor's cookie makes
    one on the request path. tests/test_consent_cookie.py holds the two to the same state."""
    state: ConsentState = _new(ConsentState)
    _set_granted(state, granted)
    _set_denied(state, denied)
    _set_decided(state, True)
    _set_necessary(state, necessary)
    _set_revision(state, revision)
    _set_receipt_id(state, receipt_id)
    _set_subject_id(state, subject_id)
    _set_decided_at(state, decided_at)
    _set_expires_at(state, expires_at)
    _set_gpc(state, False)
    _set_allowed(state, allowed)
    return state


# URL-safe base64 to the standard alphabet (what base64.urlsafe_b64decode translates).
_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64decode(data: bytes) -> bytes:
    """What itsdangerous' ``base64_decode`` returns for bytes (padded, then
    ``base64.urlsafe_b64decode``, which is ``binascii.a2b_base64`` of the translated text),
    in one step; raises ``ValueError`` where it raises ``BadData``. tests/test_consent_cookie.py
    holds the two to the same answers."""
    return binascii.a2b_base64((data + b"=" * (-len(data) % 4)).translate(_URLSAFE))


current_consent: ContextVar[ConsentState | None] = ContextVar("current_consent", default=None)
"""The consent state of the request being handled (set by the middleware around the app call)."""


def check_secret_key_type(secret_key: object) -> None:
    """Raise ``TypeError`` unless ``secret_key`` is None, a string or a sequence of strings."""
    if secret_key is None or isinstance(secret_key, str):
        return
    if isinstance(secret_key, bytes | bytearray) or not (
        isinstance(secret_key, Sequence) and all(isinstance(k, str) for k in secret_key)
    ):
        raise TypeError(
            "secret_key must be a string or a sequence of strings (the first signs, all "
            f"verify), not {type(secret_key).__name__}"
            + ("" if isinstance(secret_key, bytes | bytearray) else " of other values")
        )


def resolve_secret_keys(secret_key: str | Sequence[str] | None) -> list[str]:
    """The signing keys: the argument, else ``CONSENT_SECRET_KEY`` (comma-separated).

    The first key signs, all verify. Raises ``ValueError`` with instructions when there is none.
    """
    if secret_key is None:
        raw = os.environ.get("CONSENT_SECRET_KEY", "")
        keys = [k.strip() for k in raw.split(",") if k.strip()]
    elif isinstance(secret_key, str):
        keys = [secret_key] if secret_key else []
    else:
        check_secret_key_type(secret_key)
        keys = [k for k in secret_key if k]
    if not keys:
        raise ValueError(
            "asgi-consent needs a secret key to sign consent cookies and receipts: pass "
            "secret_key=... or set the CONSENT_SECRET_KEY environment variable (comma-separated "
            "for rotation, newest first). Generate one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    if len(keys[0]) < 32:
        logger.warning(
            "the consent signing key is %d characters long: use at least 32 random bytes, "
            'for example: python -c "import secrets; print(secrets.token_urlsafe(32))"',
            len(keys[0]),
        )
    return keys


def new_subject_id() -> str:
    """A random pseudonymous subject id (never derived from the IP or anything personal): a
    UUID version 7 as 32 hex digits (see :func:`consent.receipts.uuid7_hex`)."""
    return new_uuid7_hex()


_VERSION = 3
# version, decision time, how the ids are written, revision prefix
_HEAD = struct.Struct(">BIB8s")
# How an id is written (two bits each: the subject's low, the receipt's high).
_ABSENT, _HEX, _HYPHENATED, _TEXT = range(4)
# The usual head: a hex subject id and a hyphenated receipt id (16 bytes each) follow.
_USUAL = struct.Struct(">BIB8s16s16s")
_USUAL_KINDS = _HEX | _HYPHENATED << 2
# A UUID's 32 hex digits in its five groups.
_UUID_GROUPS = struct.Struct("8s4s4s4s12s")


def _uuid_text(raw: bytes) -> str:
    """16 bytes as a UUID's usual text, ``str(uuid.UUID(bytes=raw))``: what
    ``receipts.hyphenated(raw.hex())`` makes, in C calls only (a new visitor's receipt id is
    read on the request path). tests/test_consent_cookie.py holds the two to the same text."""
    return b"-".join(_UUID_GROUPS.unpack(binascii.hexlify(raw))).decode("ascii")


_SALT = "asgi-consent.cookie.3"
# Version 2: the same payload, signed with HMAC-SHA256 (still read).
_VERSION_2 = 2
_SALT_2 = "asgi-consent.cookie.2"
# What the first format (URLSafeTimedSerializer around JSON) was signed with.
_OLD_SALT = "asgi-consent.cookie"
_TAG_SIZE = 16


class KeyedBlake2s(SigningAlgorithm):
    """itsdangerous' signing algorithm for the consent cookie: keyed BLAKE2s (RFC 7693), a MAC
    in one pass over the value, with a 16-byte tag (where HMAC-SHA256 hashes twice and
    writes 32)."""

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hashlib.blake2s(value, key=key, digest_size=_TAG_SIZE).digest()


def _pack_id(text: str | None) -> tuple[int, bytes]:
    """How an id is written, and its bytes."""
    if text is None:
        return _ABSENT, b""
    if len(text) in (32, 36):
        try:
            raw = bytes.fromhex(text.replace("-", "") if len(text) == 36 else text)
        except ValueError:
            raw = b""
        if len(raw) == 16:
            if raw.hex() == text:
                return _HEX, raw
            if hyphenated(raw.hex()) == text:
                return _HYPHENATED, raw
    data = text.encode("utf-8")
    if len(data) > 255:
        raise ValueError(f"an id of the consent cookie is too long ({len(data)} bytes)")
    return _TEXT, bytes((len(data),)) + data


def _unpack_id(kind: int, data: bytes, at: int) -> tuple[str | None, int]:
    """An id written the way ``kind`` says at ``data[at:]``, and where it ends."""
    if kind == _ABSENT:
        return None, at
    if kind == _TEXT:
        end = at + 1 + data[at]
        if end > len(data):
            raise ValueError("cut short")
        return data[at + 1 : end].decode("utf-8"), end
    end = at + 16
    if end > len(data):
        raise ValueError("cut short")
    text = data[at:end].hex()
    return (text if kind == _HEX else hyphenated(text)), end


def _derived(newest_last: list[str], salt: str) -> list[bytes]:
    """The keys an itsdangerous ``Signer`` with ``salt`` signs with, derived as it derives
    them (HMAC-SHA256 of the salt), in the same order."""
    deriving = Signer(newest_last, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
    return [deriving.derive_key(key) for key in newest_last]


# A verified cookie value: (its decided state, or None when it does not count; the subject id
# of a validly signed cookie; when it was decided)
_Verified = tuple["ConsentState | None", str | None, int]
_INVALID: _Verified = (None, None, 0)


class ConsentCookie:
    """Encodes and verifies the signed consent cookie for one policy."""

    __slots__ = (
        "_bit_order",
        "_cache",
        "_cache_bytes",
        "_granted",
        "_keys",
        "_keys_2",
        "_mask_bytes",
        "_masks",
        "_no_decision",
        "_old",
        "_revision_bytes",
        "_seen",
        "_signer",
        "_usual_size",
        "lifetime",
        "necessary",
        "optional",
        "revision",
    )

    def __init__(self, keys: Sequence[str], policy: Policy) -> None:
        # itsdangerous signs with the *last* key of a list and tries them all, newest first;
        # here the first key signs.
        newest_last = list(reversed(keys))
        # Each key as the signer derives it from the salt (HMAC-SHA256), derived here once:
        # given those keys, a signer with no derivation of its own signs and verifies the same.
        self._signer = Signer(
            _derived(newest_last, _SALT), key_derivation="none", algorithm=KeyedBlake2s()
        )
        # _unsign checks a cookie with a copy of a BLAKE2s keyed with each derived key (newest
        # first), and a version 2 cookie with a copy of an HMAC keyed likewise: keying one for
        # every cookie costs more than checking the cookie.
        self._keys = tuple(
            hashlib.blake2s(key=key, digest_size=_TAG_SIZE)
            for key in reversed(self._signer.secret_keys)
        )
        self._keys_2 = tuple(
            hmac.new(key, digestmod=hashlib.sha256)
            for key in reversed(_derived(newest_last, _SALT_2))
        )
        self._old = URLSafeTimedSerializer(
            newest_last,
            salt=_OLD_SALT,
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
        )
        self.lifetime = policy.site.consent_cookie.max_age
        self.revision = policy.short_revision
        self._revision_bytes = bytes.fromhex(self.revision)
        self.necessary = policy.necessary
        self.optional = frozenset(policy.optional)
        # One bit per category, in the order of their keys (which the revision covers).
        self._bit_order = tuple(sorted(self.optional))
        self._mask_bytes = (len(self._bit_order) + 7) // 8
        self._usual_size = _USUAL.size + self._mask_bytes
        # Per bit set read from a cookie (its bytes): (granted, denied, allowed), made once
        # (at most _MASKS_LIMIT).
        self._masks: dict[bytes, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {}
        # raw cookie value -> what it was verified to hold (oldest first out)
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._cache_bytes = 0
        self._seen: set[int] = set()  # hashes of values verified once (see _keep)
        # Frozen, so one instance serves every request without a decision.
        self._no_decision = ConsentState(necessary=self.necessary)

    @property
    def no_decision(self) -> ConsentState:
        return self._no_decision

    def decision(
        self,
        granted: Iterable[str],
        *,
        receipt_id: str | None,
        subject_id: str | None,
        decided_at: int | None = None,
    ) -> ConsentState:
        """A decided state under the current revision (without a subject id only as
        :meth:`common` makes it: no cookie is written for it)."""
        g = frozenset(granted) & self.optional
        at = int(time.time()) if decided_at is None else decided_at
        return ConsentState(
            granted=g,
            denied=self.optional - g,
            decided=True,
            necessary=self.necessary,
            revision=self.revision,
            receipt_id=receipt_id,
            subject_id=subject_id,
            decided_at=at,
            expires_at=at + self.lifetime,
        )

    def common(self, states: Sequence[ConsentState]) -> ConsentState:
        """What the decisions of several visitors share: the categories every one of them
        grants, decided when the oldest was (it expires first), with no receipt id and no
        subject id (the next decision starts a new history rather than join one of them)."""
        granted = frozenset.intersection(*(s.granted for s in states))
        at = min(s.decided_at or 0 for s in states)
        return self.decision(granted, receipt_id=None, subject_id=None, decided_at=at)

    def dumps(self, state: ConsentState) -> str:
        """The signed cookie value for a decided ``state`` (signed as decided at its
        ``decided_at``, so the cookie says the receipt's time even when a second has ticked
        since)."""
        if state.subject_id is None:
            raise ValueError("a consent cookie needs the subject id")
        at = int(time.time()) if state.decided_at is None else state.decided_at
        subject_kind, subject = _pack_id(state.subject_id)
        receipt_kind, receipt = _pack_id(state.receipt_id)
        mask = sum(1 << i for i, key in enumerate(self._bit_order) if key in state.granted)
        payload = (
            _HEAD.pack(_VERSION, at, subject_kind | receipt_kind << 2, self._revision_bytes)
            + subject
            + receipt
            + mask.to_bytes(self._mask_bytes, "little")
        )
        return self._signer.sign(base64_encode(payload)).decode("ascii")

    def loads(self, value: str, now: float | None = None) -> tuple[ConsentState, str | None]:
        """Verify a cookie value: ``(state, subject_id)``.

        The state is :attr:`no_decision` for anything forged, expired or stale; ``subject_id``
        is the pseudonymous id of any validly signed cookie (also a stale one), else ``None``.
        """
        now = time.time() if now is None else now
        hit = self._cache.get(value)
        if hit is None:
            if len(value) > _VALUE_MAX:
                return self._no_decision, None
            hit = self._verify(value)
            if hit[1] is not None:  # validly signed (forgeries are checked each time)
                self._keep(value, hit)
        state, subject, decided_at = hit
        if now - decided_at > self.lifetime:
            return self._no_decision, None
        if state is None:
            return self._no_decision, subject
        return state, subject

    def _keep(self, value: str, hit: _Verified) -> None:
        """Cache a verified value from the second time it is verified, dropping the oldest
        beyond the count or the bytes. (When more visitors take turns than the cache holds,
        every value would push out an older one, only to be pushed out before it comes back:
        keeping it costs more than verifying it again.)"""
        seen, key = self._seen, hash(value)
        if key not in seen:
            if len(seen) >= _SEEN_LIMIT:
                seen.clear()
            seen.add(key)
            return
        cache = self._cache
        cost = len(value) + _ENTRY_COST
        try:
            while cache and (len(cache) >= _CACHE_LIMIT or self._cache_bytes + cost > _CACHE_BYTES):
                old, _ = cache.popitem(last=False)
                self._cache_bytes -= len(old) + _ENTRY_COST
        except KeyError:  # emptied meanwhile by another thread
            pass
        if not cache:
            self._cache_bytes = 0
        if value not in cache:
            self._cache_bytes += cost
        cache[value] = hit

    def _verify(self, value: str) -> _Verified:
        try:
            signed = self._unsign(value)
        except (ValueError, TypeError, UnicodeError):
            return _INVALID
        if signed is None:
            # The first format signs "payload.timestamp": a value with one dot is none of it.
            return self._verify_old(value) if value.count(".") >= 2 else _INVALID
        try:
            return self._read(_b64decode(signed[0]), signed[1])
        except (BadData, ValueError, IndexError, struct.error, UnicodeError):
            return _INVALID

    def _read(self, data: bytes, version: int = _VERSION) -> _Verified:
        """What a validly signed payload holds (signed as ``version`` is)."""
        if len(data) == self._usual_size and data[5] == _USUAL_KINDS:
            # As the endpoints write it: a hex subject id and a hyphenated receipt id (what
            # the general reading below makes of it, in one step).
            written, at, _, revision, raw_subject, raw_receipt = _USUAL.unpack_from(data)
            if written != version:
                return _INVALID
            subject: str | None = raw_subject.hex()
            receipt: str | None = _uuid_text(raw_receipt)
            end = _USUAL.size
        else:
            written, at, kinds, revision = _HEAD.unpack_from(data)
            if written != version:
                return _INVALID
            subject, end = _unpack_id(kinds & 3, data, _HEAD.size)
            receipt, end = _unpack_id(kinds >> 2 & 3, data, end)
        if not subject:
            return _INVALID
        bits = data[end:]
        if revision != self._revision_bytes or len(bits) != self._mask_bytes:
            return None, subject, at
        sets = self._masks.get(bits)
        if sets is None:
            mask = int.from_bytes(bits, "little")
            granted = frozenset(key for i, key in enumerate(self._bit_order) if mask >> i & 1)
            sets = (granted, self.optional - granted, self.necessary | granted)
            if len(self._masks) < _MASKS_LIMIT:
                self._masks[bits] = sets
        granted, denied, allowed = sets
        state = _decided_state(
            granted,
            denied,
            self.necessary,
            allowed,
            self.revision,
            receipt,
            subject,
            at,
            at + self.lifetime,
        )
        return state, subject, at

    def _unsign(self, value: str) -> tuple[bytes, int] | None:
        """The payload of a value signed by one of the keys, and the version whose signature
        it bears (3, or 2 for HMAC-SHA256); else ``None``. What ``self._signer.unsign(value)``
        (and version 2's signer) returns or rejects (with ``BadData``), in one call instead
        of its several layers, since every new visitor's cookie is verified on the request
        path. tests/test_consent_cookie.py holds the two to the same answers."""
        signed = value.encode("utf-8")
        payload, sep, signature = signed.rpartition(b".")
        if not sep:
            return None
        try:
            mac = _b64decode(signature)
        except ValueError:
            return None
        # A 16-byte tag can only be BLAKE2s', a 32-byte one only HMAC-SHA256's.
        version, keys = (
            (_VERSION, self._keys) if len(mac) == _TAG_SIZE else (_VERSION_2, self._keys_2)
        )
        for keyed in keys:
            check = keyed.copy()
            check.update(payload)
            if hmac.compare_digest(mac, check.digest()):
                return payload, version
        return None

    def _verify_old(self, value: str) -> _Verified:
        """A cookie of the earlier format: JSON (``r`` revision, ``g`` granted keys, ``i``
        receipt id, ``s`` subject id) in itsdangerous' ``URLSafeTimedSerializer``."""
        try:
            payload, signed = self._old.loads(value, return_timestamp=True)
            at = int(signed.timestamp())
        except (BadData, ValueError, TypeError, UnicodeError, OverflowError, OSError):
            return _INVALID
        if not isinstance(payload, dict):
            return _INVALID
        subject = payload.get("s")
        if not isinstance(subject, str) or not subject:
            return _INVALID
        granted = payload.get("g")
        receipt = payload.get("i")
        if (
            payload.get("r") != self.revision
            or not isinstance(granted, list)
            or not all(isinstance(g, str) for g in granted)
            or not (receipt is None or isinstance(receipt, str))
        ):
            return None, subject, at
        state = self.decision(granted, receipt_id=receipt, subject_id=subject, decided_at=at)
        return state, subject, at

"""The visitor's consent state and the signed consent cookie that carries it.

The cookie is an itsdangerous ``URLSafeTimedSerializer`` token (HMAC-SHA256). The first secret
key signs; every key verifies, so keys can be rotated without losing anybody's decision.

A forged or tampered cookie, one older than the configured lifetime, or one given under another
policy revision all mean "no decision". A validly signed cookie of an older revision still lends
its pseudonymous subject id, so the visitor's next receipt continues the same history.

Visitors send the same cookie on every request, so verified cookies are cached (bounded by count,
and by length: values longer than twice the longest cookie the policy signs are verified each
time); the lifetime is checked again on every hit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, bytes_to_int

from .policy import Policy
from .receipts import new_uuid7_hex

logger = logging.getLogger("consent")

__all__ = [
    "ConsentCookie",
    "ConsentState",
    "current_consent",
    "resolve_secret_keys",
]

_CACHE_LIMIT = 8192
# Verified values are kept only up to a length that the longest cookie this policy signs stays
# well within (the others, forgeries, are verified each time they come).
_CACHE_VALUE_MIN = 512


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


_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The last second a datetime can hold (9999-12-31T23:59:59Z): itsdangerous turns a cookie's
# timestamp into one, and refuses the cookie beyond it.
_LAST_TIMESTAMP = 253402300799


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class ConsentCookie:
    """Encodes and verifies the signed consent cookie for one policy."""

    __slots__ = (
        "_cache",
        "_cache_value_max",
        "_key",
        "_no_decision",
        "_serializer",
        "_verify_keys",
        "lifetime",
        "necessary",
        "optional",
        "revision",
    )

    def __init__(self, keys: Sequence[str], policy: Policy) -> None:
        # itsdangerous signs with the *last* key; the contract says the first one signs.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(keys)),
            salt="asgi-consent.cookie",
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
        )
        self.lifetime = policy.site.consent_cookie.max_age
        self.revision = policy.short_revision
        self.necessary = policy.necessary
        self.optional = frozenset(policy.optional)
        # raw cookie value -> (state or None for invalid, subject id of a stale cookie, signed at)
        # (oldest first out: see ConsentMiddleware._views)
        self._cache: OrderedDict[str, tuple[ConsentState | None, str | None, int]] = OrderedDict()
        # Frozen, so one instance serves every request without a decision.
        self._no_decision = ConsentState(necessary=self.necessary)
        # The keys as itsdangerous derives them: the signing key for dumps(), every key for
        # _unsign() (None: let itsdangerous sign and verify).
        signer = self._serializer.make_signer()
        self._key: bytes | None = signer.derive_key()
        self._verify_keys: tuple[bytes, ...] | None = tuple(
            signer.derive_key(key) for key in reversed(signer.secret_keys)
        )
        probe = {"r": self.revision, "g": ["x"], "i": "probe", "s": "probe"}
        try:
            token = self.dumps(probe)
            expected = self._serializer.loads(token, return_timestamp=True)
            same = expected[0] == probe
        except BadData:
            same = False
        if not same:  # an itsdangerous that signs differently: use it as it is
            self._key = self._verify_keys = None
        elif self._unsign(token) != (probe, int(expected[1].timestamp())):
            self._verify_keys = None  # ... or that verifies differently
        # The longest cookie this policy signs: every category granted, long ids.
        longest = self.dumps(
            {"r": self.revision, "g": list(self.optional), "i": "f" * 64, "s": "f" * 64}
        )
        self._cache_value_max = max(_CACHE_VALUE_MIN, 2 * len(longest))

    @property
    def no_decision(self) -> ConsentState:
        return self._no_decision

    def decision(
        self,
        granted: Iterable[str],
        *,
        receipt_id: str | None,
        subject_id: str,
        decided_at: int | None = None,
    ) -> ConsentState:
        """A decided state under the current revision."""
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

    def dumps(self, state: ConsentState | dict[str, Any]) -> str:
        """The signed cookie value for ``state`` (a state, or the cookie's payload)."""
        payload = (
            state
            if isinstance(state, dict)
            else {
                "r": self.revision,
                "g": sorted(state.granted),
                "i": state.receipt_id,
                "s": state.subject_id,
            }
        )
        # A decided state is signed at the moment it was decided, so the cookie's timestamp
        # (which verification turns back into decided_at) is the receipt's, even when a
        # second has ticked since.
        at = int(time.time())
        if not isinstance(state, dict) and state.decided_at is not None:
            at = state.decided_at
        key = self._key
        if key is None:
            signer = self._serializer.make_signer()
            if isinstance(signer, TimestampSigner):
                signer.get_timestamp = lambda: at  # type: ignore[method-assign]
            return signer.sign(self._serializer.dump_payload(payload)).decode("ascii")
        # What URLSafeTimedSerializer.dumps writes, byte for byte (compact JSON, compressed
        # when that is shorter, URL-safe base64, timestamp, HMAC-SHA256 under the derived
        # key), without deriving the key again for every cookie.
        data = _COMPACT_JSON(payload).encode("utf-8")
        deflate = zlib.compressobj(6, zlib.DEFLATED, 15, 8)  # zlib.compress's defaults, but
        compressed = deflate.compress(data) + deflate.flush()  # a third of its time here
        value = b"." + _b64(compressed) if len(compressed) < len(data) - 1 else _b64(data)
        value += b"." + _b64(struct.pack(">Q", at).lstrip(b"\x00"))
        signature = _b64(hmac.digest(key, value, "sha256"))
        return (value + b"." + signature).decode("ascii")

    def loads(self, value: str, now: float | None = None) -> tuple[ConsentState, str | None]:
        """Verify a cookie value: ``(state, subject_id)``.

        The state is :attr:`no_decision` for anything forged, expired or stale; ``subject_id``
        is the pseudonymous id of any validly signed cookie (also a stale one), else ``None``.
        """
        now = time.time() if now is None else now
        hit = self._cache.get(value)
        if hit is None:
            hit = self._verify(value)
            if len(value) <= self._cache_value_max:
                if len(self._cache) >= _CACHE_LIMIT:
                    with contextlib.suppress(KeyError):  # emptied meanwhile by another thread
                        self._cache.popitem(last=False)
                self._cache[value] = hit
        state, subject, signed_at = hit
        if now - signed_at > self.lifetime:
            return self._no_decision, None
        if state is None:
            return self._no_decision, subject
        return state, subject

    def _unsign(self, value: str) -> tuple[Any, int] | None:
        """What ``URLSafeTimedSerializer.loads(value, return_timestamp=True)`` returns, with
        the timestamp in seconds, or ``None`` where it raises: the same steps, with the keys
        derived once instead of on every call (about 60 % of the time itsdangerous takes)."""
        keys = self._verify_keys
        assert keys is not None
        try:
            signed, dot, signature = value.encode("utf-8").rpartition(b".")
            if not dot:
                return None
            mac = base64_decode(signature)
            for key in keys:
                if hmac.compare_digest(mac, hmac.digest(key, signed, "sha256")):
                    break
            else:
                return None
            payload, dot, stamp = signed.rpartition(b".")
            if not dot:
                return None
            at = bytes_to_int(base64_decode(stamp))
            if at > _LAST_TIMESTAMP:
                return None
            compressed = payload.startswith(b".")
            data = base64_decode(payload[1:] if compressed else payload)
            if compressed:
                data = zlib.decompress(data)
            return json.loads(data.decode("utf-8")), at
        except Exception:  # what itsdangerous reports as BadData, or cannot encode
            return None

    def _verify(self, value: str) -> tuple[ConsentState | None, str | None, int]:
        if self._verify_keys is not None:
            found = self._unsign(value)
            if found is None:
                return None, None, 0
            payload, at = found
        else:
            try:
                payload, signed = self._serializer.loads(value, return_timestamp=True)
                at = int(signed.timestamp())
            except (BadData, ValueError, TypeError, UnicodeError, OverflowError, OSError):
                return None, None, 0
        if not isinstance(payload, dict):
            return None, None, 0
        subject = payload.get("s")
        if not isinstance(subject, str) or not subject:
            return None, None, 0
        granted = payload.get("g")
        receipt = payload.get("i")
        if (
            payload.get("r") != self.revision
            or not isinstance(granted, list)
            or not all(isinstance(g, str) for g in granted)
            or not (receipt is None or isinstance(receipt, str))
        ):
            return None, subject, at
        return (
            self.decision(granted, receipt_id=receipt, subject_id=subject, decided_at=at),
            subject,
            at,
        )

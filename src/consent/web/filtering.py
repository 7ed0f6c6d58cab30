"""The cookie filter, both directions: request ``Cookie`` headers and response ``Set-Cookie``.

Request side: a :class:`_CookieView` of each (merged) ``Cookie`` header, cached, holds its pairs
and its :class:`_Shape` (the cookies without their values, cached and shared by every visitor
who sends the same cookies), which holds their categories and, per consent state, what passes
(:class:`_Outcome`): the pairs the application sees, and the deletions for cookies of refused
categories the browser still sent.
Response side: :meth:`CookieFilter.keep_set_cookie` judges one ``Set-Cookie`` value (deletions
always pass) and :meth:`CookieFilter.response_start` a whole start message; pages being
rewritten are filtered in the same pass as their other headers
(:func:`consent.html.headers.scan_start`), with the same judge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from starlette.types import Message

from ..classify import Classifier, Match
from ..cookies import bytes_headers, cookie_names, header_bytes, is_deletion, set_cookie_name
from ..html.headers import VARY_COOKIE, add_headers
from ..state import ConsentState
from .cache import BoundedCache
from .metrics import UNDECLARED, MetricsRecorder

__all__ = ["CookieFilter"]

Headers = list[tuple[bytes, bytes]]

_VIEW_CACHE_LIMIT = 1024
# What the cached views may hold in all: their headers, and 128 bytes for each pair they hold
# (its bytes, its tuple), so that many small pairs count too.
_VIEW_CACHE_BYTES = 4 << 20
_VIEW_PAIR_COST = 128
_SEEN_LIMIT = 8192
_VIEW_MAX_HEADER = 4096
_OUTCOME_LIMIT = 32
# Shapes of Cookie headers (the cookies, without their values) kept, and what they may hold.
_SHAPE_CACHE_LIMIT = 256
_SHAPE_CACHE_BYTES = 1 << 20
_NAME_CACHE_LIMIT = 1024
# Consent cookies of one header that are read (the first ones sent).
_CONSENT_COOKIES_MAX = 4
_KEPT_SETS_LIMIT = 64
NOTHING_KEPT: frozenset[bytes] = frozenset()


def _is_set_cookie(name: object) -> bool:
    """Whether a header name of ten characters is ``Set-Cookie``, in any case and of any type:
    ASGI says bytes, but servers pass ``str`` (h11), ``memoryview`` (httptools) and
    ``bytearray`` names on to the browser."""
    found = name if type(name) is bytes else header_bytes(name)
    return found is not None and found.lower() == b"set-cookie"


class _Outcome:
    """The request-side filtering of one shape of Cookie header for one consent state (cached
    per shape): which pairs pass, and what the others make the middleware do."""

    __slots__ = ("blocked", "counted", "dropped", "expire", "expired", "keep", "undeclared")

    def __init__(
        self,
        keep: tuple[int, ...],
        dropped: bool,
        blocked: tuple[str, ...],
        undeclared: tuple[str, ...],
        expire: tuple[tuple[bytes, bytes], ...],
        expired: tuple[str, ...],
    ) -> None:
        self.keep = keep  # where the pairs that pass are, in header.split(b";")
        self.dropped = dropped
        self.blocked = blocked
        self.undeclared = undeclared
        self.expire = expire
        self.expired = expired
        self.counted = bool(blocked or undeclared or expired)


# One pair of a Cookie header: (where it is in header.split(b";"), name, its match or None,
# is the consent cookie).
_Pair = tuple[int, str, "Match | None", bool]
_NAME_MAX = 256

# A pair's value: from the first "=" of the pair to the next ";". A Cookie header with every
# value cut to "=" (its skeleton) has the same pairs, with the same names, in the same places.
_VALUE = re.compile(rb"=[^;]*")
# A shape found this many times in the cache is tried first for new headers (see
# CookieFilter._shape).
_GUESS_AFTER = 8

_Matcher = Callable[[bytes], "re.Match[bytes] | None"]


def _matcher(skeleton: bytes) -> _Matcher:
    """``fullmatch`` of a pattern matching exactly the headers whose skeleton is ``skeleton``:
    its text between the values, each value being what ``_VALUE`` cuts (``=`` and up to the
    next ``;``, which the skeleton has right after each ``=``, so the match is linear)."""
    return re.compile(b"=[^;]*".join(map(re.escape, skeleton.split(b"=")))).fullmatch


class _Names(dict[str, tuple[str, "Match | None", bool]]):
    """What a cookie name in a Cookie header stands for: ``(name, match or None, is the
    consent cookie)``. Values change from request to request (an analytics cookie counting
    page views, a rotated session id), names do not, so a header not seen before is parsed
    without classifying its names again. Bounded: names of up to 256 characters, emptied when
    full."""

    def __init__(self, cookie_name: str, classifier: Classifier) -> None:
        super().__init__()
        self.cookie_name = cookie_name
        self.classifier = classifier

    def add(self, name: str) -> tuple[str, Match | None, bool]:
        found = (
            (name, None, True)
            if name == self.cookie_name
            else (name, self.classifier.match(name), False)
        )
        if len(name) <= _NAME_MAX:  # real names are short; others are not worth keeping
            if len(self) >= _NAME_CACHE_LIMIT:
                self.clear()
            self[name] = found
        return found


class _Shape:
    """The cookies of a Cookie header, without their values: where each pair is, its name,
    category and whether it is the consent cookie; and per consent state, what passes.

    Every visitor of a site sends one of a few shapes (the same cookies, each with its own
    values), so a visitor the middleware has not seen before is filtered with the work done
    for the others: made from the header's skeleton (see ``_VALUE``), cached by it.
    """

    __slots__ = ("consent", "items", "matcher", "outcomes", "uses")

    def __init__(self, skeleton: bytes, names: _Names) -> None:
        consent: list[tuple[int, str]] = []
        items: list[_Pair] = []
        for at, name in cookie_names(skeleton):
            found = names.get(name)
            if found is None:
                found = names.add(name)
            items.append((at, name, found[1], found[2]))
            if found[2]:
                consent.append((at, name))
        # The first few consent cookies only: each is verified (a forged one on every
        # request), and a browser holds more than one only when they were set with other
        # paths or domains.
        self.consent = tuple(consent[:_CONSENT_COOKIES_MAX])
        self.items = tuple(items)
        self.outcomes: dict[tuple[frozenset[str], frozenset[str], bool], _Outcome] = {}
        self.uses = 1  # times found in the cache, and made
        self.matcher: _Matcher | None = None  # (from _GUESS_AFTER uses on)

    def outcome(self, state: ConsentState, secure: bool, allow_undeclared: bool) -> _Outcome:
        key = (state.allowed, state.denied, secure)
        found = self.outcomes.get(key)
        if found is None:
            found = self._filter(state.allowed, state.denied, secure, allow_undeclared)
            if len(self.outcomes) >= _OUTCOME_LIMIT:
                self.outcomes.clear()
            self.outcomes[key] = found
        return found

    def _filter(
        self, allowed: frozenset[str], denied: frozenset[str], secure: bool, allow_undeclared: bool
    ) -> _Outcome:
        keep: list[int] = []
        dropped = False
        blocked: list[str] = []
        undeclared: list[str] = []
        expire: list[bytes] = []
        expired: list[str] = []
        for at, cname, found, is_consent in self.items:
            if is_consent:
                keep.append(at)
                continue
            if found is None:
                undeclared.append(cname)
                if allow_undeclared:
                    keep.append(at)
                else:
                    dropped = True
                    blocked.append(UNDECLARED)
                continue
            category = found[0]
            if category in allowed:
                keep.append(at)
                continue
            dropped = True
            blocked.append(category)
            if category in denied:
                deletions = found[1].deletions(cname, secure=secure)
                if deletions:
                    expire.extend(deletions)
                    expired.append(category)
        return _Outcome(
            tuple(keep),
            dropped,
            tuple(blocked),
            tuple(undeclared),
            # The deletions answer this visitor's cookies: whatever carries them varies with
            # the Cookie header, so that a shared cache does not replay them to others.
            (*((b"set-cookie", header) for header in expire), *VARY_COOKIE) if expire else (),
            tuple(expired),
        )


class _CookieView:
    """What one (merged) request Cookie header holds: its shape, its pairs, the values of its
    consent cookies.

    Visitors often send the same header on request after request, so views are cached per
    header (from the second time it is seen: see ``CookieFilter.view``), with the decided
    state its consent cookie was verified to hold (``verified``), whose lifetime the
    middleware re-checks on every request, and the header last filtered from it.
    """

    __slots__ = ("consent", "last", "parts", "shape", "verified")

    def __init__(self, header: bytes, shape: _Shape) -> None:
        parts = header.split(b";")
        consent: list[str] = []
        for at, name in shape.consent:
            value = parts[at].strip(b" \t")[len(name) + 1 :].strip(b' \t"')
            if value.isascii():  # (anything else is never a valid consent cookie)
                consent.append(value.decode("ascii"))
        self.consent = tuple(consent)
        self.parts = parts
        self.shape = shape
        # (decided state, when its cookie was signed)
        self.verified: tuple[ConsentState, int] | None = None
        # (an outcome, the header it lets through)
        self.last: tuple[_Outcome, bytes] | None = None

    def outcome(self, state: ConsentState, secure: bool, filt: CookieFilter) -> _Outcome:
        return self.shape.outcome(state, secure, filt.allow_undeclared)

    def header(self, outcome: _Outcome) -> bytes:
        """The Cookie header that ``outcome`` lets through."""
        last = self.last
        if last is not None and last[0] is outcome:
            return last[1]
        parts = self.parts
        header = b"; ".join([parts[at].strip(b" \t") for at in outcome.keep])
        self.last = (outcome, header)
        return header


class CookieFilter:
    """Which cookies pass, in both directions, for one site's policy (counting what does not).

    Caches, all bounded: the views of ``Cookie`` headers seen more than once, the meaning of
    each cookie name, and per set of allowed categories the ``Set-Cookie`` names it always lets
    through (:attr:`kept_names`, which :func:`~consent.html.headers.scan_start` keeps at once).
    """

    def __init__(
        self,
        classifier: Classifier,
        cookie_name: str,
        allow_undeclared: bool,
        recorder: MetricsRecorder,
    ) -> None:
        self.classifier = classifier
        self.cookie_name = cookie_name
        self.allow_undeclared = allow_undeclared
        self._recorder = recorder
        self._views: BoundedCache[bytes, _CookieView] = BoundedCache(
            _VIEW_CACHE_LIMIT, _VIEW_CACHE_BYTES, _view_cost
        )
        self._names = _Names(cookie_name, classifier)
        self._shapes: BoundedCache[bytes, _Shape] = BoundedCache(
            _SHAPE_CACHE_LIMIT, _SHAPE_CACHE_BYTES, _shape_cost
        )
        self._seen: set[int] = set()  # hashes of headers seen once (see view)
        # The shape most recently found among those many visitors send, with its matcher.
        self._guess: tuple[_Matcher, _Shape] | None = None
        # Set-Cookie name bytes -> (name, match or None, is the consent cookie)
        self._set_names: dict[bytes, tuple[str, Match | None, bool]] = {}
        # Per set of allowed categories, the Set-Cookie name bytes that it always lets through
        # (names of its categories, found by keep_set_cookie): scan_start keeps those at once.
        self.kept_names: dict[frozenset[str], set[bytes]] = {}

    def view(self, header: bytes) -> _CookieView:
        """What a (merged) Cookie header holds, cached from the second time it is seen."""
        views = self._views
        try:
            view = views.get(header)
        except TypeError:  # a bytearray (ASGI says bytes): unhashable, so look up a copy
            return self.view(bytes(header))
        if view is None:
            view = _CookieView(header, self._shape(header))
            if len(header) <= _VIEW_MAX_HEADER:
                # Kept from the second time a header is seen: many are sent once only (an
                # analytics cookie that counts page views changes the header on every
                # request), and would push out the headers that do come back.
                seen = self._seen
                key = hash(header)
                if key in seen:
                    views.put(header, view)
                else:
                    if len(seen) >= _SEEN_LIMIT:
                        seen.clear()
                    seen.add(key)
        return view

    def _shape(self, header: bytes) -> _Shape:
        """The shape of a Cookie header, cached by its skeleton. The shape most recently found
        among those many visitors share is tried first, by matching the header against it
        (reading it once, where cutting its values costs about three times as much): most new
        visitors send the cookies the visitor before them sent."""
        guess = self._guess
        if guess is not None and guess[0](header) is not None:
            return guess[1]
        skeleton = _VALUE.sub(b"=", header)
        shape = self._shapes.get(skeleton)
        if shape is None:
            shape = _Shape(skeleton, self._names)
            if len(skeleton) <= _VIEW_MAX_HEADER:
                self._shapes.put(skeleton, shape)
            return shape
        shape.uses += 1
        if shape.matcher is None and shape.uses >= _GUESS_AFTER:
            shape.matcher = _matcher(skeleton)  # (once per shape, and only for common ones)
        if shape.matcher is not None:
            self._guess = (shape.matcher, shape)
        return shape

    def count_request(self, outcome: _Outcome) -> None:
        """Count what filtering a request's Cookie header removed and expired."""
        self._recorder.request(outcome.undeclared, outcome.blocked, outcome.expired)

    def response_start(
        self, message: Message, allowed: frozenset[str], expire: Sequence[tuple[bytes, bytes]]
    ) -> Message:
        """A copy of a response-start message without disallowed ``Set-Cookie`` headers, and
        with ``expire`` appended."""
        headers = message.get("headers") or []
        keep = self.keep_set_cookie
        kept = self.kept_names.get(allowed, NOTHING_KEPT)
        out: Headers | None = None
        i = -1
        try:
            for name, value in headers:
                i += 1
                # (a name of another type, as servers pass them on: see _is_set_cookie)
                if name == b"set-cookie" or (len(name) == 10 and _is_set_cookie(name)):
                    if (
                        # A name its choices always let through (see _kept_names) is kept
                        # at once.
                        type(value) is bytes
                        and (parts := value.partition(b"="))[1]
                        and parts[0] in kept
                    ) or keep(value, allowed):
                        if type(name) is not bytes or type(value) is not bytes:
                            # passed on as bytes, which every server can send
                            if out is None:
                                out = list(headers[:i])
                            readable = header_bytes(value)
                            if readable is not None:  # (always: keep() read it)
                                out.append((b"set-cookie", readable))
                        elif out is not None:
                            out.append((name, value))
                    elif out is None:
                        out = list(headers[:i])
                elif out is not None:
                    out.append((name, value))
        except (TypeError, ValueError):
            # A header that is not a pair of texts (a name without a length): read them all
            # as bytes, without those that cannot be read, and filter them again.
            again = {**message, "headers": bytes_headers(headers)}
            return self.response_start(again, allowed, expire)
        if not expire and out is None:
            return message
        if out is None:
            out = list(headers)
        add_headers(out, expire)
        message = dict(message)
        message["headers"] = out
        return message

    def keep_set_cookie(self, value: bytes, allowed: frozenset[str]) -> bool:
        """Whether one ``Set-Cookie`` value may reach the browser (counting it if not)."""
        if type(value) is not bytes:
            found = header_bytes(value)  # (str, memoryview, bytearray: servers pass them on)
            if found is None:
                return False  # nothing a server can send: dropped (never counted)
            value = found
        # The name is what precedes the first "=" of the first ";"-part (RFC 6265bis 5.6);
        # the few distinct names a site sets are classified once.
        key, eq, _ = value.partition(b"=")
        if not eq or key.partition(b";")[1]:
            key = b";"  # no "=" in the first ";"-part: a nameless cookie
        known = self._set_names.get(key)
        if known is None:
            cname = set_cookie_name(value)
            known = (cname, self.classifier.match(cname), cname == self.cookie_name and bool(cname))
            if len(key) <= _NAME_MAX:  # real names are short; others are not worth keeping
                if len(self._set_names) >= _NAME_CACHE_LIMIT:
                    self._set_names.clear()
                self._set_names[key] = known
        if known[2]:
            return True
        match = known[1]
        if match is None:
            self._recorder.undeclared(known[0])
            if self.allow_undeclared:
                return True
            category = UNDECLARED
        else:
            category = match[0]
            if category in allowed:
                kept = self.kept_names.get(allowed)
                if kept is None and len(self.kept_names) < _KEPT_SETS_LIMIT:
                    kept = self.kept_names[allowed] = set()
                if (
                    kept is not None
                    and len(kept) < _NAME_CACHE_LIMIT
                    and key != b";"
                    and len(key) <= _NAME_MAX
                ):
                    kept.add(key)
                return True
        if is_deletion(value):
            return True
        self._recorder.blocked(category, "response")
        return False


def _view_cost(header: bytes, view: _CookieView) -> int:
    # the header, its parts, and what a filtered header may hold
    return 3 * len(header) + _VIEW_PAIR_COST * len(view.parts)


def _shape_cost(skeleton: bytes, shape: _Shape) -> int:
    return len(skeleton) + _VIEW_PAIR_COST * len(shape.items)

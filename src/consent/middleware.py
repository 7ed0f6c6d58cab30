"""``ConsentMiddleware``: the per-request path, nothing else.

For every ``http`` and ``websocket`` scope:

1. read the signed consent cookie (cached verification) and ``Sec-GPC``;
2. drop request cookies whose category the visitor has not allowed and hand the app a copied scope with
   one merged ``cookie`` header (the caller's own scope when no header changes) and
   ``scope["state"]["consent"]``;
3. drop response ``Set-Cookie`` headers of categories not allowed (deletions, in every reading of
   them, always pass), and expire cookies of refused categories the browser still sent;
4. optionally inject the banner and un-gate consented scripts in HTML pages (:mod:`consent.html`).

Requests under the prefix (default ``/_consent``) and ``/.well-known/gpc.json`` go to
:mod:`consent.endpoints` instead of the app.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .classify import Classifier, Match
from .cookies import bytes_headers, header_bytes, is_deletion, set_cookie_name
from .endpoints import ConsentEndpoints
from .html import (
    DocumentCache,
    HtmlResponder,
    banner_tags,
    consent_mode_default,
    fix_headers,
    html_page_nonce,
    rewrite_document,
    scan_start,
    script_tag,
    with_length,
)
from .pages import noscript_form
from .policy import Policy, load_policy
from .state import ConsentCookie, ConsentState, current_consent, resolve_secret_keys

__all__ = ["ConsentMetrics", "ConsentMiddleware"]

logger = logging.getLogger("consent")

Headers = list[tuple[bytes, bytes]]
_UNDECLARED_LOG_LIMIT = 1000
#: Undeclared names longer than this are counted and logged together, under LONG_NAMES.
_UNDECLARED_NAME_MAX = 256
LONG_NAMES = "(names of more than 256 characters)"
_VARY_COOKIE: tuple[tuple[bytes, bytes], ...] = ((b"vary", b"Cookie"),)


@dataclass
class ConsentMetrics:
    """Counters an operator can read from Python (``middleware.metrics``) or export to a monitor.

    ``blocked`` counts cookies removed per category and direction key (``"request"``/``"response"``);
    ``undeclared`` counts every cookie name the policy does not declare, in either direction.
    """

    requests: int = 0
    websockets: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    blocked_request: Counter[str] = field(default_factory=Counter)
    blocked_response: Counter[str] = field(default_factory=Counter)
    expired: Counter[str] = field(default_factory=Counter)
    undeclared: Counter[str] = field(default_factory=Counter)
    gpc_requests: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "websockets": self.websockets,
            "gpc_requests": self.gpc_requests,
            "blocked": dict(self.blocked),
            "blocked_request": dict(self.blocked_request),
            "blocked_response": dict(self.blocked_response),
            "expired": dict(self.expired),
            "undeclared": dict(self.undeclared),
        }


UNDECLARED = "(undeclared)"

_VIEW_CACHE_LIMIT = 1024
# What the cached views may hold in all: their headers, and 128 bytes for each pair they hold
# (its bytes, its tuple), so that many small pairs count too.
_VIEW_CACHE_BYTES = 4 << 20
_VIEW_PAIR_COST = 128
_SEEN_LIMIT = 8192
_VIEW_MAX_HEADER = 4096
_OUTCOME_LIMIT = 4
_NAME_CACHE_LIMIT = 1024
_KEPT_SETS_LIMIT = 64
_NOTHING_KEPT: frozenset[bytes] = frozenset()
_FORMS_LIMIT = 1024
_FORM_ADDRESS_MAX = 1024  # forms for longer page addresses are made each time, never kept


def _is_set_cookie(name: object) -> bool:
    """Whether a header name of ten characters is ``Set-Cookie``, in any case and of any type:
    ASGI says bytes, but servers pass ``str`` (h11), ``memoryview`` (httptools) and
    ``bytearray`` names on to the browser."""
    found = name if type(name) is bytes else header_bytes(name)
    return found is not None and found.lower() == b"set-cookie"


class _Outcome:
    """The request-side filtering of one Cookie header for one consent state (cached)."""

    __slots__ = ("blocked", "counted", "dropped", "expire", "expired", "header", "undeclared")

    def __init__(
        self,
        header: bytes,
        dropped: bool,
        blocked: tuple[str, ...],
        undeclared: tuple[str, ...],
        expire: tuple[tuple[bytes, bytes], ...],
        expired: tuple[str, ...],
    ) -> None:
        self.header = header
        self.dropped = dropped
        self.blocked = blocked
        self.undeclared = undeclared
        self.expire = expire
        self.expired = expired
        self.counted = bool(blocked or undeclared or expired)


# One pair of a Cookie header: (name, the pair as sent, its match or None, is the consent
# cookie).
_Pair = tuple[str, bytes, "Match | None", bool]
_NAME_MAX = 256


class _Names(dict[bytes, tuple[str, "Match | None", bool]]):
    """What a cookie name, as it stands before the ``=`` in a Cookie header, stands for:
    ``(name, match or None, is the consent cookie)``. Values change from request to request
    (an analytics cookie counting page views, a rotated session id), names do not, so a
    header not seen before is parsed without classifying its names again. Bounded: names of
    up to 256 bytes, emptied when full."""

    def __init__(self, cookie_name: str, classifier: Classifier) -> None:
        super().__init__()
        self.cookie_name = cookie_name
        self.classifier = classifier

    def add(self, key: bytes) -> tuple[str, Match | None, bool]:
        name = key.strip(b" \t").decode("latin-1")
        found = (
            (name, None, True)
            if name == self.cookie_name
            else (name, self.classifier.match(name), False)
        )
        if len(key) <= _NAME_MAX:  # real names are short; others are not worth keeping
            if len(self) >= _NAME_CACHE_LIMIT:
                self.clear()
            self[key] = found
        return found


class _CookieView:
    """What one (merged) request Cookie header holds.

    Visitors often send the same header on request after request, so the parsing, the consent
    cookie values and the classification of every name are cached per header (from the second
    time it is seen: see ``ConsentMiddleware._view``); the filtering result is cached per
    consent state. Only pure functions of the header live here, and the decided
    state its consent cookie was verified to hold (``verified``), whose lifetime the
    middleware re-checks on every request.
    """

    __slots__ = ("consent", "items", "outcomes", "verified")

    def __init__(self, header: bytes, names: _Names) -> None:
        consent: list[str] = []
        # (name, raw pair, match or None, is the consent cookie)
        items: list[_Pair] = []
        # The pairs as cookie_pairs() splits them, each name looked up as it was sent.
        for part in header.split(b";"):
            key, eq, _ = part.partition(b"=")
            raw = part.strip(b" \t")
            if not eq:
                if not raw:
                    continue
                key = b""  # a pair without "=" has the empty name (RFC 6265bis 5.6)
            found = names.get(key)
            if found is None:
                found = names.add(key)
            items.append((found[0], raw, found[1], found[2]))
            if found[2]:
                value = raw[len(found[0]) + 1 :].strip(b' \t"')
                with contextlib.suppress(UnicodeDecodeError):
                    consent.append(value.decode("ascii"))
        self.consent = tuple(consent)
        self.items = tuple(items)
        # (decided state, when its cookie was signed)
        self.verified: tuple[ConsentState, int] | None = None
        self.outcomes: dict[tuple[frozenset[str], frozenset[str], bool], _Outcome] = {}

    def outcome(self, state: ConsentState, secure: bool, mw: ConsentMiddleware) -> _Outcome:
        key = (state.allowed, state.denied, secure)
        found = self.outcomes.get(key)
        if found is None:
            found = self._filter(state.allowed, state.denied, secure, mw.allow_undeclared)
            if len(self.outcomes) >= _OUTCOME_LIMIT:
                self.outcomes.clear()
            self.outcomes[key] = found
        return found

    def _filter(
        self, allowed: frozenset[str], denied: frozenset[str], secure: bool, allow_undeclared: bool
    ) -> _Outcome:
        kept: list[bytes] = []
        dropped = False
        blocked: list[str] = []
        undeclared: list[str] = []
        expire: list[bytes] = []
        expired: list[str] = []
        for cname, raw, found, is_consent in self.items:
            if is_consent:
                kept.append(raw)
                continue
            if found is None:
                undeclared.append(cname)
                if allow_undeclared:
                    kept.append(raw)
                else:
                    dropped = True
                    blocked.append(UNDECLARED)
                continue
            category = found[0]
            if category in allowed:
                kept.append(raw)
                continue
            dropped = True
            blocked.append(category)
            if category in denied:
                deletions = found[1].deletions(cname, secure=secure)
                if deletions:
                    expire.extend(deletions)
                    expired.append(category)
        return _Outcome(
            b"; ".join(kept),
            dropped,
            tuple(blocked),
            tuple(undeclared),
            # The deletions answer this visitor's cookies: whatever carries them varies with
            # the Cookie header, so that a shared cache does not replay them to others.
            (*((b"set-cookie", header) for header in expire), *_VARY_COOKIE) if expire else (),
            tuple(expired),
        )


class Injection:
    """What the middleware adds to HTML pages, prepared once; one responder per HTML response."""

    def __init__(self, policy: Policy, prefix: str, language: Callable[[Scope], str]) -> None:
        self.policy = policy
        self.prefix = prefix
        self._language = language  # the request's language (see ConsentEndpoints.language)
        types: dict[str, list[str]] = {}
        for key, cat in policy.categories.items():
            for t in cat.consent_mode:
                types.setdefault(t, []).append(key)
        self._types = types
        self._head_start: dict[frozenset[str], bytes] = {}
        self._head_end: dict[str, bytes] = {}
        # The <noscript> form per page address, state (GPC changes it) and language, for
        # first visits.
        self._forms: dict[tuple[str, str, bytes, ConsentState, str], bytes] = {}
        #: Rewritten pages (see :class:`consent.html.DocumentCache`).
        self.documents = DocumentCache()
        # The page last rewritten for a visitor who has decided, without a nonce: (what the
        # visitor allows, root path, page, rewrite). The same page asked for again by visitors
        # with the same choices, the usual case, is answered without the lookups.
        self._last: tuple[frozenset[str], str, bytes, tuple[bytes, bool, bytes]] | None = None

    def head_start(self, allowed: frozenset[str], nonce: str = "") -> bytes:
        """Google Consent Mode: everything denied by default, then what this visitor granted."""
        if not self._types:
            return b""
        if nonce:
            return script_tag(self._consent_mode(allowed), nonce=nonce).encode()
        cached = self._head_start.get(allowed)
        if cached is None:
            cached = script_tag(self._consent_mode(allowed)).encode()
            self._head_start[allowed] = cached
        return cached

    def _consent_mode(self, allowed: frozenset[str]) -> str:
        granted = [t for t, cats in self._types.items() if all(c in allowed for c in cats)]
        return consent_mode_default(sorted(self._types), sorted(granted))

    def head_end(self, root_path: str, nonce: str = "") -> bytes:
        if nonce:
            return banner_tags(root_path + self.prefix, nonce=nonce).encode()
        cached = self._head_end.get(root_path)
        if cached is None:
            cached = banner_tags(root_path + self.prefix).encode()
            if len(self._head_end) < 16:
                self._head_end[root_path] = cached
        return cached

    def body_start(self, scope: Scope, state: ConsentState) -> bytes:
        """For visitors without JavaScript who have not decided: the same choices as a form."""
        if state.decided:
            return b""
        path = scope.get("path", "/")
        query = scope.get("query_string", b"")
        root = scope.get("root_path", "")
        language = self._language(scope)
        key = (root, path, query, state, language)
        cached = self._forms.get(key)
        if cached is not None:
            return cached
        keep = len(path) + len(query) <= _FORM_ADDRESS_MAX  # (the form holds the address)
        next_url = path + ("?" + query.decode("latin-1") if query else "")
        cached = noscript_form(
            self.policy, root + self.prefix, state, next_url=next_url, language=language
        ).encode()
        if keep:
            if len(self._forms) >= _FORMS_LIMIT:
                self._forms.clear()
            self._forms[key] = cached
        return cached

    def document(
        self, scope: Scope, message: Message, state: ConsentState, nonce: str = ""
    ) -> tuple[bytes, bool, bytes]:
        """A page whose body is the one message ``message``, rewritten for this visitor:
        ``(body, changed, Content-Length)`` (see :func:`consent.html.rewrite_document`).
        ``nonce``: the page's CSP script nonce, given to the injected tags."""
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)
        if not nonce and state.decided and len(body) <= self.documents.max_document:
            # Everything inserted then depends only on what the visitor allows and the root
            # path (no <noscript> form once decided): the rewrite is a function of those and
            # the page.
            allowed = state.allowed
            root = scope.get("root_path", "")
            last = self._last
            if last is not None and last[0] == allowed and last[1] == root and last[2] == body:
                return last[3]
            done = self.documents.rewrite(
                body, self.head_start(allowed), self.head_end(root), b"", allowed
            )
            self._last = (allowed, root, body, done)
            return done
        return rewrite_document(
            body,
            head_start=self.head_start(state.allowed, nonce),
            head_end=self.head_end(scope.get("root_path", ""), nonce),
            body_start=self.body_start(scope, state),
            granted=state.allowed,
            # A nonce is new on every response, and so is the page: nothing worth caching.
            cache=None if nonce else self.documents,
        )

    def responder(
        self,
        send: Send,
        scope: Scope,
        state: ConsentState,
        nonce: str = "",
        extra_headers: Sequence[tuple[bytes, bytes]] = _VARY_COOKIE,
    ) -> HtmlResponder:
        """A ``send`` wrapper that rewrites an HTML response streamed in several messages
        (call it with the start message, then with everything that follows); ``extra_headers``
        are added to the start message."""
        return HtmlResponder(
            send,
            head_start=self.head_start(state.allowed, nonce),
            head_end=self.head_end(scope.get("root_path", ""), nonce),
            body_start=self.body_start(scope, state),
            granted=state.allowed,
            cache=None if nonce else self.documents,
            extra_headers=extra_headers,
        )


class ConsentMiddleware:
    """Make a site's cookies obey the visitor's consent, on the server.

    ``policy`` is a policy directory (or a loaded :class:`~consent.policy.Policy`); ``secret_key`` a
    string or a sequence (the first signs, all verify), else ``CONSENT_SECRET_KEY``; ``store`` a
    receipt-store URL (default: ``[receipts] store`` of ``site.toml``); ``prefix`` where the consent
    endpoints live. ``inject_banner`` overrides ``[banner] inject``; ``trusted_origins`` adds origins
    allowed to post decisions.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: str | Path | Policy,
        secret_key: str | Sequence[str] | None = None,
        store: Any = None,
        prefix: str = "/_consent",
        inject_banner: bool | None = None,
        trusted_origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        keys = resolve_secret_keys(secret_key)
        site = self.policy.site
        self.prefix = "/" + prefix.strip("/")
        self.classifier = Classifier(self.policy)
        self.cookie = ConsentCookie(keys, self.policy)
        self.metrics = ConsentMetrics()
        self.cookie_name = site.consent_cookie.name
        self.allow_undeclared = site.undeclared == "allow"
        self.honor_gpc = site.gpc.honor
        # The file says the site honours the signal: not served when it does not.
        self.serve_gpc_json = site.gpc.well_known and site.gpc.honor
        self.sale_or_share = self.policy.sale_or_share
        self.inject = site.banner.inject if inject_banner is None else inject_banner
        self._undeclared_logged: set[str] = set()
        # Oldest first out, in the order kept beside the dict: a dict alone would first step
        # over the slots its earlier deletions left empty to find its oldest entry (an
        # OrderedDict costs every lookup a little instead).
        self._views: dict[bytes, _CookieView] = {}
        self._views_order: deque[bytes] = deque()  # its keys, oldest first
        self._views_bytes = 0  # what they hold (see _VIEW_CACHE_BYTES)
        self._names = _Names(self.cookie_name, self.classifier)
        self._seen: set[int] = set()  # hashes of headers seen once (see _view)
        # Set-Cookie name bytes -> (name, match or None, is the consent cookie)
        self._set_names: dict[bytes, tuple[str, Match | None, bool]] = {}
        # Per set of allowed categories, the Set-Cookie name bytes that it always lets through
        # (names of its categories, found by _keep_set_cookie): scan_start keeps those at once.
        self._kept_names: dict[frozenset[str], set[bytes]] = {}
        self._no_decision = self.cookie.no_decision
        self._lifetime = self.cookie.lifetime
        self._lock = Lock()

        self.endpoints = ConsentEndpoints(
            policy=self.policy,
            cookie=self.cookie,
            keys=keys,
            store=store if store is not None else site.receipts.store,
            prefix=self.prefix,
            trusted_origins=(*site.trusted_origins, *trusted_origins),
            classifier=self.classifier,
            metrics=self.metrics,
        )
        self.injection = (
            Injection(self.policy, self.prefix, self.endpoints.language) if self.inject else None
        )
        self._prefix_slash = self.prefix + "/"

    # ------------------------------------------------------------------ ASGI entry point

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                receive = self._lifespan_receive(receive)
            await self.app(scope, receive, send)
            return

        path: str = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]

        # --- read the request headers once
        cookie_header: bytes | None = None
        cookie_count = 0
        gpc: bool | None = None  # the signal is "1", exactly, in every Sec-GPC header sent
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie_header = value if cookie_header is None else cookie_header + b"; " + value
                cookie_count += 1
            elif name == b"sec-gpc":
                gpc = gpc is not False and value.strip(b" \t") == b"1"

        view = self._view(cookie_header) if cookie_header is not None else None
        if view is None:
            state, subject = self._no_decision, None
        else:
            verified = view.verified
            # The lifetime as ConsentCookie.loads checks it, from when the cookie was signed.
            if verified is not None and time.time() - verified[1] <= self._lifetime:
                state = verified[0]
                subject = state.subject_id
            else:
                state, subject = self._state_from_view(view)
        if gpc and self.honor_gpc:
            state = state.with_gpc(self.sale_or_share)
            self.metrics.gpc_requests += 1

        if kind == "http" and (
            path == self.prefix
            or path.startswith(self._prefix_slash)
            or (path == "/.well-known/gpc.json" and self.serve_gpc_json)
        ):
            await self.endpoints(scope, receive, send, path, state, subject)
            return

        # --- request side: keep only allowed cookies
        allowed = state.allowed
        expire: Sequence[tuple[bytes, bytes]] = ()
        headers = scope["headers"]
        if view is not None and view.items:
            outcome = view.outcome(state, scope.get("scheme") in ("https", "wss"), self)
            expire = outcome.expire
            if outcome.counted:
                self._count_request(outcome)
            if outcome.dropped or cookie_count > 1:
                headers = [(n, v) for n, v in headers if n != b"cookie"]
                if outcome.header:
                    headers.append((b"cookie", outcome.header))

        # The state dict is shared with the caller (as Starlette's request.state is), so what the
        # app stores there stays visible to outer middleware; filtered headers go into a copied
        # scope (the caller's keeps what the browser sent).
        app_state = scope.get("state")
        if app_state is None:
            app_state = scope["state"] = {}
        app_state["consent"] = state
        if headers is not scope["headers"]:
            scope = dict(scope)
            scope["headers"] = headers

        if kind == "http":
            self.metrics.requests += 1
        else:
            self.metrics.websockets += 1

        filter_headers = self._filter_set_cookies
        keep = self._keep_set_cookie
        injection = self.injection
        html_send: Send | None = None
        held: Message | None = None  # an HTML page's start message, until its first body
        held_headers: Sequence[tuple[bytes, bytes]] = ()  # its headers, Set-Cookie filtered
        layout = 0  # where its Content-Length is (see scan_start)
        nonce = ""  # the page's CSP script nonce, for the tags injected into it

        async def send_filtered(message: Message) -> None:
            nonlocal html_send, held, held_headers, layout, nonce
            if held is not None:
                start, held = held, None
                assert injection is not None
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    # The whole page in one message (the usual case): rewrite it at once.
                    out, changed, length = injection.document(scope, message, state, nonce)
                    # The page now depends on the consent cookie: caches must not mix visitors
                    # (deletions, when there are any, come with that Vary already).
                    extra = expire or _VARY_COOKIE
                    start = dict(start)
                    start["headers"] = with_length(held_headers, layout, length, changed, extra)
                    await send(start)
                    message = dict(message)
                    message["body"] = out
                    await send(message)
                    return
                html_send = injection.responder(send, scope, state, nonce, expire or _VARY_COOKIE)
                start = dict(start)
                start["headers"] = held_headers
                await html_send(start)
            if html_send is not None:
                await html_send(message)
                return
            mtype = message["type"]
            if mtype == "http.response.start" or mtype == "websocket.http.response.start":
                if injection is not None and mtype == "http.response.start":
                    # One pass over the headers: filter Set-Cookie, and is it a page?
                    kept, page, where = scan_start(
                        scope.get("method", "GET"),
                        message,
                        keep,
                        allowed,
                        self._kept_names.get(allowed, _NOTHING_KEPT),
                    )
                    passed = (message.get("headers") or ()) if kept is None else kept
                    if page is not None:
                        held = message
                        held_headers, layout, nonce = passed, where, page
                        return
                    if (
                        scope.get("method") == "HEAD"
                        and html_page_nonce("GET", message) is not None
                    ):
                        # GET would answer the page rewritten: not this length, nor these
                        # validators (RFC 9110 8.6), and it varies with the consent cookie.
                        message = dict(message)
                        message["headers"] = fix_headers(
                            passed,
                            content_length=None,
                            body_changed=True,
                            extra=expire or _VARY_COOKIE,
                        )
                        await send(message)
                        return
                    if kept is not None or expire:
                        message = dict(message)
                        message["headers"] = [*passed, *expire]
                else:
                    message = filter_headers(message, allowed, expire)
            elif mtype == "websocket.accept" and (message.get("headers") or expire):
                message = filter_headers(message, allowed, expire)
            await send(message)

        token = current_consent.set(state)
        try:
            await self.app(scope, receive, send_filtered)
        finally:
            current_consent.reset(token)

    # ------------------------------------------------------------------ helpers

    def _lifespan_receive(self, receive: Receive) -> Receive:
        """Pass lifespan messages through; close the receipt store when the server shuts down."""

        async def wrapped() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                await self.aclose()
            return message

        return wrapped

    async def aclose(self) -> None:
        """Close the receipt store (connection pool). Called on lifespan shutdown."""
        await self.endpoints.aclose()

    def _view(self, header: bytes) -> _CookieView:
        views = self._views
        try:
            view = views.get(header)
        except TypeError:  # a bytearray (ASGI says bytes): unhashable, so look up a copy
            return self._view(bytes(header))
        if view is None:
            view = _CookieView(header, self._names)
            if len(header) <= _VIEW_MAX_HEADER:
                # Kept from the second time a header is seen: many are sent once only (an
                # analytics cookie that counts page views changes the header on every
                # request), and would push out the headers that do come back.
                seen = self._seen
                key = hash(header)
                if key in seen:
                    self._keep_view(header, view)
                else:
                    if len(seen) >= _SEEN_LIMIT:
                        seen.clear()
                    seen.add(key)
        return view

    def _keep_view(self, header: bytes, view: _CookieView) -> None:
        """Cache a view, dropping the oldest ones beyond ``_VIEW_CACHE_LIMIT`` views or
        ``_VIEW_CACHE_BYTES`` of what they hold."""
        views, order = self._views, self._views_order
        cost = len(header) + _VIEW_PAIR_COST * len(view.items)
        while order and (
            len(order) >= _VIEW_CACHE_LIMIT or self._views_bytes + cost > _VIEW_CACHE_BYTES
        ):
            with contextlib.suppress(KeyError, IndexError):  # another thread's, meanwhile
                old = order.popleft()
                self._views_bytes -= len(old) + _VIEW_PAIR_COST * len(views.pop(old).items)
        if not order:
            self._views_bytes = 0
        if header not in views:  # (another thread's, meanwhile)
            order.append(header)
            self._views_bytes += cost
        views[header] = view

    def _state_from_view(self, view: _CookieView) -> tuple[ConsentState, str | None]:
        """The visitor's state from the consent cookie(s) of a cached header view; the newest
        valid decision wins, and a validly signed stale one still lends its subject id."""
        subject: str | None = None
        loads = self.cookie.loads
        newest: ConsentState | None = None
        for text in view.consent:
            state, sub = loads(text)
            if state.decided:
                if newest is None or (state.decided_at or 0) > (newest.decided_at or 0):
                    newest = state
            else:
                subject = subject or sub
        if newest is not None:
            # Several valid ones: the newest decision wins. A cookie planted with a longer Path
            # (from a sibling subdomain, say) is sent first, and must not outvote the
            # visitor's own later choice. The older ones expire first, so it wins for as long
            # as it is valid.
            if newest.decided_at is not None:  # always, for a decided state
                view.verified = (newest, newest.decided_at)
            return newest, newest.subject_id
        view.verified = None
        return self._no_decision, subject

    def _count_request(self, outcome: _Outcome) -> None:
        for cname in outcome.undeclared:
            self._undeclared(cname)
        for category in outcome.blocked:
            self._count_blocked(category, "request")
        expired = self.metrics.expired
        for category in outcome.expired:
            expired[category] += 1

    def _filter_set_cookies(
        self, message: Message, allowed: frozenset[str], expire: Sequence[tuple[bytes, bytes]]
    ) -> Message:
        """A copy of a response-start message without disallowed ``Set-Cookie`` headers, and
        with ``expire`` appended."""
        headers = message.get("headers") or []
        keep = self._keep_set_cookie
        kept = self._kept_names.get(allowed, _NOTHING_KEPT)
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
            return self._filter_set_cookies(again, allowed, expire)
        if not expire and out is None:
            return message
        if out is None:
            out = list(headers)
        out.extend(expire)
        message = dict(message)
        message["headers"] = out
        return message

    def _keep_set_cookie(self, value: bytes, allowed: frozenset[str]) -> bool:
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
            return self._set_cookie_allowed(known[0], value, allowed)
        category = match[0]
        if category in allowed:
            kept = self._kept_names.get(allowed)
            if kept is None and len(self._kept_names) < _KEPT_SETS_LIMIT:
                kept = self._kept_names[allowed] = set()
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
        self._count_blocked(category, "response")
        return False

    def _set_cookie_allowed(self, cname: str, value: bytes, allowed: frozenset[str]) -> bool:
        if cname == self.cookie_name and cname:
            return True
        found = self.classifier.match(cname)
        if found is None:
            self._undeclared(cname)
            if self.allow_undeclared:
                return True
            category = UNDECLARED
        else:
            category = found[0]
            if category in allowed:
                return True
        if is_deletion(value):
            return True
        self._count_blocked(category, "response")
        return False

    def _count_blocked(self, category: str, direction: str) -> None:
        m = self.metrics
        m.blocked[category] += 1
        (m.blocked_request if direction == "request" else m.blocked_response)[category] += 1

    def _undeclared(self, name: str) -> None:
        long_name = len(name) > _UNDECLARED_NAME_MAX
        if long_name:  # counted and logged together: a visitor's names are not kept
            name = LONG_NAMES
        counts = self.metrics.undeclared
        if name in counts or len(counts) < _UNDECLARED_LOG_LIMIT:
            counts[name] += 1
        else:
            counts["(other names)"] += 1
        if name in self._undeclared_logged or len(self._undeclared_logged) >= _UNDECLARED_LOG_LIMIT:
            return
        with self._lock:
            if name in self._undeclared_logged:
                return
            self._undeclared_logged.add(name)
        if long_name:
            logger.warning(
                "cookie names of more than %d characters are not declared in the cookie policy; "
                "such cookies are %s",
                _UNDECLARED_NAME_MAX,
                "allowed" if self.allow_undeclared else "blocked",
            )
            return
        from .catalog.note import log_note  # read when this line is written, once per name

        logger.warning(
            "cookie %r is not declared in the cookie policy; it is %s (declare it in a category "
            "file)%s",
            name,
            "allowed" if self.allow_undeclared else "blocked",
            log_note(name),
        )

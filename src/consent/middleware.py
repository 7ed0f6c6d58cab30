"""``ConsentMiddleware``: the per-request path, nothing else.

For every ``http`` and ``websocket`` scope:

1. read the signed consent cookie (cached verification) and ``Sec-GPC``;
2. drop request cookies whose category the visitor has not allowed and hand the app a copied scope with
   one merged ``cookie`` header and ``scope["state"]["consent"]``;
3. drop response ``Set-Cookie`` headers of categories not allowed (deletions always pass), and expire
   cookies of refused categories the browser still sent;
4. optionally inject the banner and un-gate consented scripts in HTML pages (:mod:`consent.html`).

Requests under the prefix (default ``/_consent``) and ``/.well-known/gpc.json`` go to
:mod:`consent.endpoints` instead of the app.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from threading import Lock
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .classify import Classifier
from .cookies import cookie_pairs, deletion_variants, is_deletion, set_cookie_name
from .endpoints import ConsentEndpoints, consent_form
from .html import (
    HtmlResponder,
    banner_tags,
    consent_mode_default,
    html_rewrite_applies,
    script_tag,
)
from .policy import Policy, load_policy
from .state import ConsentCookie, ConsentState, current_consent, resolve_secret_keys

__all__ = ["ConsentMetrics", "ConsentMiddleware"]

logger = logging.getLogger("consent")

Headers = list[tuple[bytes, bytes]]
_UNDECLARED_LOG_LIMIT = 1000


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


class Injection:
    """What the middleware adds to HTML pages, prepared once; one responder per HTML response."""

    def __init__(self, policy: Policy, prefix: str) -> None:
        self.policy = policy
        self.prefix = prefix
        types: dict[str, list[str]] = {}
        for key, cat in policy.categories.items():
            for t in cat.consent_mode:
                types.setdefault(t, []).append(key)
        self._types = types
        notice = policy.site.banner.notice
        self._notice = f"<p>{escape(notice)}</p>" if notice else ""
        self._head_start: dict[frozenset[str], bytes] = {}
        self._head_end: dict[str, bytes] = {}

    def head_start(self, allowed: frozenset[str]) -> bytes:
        """Google Consent Mode: everything denied by default, then what this visitor granted."""
        if not self._types:
            return b""
        cached = self._head_start.get(allowed)
        if cached is None:
            granted = [t for t, cats in self._types.items() if all(c in allowed for c in cats)]
            cached = script_tag(consent_mode_default(sorted(self._types), sorted(granted))).encode()
            self._head_start[allowed] = cached
        return cached

    def head_end(self, root_path: str) -> bytes:
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
        next_url = path + ("?" + query.decode("latin-1") if query else "")
        form = consent_form(
            self.policy, scope.get("root_path", "") + self.prefix, state, next_url=next_url
        )
        return (
            '<noscript><div class="consent-noscript" role="region" aria-label="Cookie consent">'
            f"{self._notice}{form}</div></noscript>"
        ).encode()

    def responder(
        self, send: Send, scope: Scope, start: Message, state: ConsentState
    ) -> Send | None:
        if not html_rewrite_applies(scope.get("method", "GET"), start):
            return None
        return HtmlResponder(
            send,
            head_start=self.head_start(state.allowed),
            head_end=self.head_end(scope.get("root_path", "")),
            body_start=self.body_start(scope, state),
            granted=state.allowed,
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
        self.serve_gpc_json = site.gpc.well_known
        self.sale_or_share = self.policy.sale_or_share
        self.inject = site.banner.inject if inject_banner is None else inject_banner
        self._undeclared_logged: set[str] = set()
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
        self.injection = Injection(self.policy, self.prefix) if self.inject else None
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
        cookie_headers: list[bytes] = []
        gpc = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie_headers.append(value)
            elif name == b"sec-gpc":
                gpc = value.strip() == b"1"

        pairs = cookie_pairs(b"; ".join(cookie_headers)) if cookie_headers else []
        state, subject = self._state_from(pairs)
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
        expire: list[bytes] = []
        headers = scope["headers"]
        if pairs:
            kept: list[bytes] = []
            dropped = False
            for cname, raw in pairs:
                if cname == self.cookie_name:
                    kept.append(raw)
                    continue
                found = self.classifier.match(cname)
                if found is None:
                    self._undeclared(cname)
                    if self.allow_undeclared:
                        kept.append(raw)
                    else:
                        dropped = True
                        self._count_blocked(UNDECLARED, "request")
                    continue
                category = found[0]
                if category in allowed:
                    kept.append(raw)
                    continue
                dropped = True
                self._count_blocked(category, "request")
                if category in state.denied:
                    rule = found[1]
                    if not rule.third_party:
                        expire.extend(
                            deletion_variants(
                                cname,
                                path=rule.path,
                                domains=rule.domains,
                                secure=scope.get("scheme") in ("https", "wss"),
                                partitioned=rule.partitioned,
                            )
                        )
                        self.metrics.expired[category] += 1
            if dropped or len(cookie_headers) > 1:
                headers = [(n, v) for n, v in headers if n != b"cookie"]
                if kept:
                    headers.append((b"cookie", b"; ".join(kept)))

        # The state dict is shared with the caller (as Starlette's request.state is), so what the
        # app stores there stays visible to outer middleware; the headers go into a copied scope.
        app_state = scope.get("state")
        if app_state is None:
            app_state = scope["state"] = {}
        app_state["consent"] = state
        scope = dict(scope)
        scope["headers"] = headers

        if kind == "http":
            self.metrics.requests += 1
        else:
            self.metrics.websockets += 1

        filter_headers = self._filter_set_cookies
        injection = self.injection
        html_send: Send | None = None

        async def send_filtered(message: Message) -> None:
            nonlocal html_send
            if html_send is not None:
                await html_send(message)
                return
            mtype = message["type"]
            if mtype == "http.response.start" or mtype == "websocket.http.response.start":
                message = filter_headers(message, allowed, expire)
                if injection is not None and mtype == "http.response.start":
                    html_send = injection.responder(send, scope, message, state)
                    if html_send is not None:
                        # The page now depends on the consent cookie: caches must not mix visitors.
                        message = {
                            **message,
                            "headers": [*message.get("headers", ()), (b"vary", b"Cookie")],
                        }
                        await html_send(message)
                        return
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

    def _state_from(self, pairs: list[tuple[str, bytes]]) -> tuple[ConsentState, str | None]:
        """The visitor's state from the consent cookie(s); the first valid one wins."""
        subject: str | None = None
        cookie_name = self.cookie_name
        for cname, raw in pairs:
            if cname != cookie_name:
                continue
            value = raw[len(cname) + 1 :].strip(b' \t"')
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                continue
            state, sub = self.cookie.loads(text)
            if state.decided:
                return state, state.subject_id
            subject = subject or sub
        return self.cookie.no_decision, subject

    def _filter_set_cookies(
        self, message: Message, allowed: frozenset[str], expire: list[bytes]
    ) -> Message:
        """A copy of a response-start message without disallowed ``Set-Cookie`` headers."""
        headers = message.get("headers") or []
        out: Headers | None = None
        for i, (name, value) in enumerate(headers):
            if len(name) != 10 or name.lower() != b"set-cookie":
                if out is not None:
                    out.append((name, value))
                continue
            cname = set_cookie_name(value)
            if self._set_cookie_allowed(cname, value, allowed):
                if out is not None:
                    out.append((name, value))
                continue
            if out is None:
                out = list(headers[:i])
        if not expire and out is None:
            return message
        if out is None:
            out = list(headers)
        out.extend((b"set-cookie", header) for header in expire)
        message = dict(message)
        message["headers"] = out
        return message

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
        logger.warning(
            "cookie %r is not declared in the cookie policy; it is %s (declare it in a category file)",
            name,
            "allowed" if self.allow_undeclared else "blocked",
        )

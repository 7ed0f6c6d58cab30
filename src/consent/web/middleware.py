"""``ConsentMiddleware``: the per-request path, nothing else.

For every ``http`` and ``websocket`` scope:

1. read the signed consent cookie (cached verification) and ``Sec-GPC``;
2. drop request cookies whose category the visitor has not allowed and hand the app a copied scope with
   one merged ``cookie`` header (the caller's own scope when no header changes) and
   ``scope["state"]["consent"]``;
3. drop response ``Set-Cookie`` headers of categories not allowed (deletions, in every reading of
   them, always pass), and expire cookies of refused categories the browser still sent;
4. optionally inject the banner and un-gate consented scripts in HTML pages (:mod:`consent.html`).

The filtering is :mod:`consent.web.filtering`'s, the counting :mod:`consent.web.metrics`'. Requests
under the prefix (default ``/_consent``) and ``/.well-known/gpc.json`` go to
:mod:`consent.endpoints` instead of the app.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..classify import Classifier
from ..endpoints import ConsentEndpoints
from ..html import (
    VARY_COOKIE,
    add_headers,
    fix_headers,
    html_page_nonce,
    scan_start,
    with_length,
)
from ..html.inject import Injection
from ..policy import Policy, PolicyError, load_policy
from ..state import ConsentCookie, ConsentState, current_consent, resolve_secret_keys
from .filtering import NOTHING_KEPT, CookieFilter, _CookieView
from .metrics import ConsentMetrics, MetricsRecorder
from .startup import check_arguments, one_line, refuse

__all__ = ["ConsentMiddleware"]


class ConsentMiddleware:
    """Make a site's cookies obey the visitor's consent, on the server.

    ``policy`` is a policy directory (or a loaded :class:`~consent.policy.Policy`); ``secret_key`` a
    string or a sequence (the first signs, all verify), else ``CONSENT_SECRET_KEY``; ``store`` a
    receipt-store URL (default: ``[receipts] store`` of ``site.toml``); ``prefix`` where the consent
    endpoints live. ``inject_banner`` overrides ``[banner] inject``; ``trusted_origins`` adds origins
    allowed to post decisions.

    A configuration error (no key, an invalid policy, a store URL no backend understands) does
    not raise: it is kept in ``startup_error`` and fails the server's lifespan startup with that
    message; a request that arrives anyway is answered 500 and logged
    (:mod:`consent.web.startup`). An argument of the wrong type raises ``TypeError`` at once.
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
        check_arguments(app, policy, secret_key, store, prefix, inject_banner, trusted_origins)
        self.metrics = ConsentMetrics()
        #: Why the middleware cannot work (no key, an invalid policy, a store URL no backend
        #: understands), or ``None``. The lifespan startup fails with it (the server prints it:
        #: one line), and each request answers 500 and logs it (:func:`consent.web.startup.refuse`).
        self.startup_error: str | None = None
        try:
            self._configure(policy, secret_key, store, prefix, inject_banner, trusted_origins)
        except (PolicyError, ValueError) as exc:
            self.startup_error = "asgi-consent cannot start: " + one_line(exc)

    def _configure(
        self,
        policy: str | Path | Policy,
        secret_key: str | Sequence[str] | None,
        store: Any,
        prefix: str,
        inject_banner: bool | None,
        trusted_origins: Sequence[str],
    ) -> None:
        problems: list[Exception] = []
        try:
            self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        except PolicyError as exc:
            problems.append(exc)
        try:
            keys = resolve_secret_keys(secret_key)
        except ValueError as exc:  # (a key of the wrong type raises TypeError, at once)
            problems.append(exc)
        if problems:  # every one of them, so that one restart is enough to fix both
            raise ValueError("; ".join(one_line(p) for p in problems))
        site = self.policy.site
        self.prefix = "/" + prefix.strip("/")
        self.classifier = Classifier(self.policy)
        self.cookie = ConsentCookie(keys, self.policy)
        self.cookie_name = site.consent_cookie.name
        self.allow_undeclared = site.undeclared == "allow"
        self.honor_gpc = site.gpc.honor
        # The file says the site honours the signal: not served when it does not.
        self.serve_gpc_json = site.gpc.well_known and site.gpc.honor
        self.sale_or_share = self.policy.sale_or_share
        self.inject = site.banner.inject if inject_banner is None else inject_banner
        self.filter = CookieFilter(
            self.classifier,
            self.cookie_name,
            self.allow_undeclared,
            MetricsRecorder(self.metrics, self.allow_undeclared),
        )
        self._no_decision = self.cookie.no_decision
        self._lifetime = self.cookie.lifetime

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
        if self.startup_error is not None:
            await refuse(self.startup_error, kind, receive, send)
            return
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                receive = self._lifespan_receive(receive)
            await self.app(scope, receive, send)
            return
        # Read the request headers once: the Cookie header(s), merged, and Sec-GPC ("1",
        # exactly, in every Sec-GPC header sent).
        cookie_header: bytes | None = None
        cookie_count = 0
        gpc: bool | None = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie_header = value if cookie_header is None else cookie_header + b"; " + value
                cookie_count += 1
            elif name == b"sec-gpc":
                gpc = gpc is not False and value.strip(b" \t") == b"1"
        # Pick the state: the consent cookie (verified once per header, its lifetime checked
        # on every request), then Sec-GPC.
        view = self.filter.view(cookie_header) if cookie_header is not None else None
        if view is None:
            state, subject = self._no_decision, None
        elif (verified := view.verified) is not None and (
            time.time() - verified[1] <= self._lifetime
        ):
            state = verified[0]
            subject = state.subject_id
        else:
            state, subject = self._state_from_view(view)
        if gpc and self.honor_gpc:
            state = state.with_gpc(self.sale_or_share)
            self.metrics.gpc_requests += 1
        # Route: the consent endpoints, or the app with only the allowed cookies.
        path = self._endpoint_path(scope) if kind == "http" else None
        if path is not None:
            await self.endpoints(scope, receive, send, path, state, subject)
            return
        scope, expire = self._filter_request(scope, view, state, cookie_count)
        if kind == "http":
            self.metrics.requests += 1
        else:
            self.metrics.websockets += 1
        # Wrap send: filter Set-Cookie, expire refused cookies, rewrite pages.
        token = current_consent.set(state)
        try:
            await self.app(scope, receive, self._wrap_send(send, scope, state, expire))
        finally:
            current_consent.reset(token)

    def _endpoint_path(self, scope: Scope) -> str | None:
        """The path (under the root path) of an ``http`` request for the consent endpoints;
        ``None`` for one the app answers."""
        path: str = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if (
            path == self.prefix
            or path.startswith(self._prefix_slash)
            or (path == "/.well-known/gpc.json" and self.serve_gpc_json)
        ):
            return path
        return None

    def _filter_request(
        self, scope: Scope, view: _CookieView | None, state: ConsentState, cookie_count: int
    ) -> tuple[Scope, Sequence[tuple[bytes, bytes]]]:
        """The scope the app is called with (a copy when a header changes), with the state at
        ``scope["state"]["consent"]``; and the deletions for refused cookies the browser sent."""
        expire: Sequence[tuple[bytes, bytes]] = ()
        headers = scope["headers"]
        if view is not None and view.shape.items:
            cookie_filter = self.filter
            outcome = view.outcome(state, scope.get("scheme") in ("https", "wss"), cookie_filter)
            expire = outcome.expire
            if outcome.counted:
                cookie_filter.count_request(outcome)
            if outcome.dropped or cookie_count > 1:
                headers = [(n, v) for n, v in headers if n != b"cookie"]
                header = view.header(outcome)
                if header:
                    headers.append((b"cookie", header))
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
        return scope, expire

    def _wrap_send(
        self, send: Send, scope: Scope, state: ConsentState, expire: Sequence[tuple[bytes, bytes]]
    ) -> Send:
        """``send`` for the app: ``Set-Cookie`` filtered, ``expire`` added to the response, and
        an HTML page rewritten (banner injected, consented scripts activated) when injecting."""
        allowed = state.allowed
        cookie_filter = self.filter
        filter_headers = cookie_filter.response_start
        keep = cookie_filter.keep_set_cookie
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
                    extra = expire or VARY_COOKIE
                    start = dict(start)
                    start["headers"] = with_length(held_headers, layout, length, changed, extra)
                    await send(start)
                    message = dict(message)
                    message["body"] = out
                    await send(message)
                    return
                html_send = injection.responder(send, scope, state, nonce, expire or VARY_COOKIE)
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
                        cookie_filter.kept_names.get(allowed, NOTHING_KEPT),
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
                            extra=expire or VARY_COOKIE,
                        )
                        await send(message)
                        return
                    if kept is not None or expire:
                        message = dict(message)
                        message["headers"] = add_headers(list(passed), expire)
                else:
                    message = filter_headers(message, allowed, expire)
            elif mtype == "websocket.accept" and (message.get("headers") or expire):
                message = filter_headers(message, allowed, expire)
            await send(message)

        return send_filtered

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
        if self.startup_error is None:  # (else there is none)
            await self.endpoints.aclose()

    def _state_from_view(self, view: _CookieView) -> tuple[ConsentState, str | None]:
        """The visitor's state from the consent cookie(s) of a cached header view. Several
        valid decisions of one visitor (one subject id: the site moved its cookie's path or
        domain): the newest counts. Of several visitors (a genuine cookie from another visit,
        planted from a sibling subdomain or over plain http, is sent with the visitor's own):
        only what every one of them grants, and no subject id to continue (see
        :meth:`ConsentCookie.common`). A validly signed stale cookie still lends its subject
        id when there is no decision."""
        subject: str | None = None
        loads = self.cookie.loads
        newest: ConsentState | None = None
        several: list[ConsentState] | None = None  # every decision, when there are several
        for text in view.consent:
            state, sub = loads(text)
            if not state.decided:
                subject = subject or sub
                continue
            if newest is None:
                newest = state
                continue
            if several is None:
                several = [newest]
            several.append(state)
            if (state.decided_at or 0) > (newest.decided_at or 0):
                newest = state
        if newest is None:
            view.verified = None
            return self._no_decision, subject
        if several is not None and any(s.subject_id != newest.subject_id for s in several):
            newest = self.cookie.common(several)
        if newest.decided_at is not None:  # always, for a decided state
            view.verified = (newest, newest.decided_at)
        return newest, newest.subject_id

"""The consent endpoints: a routing table, and a handler for each route.

=======  ===========================  ==================================================
Method   Path                         What
=======  ===========================  ==================================================
GET      ``<prefix>``                 the visitor's state and the categories (JSON)
POST     ``<prefix>``                 record a decision (JSON or form) -> receipt + cookie
DELETE   ``<prefix>``                 withdraw every non-necessary category
GET      ``<prefix>/receipt``         the visitor's history of receipts (HTML, JSON, JSON-LD)
GET      ``<prefix>/revision/<rev>``  the text visitors were shown under a policy revision
POST     ``<prefix>/once``            "Load this once": one embedded item, a receipt (JSON)
GET      ``<prefix>/embed``           what a gated iframe shows without JavaScript (HTML)
GET      ``<prefix>/declaration``     the cookie declaration (HTML with a no-JS form, or JSON)
GET      ``<prefix>/banner.js`` ...   banner assets and the site's words per language
GET      ``/.well-known/gpc.json``    Global Privacy Control support resource
=======  ===========================  ==================================================

Every decision is recorded durably in the receipt store *before* the response (and the new consent
cookie) is sent. When the store is unavailable the POST answers 503 and sets nothing.

The table is our own, not Starlette's ``Router``: the middleware sits above the application's
exception handling, where the ``HTTPException`` a ``Router`` raises would become a 500; every
miss here is a JSON 404 or 405.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from json.encoder import encode_basestring as _json_str
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from ..archive import Archiver
from ..classify import Classifier
from ..cookies import cookie_pairs
from ..declaration import declaration_data
from ..pages import declaration_page, embed_page
from ..policy import Category, Policy
from ..receipts import (
    Controller,
    Purpose,
    Receipt,
    ReceiptSigner,
    StoredReceipt,
    event_for,
    hyphenated,
    truncate_ip,
    uuid7_hex,
)
from ..state import ConsentCookie, ConsentState
from ..store import ReceiptStore, StoreUnavailable, open_store
from .decision import (
    check_origin,
    page_path,
    parse_decision,
    read_body,
    referer_path,
    safe_next,
)
from .embed import parse_once
from .history import REVISION, VisitorHistory
from .responses import (
    _JSON,
    NEGOTIATED,
    NO_STORE,
    NO_STORE_NEGOTIATED,
    BadRequest,
    _js,
    language_of,
    load_assets,
    not_allowed,
    stored_receipt_json,
    wants_html,
    word_assets,
)

__all__ = ["ConsentEndpoints"]

logger = logging.getLogger("consent")

_CACHE_LIMIT = 64
_LANGUAGE_KEY_MAX = 512  # query string and Accept-Language together, in bytes
_GPC_PATH = "/.well-known/gpc.json"

#: A route's handler: ``(scope, receive, state, subject id, path under the prefix)``.
Handler = Callable[[Scope, Receive, ConsentState, "str | None", str], Awaitable[Response]]


class ConsentEndpoints:
    """Request handlers for the consent routes (called by :class:`ConsentMiddleware`)."""

    def __init__(
        self,
        *,
        policy: Policy,
        cookie: ConsentCookie,
        keys: Sequence[str],
        store: str | ReceiptStore,
        prefix: str,
        trusted_origins: Sequence[str],
        classifier: Classifier,
        metrics: Any = None,
    ) -> None:
        self.policy = policy
        self.site = policy.site
        self.metrics = metrics  # a ConsentMetrics: decisions, store failures, 503 answers
        self.cookie = cookie
        self.signer = ReceiptSigner(list(keys))
        if isinstance(store, str):
            # A URL no backend understands is a mistake in the configuration: say so now, not
            # on the first decision (building a store does not connect to it).
            open_store(store, self.signer, timeout=self.site.receipts.timeout)
        self._store_spec = store
        self._store: ReceiptStore | None = None
        self._store_lock = anyio.Lock()
        self._archiver = Archiver(policy)
        self.prefix = prefix
        self.trusted_origins = {o.rstrip("/").lower() for o in trusted_origins}
        self.classifier = classifier
        self.assets = {**load_assets(), **word_assets(policy)}
        settings = self.site.consent_cookie
        self._cookie_tail = f"; Max-Age={settings.max_age}; Path={settings.path}"
        if settings.domain:
            self._cookie_tail += f"; Domain={settings.domain}"
        self._cookie_tail += f"; HttpOnly; SameSite={settings.samesite.capitalize()}"
        # Every receipt names the same controller and shows the same categories (in its
        # language): those parts are validated once and shared (they are frozen).
        c = self.site.controller
        self._controller = Controller(
            name=c.name, email=c.email, address=c.address, url=c.url, phone=c.phone
        )
        # language -> per category: its key, its purpose when refused and when granted
        self._purposes: dict[str, list[tuple[str, Purpose, Purpose]]] = {}
        # (query string, Accept-Language) -> language
        self._languages: dict[tuple[bytes, bytes | None], str] = {}
        # (language, prefix) -> what a decided state's JSON holds after its own fields, and
        # each category's JSON when granted and when not
        self._state_parts: dict[tuple[str, str], tuple[str, list[tuple[str, str, str]]]] = {}
        self._gpc_json = json.dumps({"gpc": True, "lastUpdate": self.site.gpc.last_update}).encode()
        # language -> declaration_data(): the policy never changes, and every decision answers
        # with the state JSON built from it.
        self._declarations: dict[str, dict[str, Any]] = {}
        self.history = VisitorHistory(
            policy=policy,
            cookie=cookie,
            store=self.store,
            unavailable=self._count_unavailable,
            language=self.language,
            public_prefix=self._public_prefix,
        )
        self._routes = self._table()
        self._gpc_route: dict[str, Handler] = {"GET": self._get_gpc, "HEAD": self._get_gpc}
        self._revision_route: dict[str, Handler] = {
            "GET": self.history.revision,
            "HEAD": self.history.revision,
        }

    # ------------------------------------------------------------------ store

    async def store(self) -> ReceiptStore:
        """The receipt store, opened on first use (and retried after a failure)."""
        if self._store is not None:
            return self._store
        async with self._store_lock:
            if self._store is None:
                spec = self._store_spec
                store = (
                    open_store(spec, self.signer, timeout=self.site.receipts.timeout)
                    if isinstance(spec, str)
                    else spec
                )
                try:
                    await store.open()
                except StoreUnavailable:
                    raise
                except Exception as exc:  # any driver error while opening = unavailable
                    raise StoreUnavailable(str(exc)) from exc
                self._store = store
            return self._store

    def _count_unavailable(self) -> None:
        if self.metrics is not None:
            self.metrics.store_failures += 1
            self.metrics.unavailable += 1

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    # ------------------------------------------------------------------ dispatch

    def _table(self) -> dict[str, dict[str, Handler]]:
        """Path under the prefix -> method -> handler (the methods in the order a 405 names
        them)."""
        reads: dict[str, Handler] = {"GET": self._get_state, "HEAD": self._get_state}
        state: dict[str, Handler] = {
            **reads,
            "POST": self._post_decision,
            "DELETE": self._delete_decision,
        }
        table: dict[str, dict[str, Handler]] = {
            "": state,
            "/": state,
            "/once": {"POST": self._post_once},
            "/embed": {"GET": self._get_embed, "HEAD": self._get_embed},
            "/receipt": {"GET": self.history.receipt, "HEAD": self.history.receipt},
            "/declaration": {"GET": self._get_declaration, "HEAD": self._get_declaration},
        }
        for sub in self.assets:
            table.setdefault(sub, {"GET": self._get_asset, "HEAD": self._get_asset})
        return table

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        state: ConsentState,
        subject: str | None,
    ) -> None:
        sub = path[len(self.prefix) :]
        route = self._gpc_route if path == _GPC_PATH else self._routes.get(sub)
        if route is None and sub.startswith(REVISION):
            route = self._revision_route
        response: Response
        if route is None:
            response = BadRequest(404, "not found", {"path": path}).response()
        else:
            handler = route.get(scope["method"])
            if handler is None:
                response = not_allowed(tuple(route))
            else:
                try:
                    response = await handler(scope, receive, state, subject, sub)
                except BadRequest as exc:
                    response = exc.response()
        await response(scope, receive, send)

    async def _get_gpc(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return Response(
            self._gpc_json,
            media_type="application/json",
            headers={"Cache-Control": "max-age=86400"},
        )

    async def _get_state(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return self.get_state(scope, state, subject)

    async def _post_decision(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return await self.post_decision(scope, receive, state, subject)

    async def _delete_decision(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return await self.delete_decision(scope, state, subject)

    async def _post_once(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return await self.post_once(scope, receive, state, subject)

    async def _get_embed(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return self.get_embed(scope)

    async def _get_declaration(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return self.get_declaration(scope, state)

    async def _get_asset(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        return self.get_asset(scope, sub)

    # ------------------------------------------------------------------ GET state

    def language(self, scope: Scope) -> str:
        """The language a response to this request is in (``?lang=``, ``Accept-Language``, the
        site's), cached per query string and header."""
        query: bytes = scope.get("query_string", b"")
        accept: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == b"accept-language":
                accept = value
                break
        found = self._languages.get((query, accept))
        if found is None:
            found = language_of(scope, self.site.language, offered=self.policy.offered_languages)
            # (a visitor's strings: short ones only, and the cache emptied when full)
            if len(query) + len(accept or b"") <= _LANGUAGE_KEY_MAX:
                if len(self._languages) >= 4 * _CACHE_LIMIT:
                    self._languages.clear()
                self._languages[(query, accept)] = found
        return found

    def _purposes_in(self, language: str) -> list[tuple[str, Purpose, Purpose]]:
        """The categories as a receipt in ``language`` records them (the titles the visitor
        was shown, the third parties each shares data with), refused and granted."""

        def purpose(key: str, cat: Category, granted: bool) -> Purpose:
            return Purpose(
                key=key,
                title=cat.text(language).title,
                necessary=cat.necessary,
                granted=granted,
                third_parties=list(cat.third_parties),
            )

        purposes = [
            (key, purpose(key, cat, False), purpose(key, cat, True))
            for key, cat in self.policy.ordered()
        ]
        if len(self._purposes) < _CACHE_LIMIT:
            self._purposes[language] = purposes
        return purposes

    def _declaration(self, language: str) -> dict[str, Any]:
        decl = self._declarations.get(language)
        if decl is None:
            decl = declaration_data(self.policy, language)
            if len(self._declarations) < _CACHE_LIMIT:
                self._declarations[language] = decl
        return decl

    def _categories(self, language: str, granted: Any) -> list[dict[str, Any]]:
        """The categories as the state JSON lists them; ``granted(key)`` says which are on."""
        return [
            {
                "key": cat["key"],
                "title": cat["title"],
                "description": cat["description"],
                "necessary": cat["necessary"],
                "granted": granted(cat["key"]),
                "sale_or_share": cat["sale_or_share"],
                "consent_mode": cat["consent_mode"],
                "third_parties": cat["third_parties"],
                "cookies": [
                    {k: c[k] for k in ("name", "display", "vendor", "purpose", "duration")}
                    for c in cat["cookies"]
                ],
            }
            for cat in self._declaration(language)["categories"]
        ]

    def _site_json(self, language: str, prefix: str) -> dict[str, Any]:
        """The state JSON's fields that depend on the site, the language and the prefix only."""
        return {
            "language": language,
            "notice": self.site.notice_for(language),
            "policy_url": self.site.policy_url,
            "controller": self.site.controller.model_dump(mode="json"),
            "jurisdiction": self.site.jurisdiction,
            "prefix": prefix,
        }

    def state_json(
        self, state: ConsentState, subject: str | None, language: str, prefix: str
    ) -> dict[str, Any]:
        return {
            **state.to_json(),
            "revision": self.policy.short_revision,
            "revision_changed": (not state.decided) and subject is not None,
            **self._site_json(language, prefix),
            "categories": self._categories(language, state.allows),
        }

    def decided_state_text(self, state: ConsentState, language: str, prefix: str) -> str:
        """``state_json(state, ...)`` of a decided state, rendered as JSONResponse would, from
        parts rendered once per language and prefix."""
        if not state.decided:
            return _JSON(self.state_json(state, None, language, prefix))
        parts = self._state_parts.get((language, prefix))
        if parts is None:
            site = _JSON(self._site_json(language, prefix))
            off = self._categories(language, lambda key: False)
            on = self._categories(language, lambda key: True)
            parts = (
                ',"revision_changed":false,' + site[1:-1] + ',"categories":[',
                [(a["key"], _JSON(a), _JSON(b)) for a, b in zip(off, on, strict=True)],
            )
            if len(self._state_parts) < _CACHE_LIMIT:
                self._state_parts[(language, prefix)] = parts
        tail, categories = parts
        allowed = state.allowed
        return (
            f'{{"decided":true,"granted":[{",".join(map(_json_str, sorted(state.granted)))}]'
            f',"denied":[{",".join(map(_json_str, sorted(state.denied)))}]'
            f',"revision":{_js(self.policy.short_revision)}'
            f',"receipt_id":{_js(state.receipt_id)}'
            f',"decided_at":{_js(state.decided_at)},"expires":{_js(state.expires_at)}'
            f',"gpc":{"true" if state.gpc else "false"}{tail}'
            + ",".join(on if key in allowed else off for key, off, on in categories)
            + "]}"
        )

    def _public_prefix(self, scope: Scope) -> str:
        return str(scope.get("root_path", "")) + self.prefix

    def get_state(self, scope: Scope, state: ConsentState, subject: str | None) -> Response:
        body = self.state_json(state, subject, self.language(scope), self._public_prefix(scope))
        return JSONResponse(body, headers=NO_STORE)

    # ------------------------------------------------------------------ POST / DELETE

    async def post_decision(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None
    ) -> Response:
        headers = Headers(scope=scope)
        check_origin(scope, headers, self.trusted_origins)
        body = await read_body(receive, headers)
        granted, extra, is_form = parse_decision(self.policy, headers.get("content-type", ""), body)
        method = extra.get("method")
        if method not in ("banner", "form", "api", "embed"):
            method = None
        if method is None:
            method = "form" if is_form else "api"
        if state.gpc:
            granted -= self.policy.sale_or_share
        event = event_for(state.granted if state.decided else None, granted)
        page = (
            page_path(extra.get("page"))
            or page_path(extra.get("next"))
            or page_path(referer_path(headers))
        )
        return await self._record(
            scope, headers, state, subject, granted, event, method, page, is_form, extra
        )

    async def post_once(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None
    ) -> Response:
        """ "Load this once": consent to one embedded item on one page view, recorded as a
        receipt (event ``once``, method ``embed``) without changing the consent cookie."""
        headers = Headers(scope=scope)
        check_origin(scope, headers, self.trusted_origins)
        body = await read_body(receive, headers)
        once = parse_once(self.policy, state, headers, body)
        key = once.category
        language = self.language(scope)
        random = os.urandom(20)
        ns = time.time_ns()
        ms = ns // 1_000_000
        client = scope.get("client")
        site = self.site
        receipt = Receipt(
            receipt_id=hyphenated(uuid7_hex(random, ms)),
            subject_id=state.subject_id or subject or uuid7_hex(random[10:], ms),
            timestamp=ns // 1_000_000_000,
            event="once",
            granted=[key],
            refused=[],
            revision=self.policy.revision,
            policy_url=site.policy_url,
            method="embed",
            jurisdiction=site.jurisdiction,
            language=language,
            controller=self._controller,
            # the host the item loads from: whom this one load shares data with
            purposes=[
                Purpose(
                    key=key,
                    title=self.policy.categories[key].text(language).title,
                    granted=True,
                    third_parties=[once.host],
                )
            ],
            page=once.page,
            ip=truncate_ip(str(client[0])) if site.receipts.ip == "truncate" and client else None,
            user_agent=(headers.get("user-agent", "")[:512] or None)
            if site.receipts.user_agent
            else None,
            gpc=state.gpc,
        )
        stored = await self._append(receipt)
        if isinstance(stored, Response):
            return stored
        answer = (
            f'{{"receipt_id":{_js(receipt.receipt_id)},"event":"once",'
            f'"receipt":{stored_receipt_json(stored, receipt)}}}'
        )
        return Response(answer.encode("utf-8"), headers=NO_STORE, media_type="application/json")

    async def delete_decision(
        self, scope: Scope, state: ConsentState, subject: str | None
    ) -> Response:
        headers = Headers(scope=scope)
        check_origin(scope, headers, self.trusted_origins)
        return await self._record(
            scope,
            headers,
            state,
            subject,
            set(),
            "withdrawn",
            "api",
            referer_path(headers),
            False,
            {},
        )

    async def _record(
        self,
        scope: Scope,
        headers: Headers,
        state: ConsentState,
        subject: str | None,
        granted: set[str],
        event: str,
        method: str,
        page: str | None,
        is_form: bool,
        extra: dict[str, Any],
    ) -> Response:
        random = os.urandom(20)  # one call for both ids
        ns = time.time_ns()
        now = ns // 1_000_000_000
        ms = ns // 1_000_000
        subject_id = state.subject_id or subject or uuid7_hex(random[10:], ms)
        receipt_id = hyphenated(uuid7_hex(random, ms))
        new_state = self.cookie.decision(
            granted, receipt_id=receipt_id, subject_id=subject_id, decided_at=now
        )
        if state.gpc:
            new_state = new_state.with_gpc(self.policy.sale_or_share)
        site = self.site
        client = scope.get("client")
        ip = None
        if site.receipts.ip == "truncate" and client:
            ip = truncate_ip(str(client[0]))
        user_agent = None
        if site.receipts.user_agent:
            user_agent = headers.get("user-agent", "")[:512] or None
        language = self.language(scope)
        allowed = new_state.allowed
        purposes = self._purposes.get(language) or self._purposes_in(language)
        # Every value below is already what Receipt's validators would make of it (a fresh
        # UUID, sorted keys, a truncated address, capped texts, the shared controller and
        # purposes validated in __init__), so the receipt is not validated a second time.
        receipt = Receipt.model_construct(
            receipt_id=receipt_id,
            subject_id=subject_id,
            timestamp=now,
            event=event,
            granted=sorted(new_state.granted),
            refused=sorted(new_state.denied),
            revision=self.policy.revision,
            policy_url=site.policy_url,
            method=method,
            jurisdiction=site.jurisdiction,
            language=language,
            controller=self._controller,
            purposes=[on if key in allowed else off for key, off, on in purposes],
            page=page,
            ip=ip,
            user_agent=user_agent,
            gpc=state.gpc,
        )
        stored = await self._append(receipt)
        if isinstance(stored, Response):
            return stored
        if self.metrics is not None:
            self.metrics.decisions[event] += 1

        secure = self._secure(scope)
        cookie_header = (
            f"{site.consent_cookie.name}={self.cookie.dumps(new_state)}{self._cookie_tail}"
        )
        if secure:
            cookie_header += "; Secure"
        set_cookies = [cookie_header]
        set_cookies.extend(
            h.decode("latin-1") for h in self._expiry_for(headers, new_state.denied, secure)
        )

        response: Response
        if is_form and "application/json" not in headers.get("accept", ""):
            response = RedirectResponse(
                safe_next(extra.get("next"), headers),
                status_code=303,
                headers={"Cache-Control": "no-store"},
            )
        else:
            # The answer is spliced together from parts rendered once (see
            # decided_state_text and stored_receipt_json), not built as a dict and dumped.
            answer = (
                f'{{"receipt_id":{_js(receipt_id)},"event":{_js(event)},"state":'
                f"{self.decided_state_text(new_state, language, self._public_prefix(scope))},"
                f'"receipt":{stored_receipt_json(stored, receipt)}}}'
            )
            response = Response(
                answer.encode("utf-8"), headers=NO_STORE, media_type="application/json"
            )
        for value in set_cookies:
            response.headers.append("Set-Cookie", value)
        return response

    async def _append(self, receipt: Receipt) -> StoredReceipt | Response:
        """Append ``receipt`` to the store; when the store fails, the 503 to answer."""
        receipt_id, event = receipt.receipt_id, receipt.event
        try:
            store = await self.store()
            await self._archiver.ensure(store)  # the policy's texts, before its first receipt
            return await store.append(receipt)
        except StoreUnavailable as exc:
            self._count_unavailable()
            if exc.maybe_recorded:
                # The visitor is told it failed and gets no cookie; the log may hold the
                # receipt all the same. Its id lets an operator find it.
                logger.error(
                    "consent receipt %s (%s) may have been recorded although the visitor was "
                    "answered 503: %s",
                    receipt_id,
                    event,
                    exc,
                )
                detail = (
                    "the receipt store did not confirm that your choice was recorded; it is not "
                    "in effect, and your previous choice (if any) still applies. Please try "
                    "again later."
                )
            else:
                logger.error("consent receipt store unavailable: %s", exc)
                detail = (
                    "the receipt store is unavailable; nothing was recorded and your previous "
                    "choice (if any) still applies. Please try again later."
                )
            return JSONResponse(
                {"error": "consent could not be recorded", "detail": detail},
                status_code=503,
                headers={**NO_STORE, "Retry-After": "30"},
            )

    def _secure(self, scope: Scope) -> bool:
        setting = self.site.consent_cookie.secure
        if setting == "auto":
            return scope.get("scheme") == "https" or self.site.consent_cookie.samesite == "none"
        return bool(setting)

    def _expiry_for(self, headers: Headers, denied: frozenset[str], secure: bool) -> list[bytes]:
        out: list[bytes] = []
        for value in headers.getlist("cookie"):
            for name, _raw in cookie_pairs(value.encode("latin-1")):
                found = self.classifier.match(name)
                if found is not None and found[0] in denied:
                    out.extend(found[1].deletions(name, secure=secure))
        return out

    # ------------------------------------------------------------------ receipts, declaration, assets

    def get_declaration(self, scope: Scope, state: ConsentState) -> Response:
        headers = Headers(scope=scope)
        language = self.language(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if query.get("format") == "json" or not wants_html(headers):
            return JSONResponse(declaration_data(self.policy, language), headers=NEGOTIATED)
        # (back to the page the visitor came from, when a link says which)
        next_url = safe_next(query.get("next", "/"), headers)
        page = declaration_page(
            self.policy, self._public_prefix(scope), state, language, next_url=next_url
        )
        return HTMLResponse(page, headers=NO_STORE_NEGOTIATED)

    def get_embed(self, scope: Scope) -> Response:
        """What a gated iframe shows without JavaScript (its ``src`` until it is activated):
        what would load, and a link to the cookie settings."""
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        body = embed_page(
            self.policy,
            self._public_prefix(scope),
            self.language(scope),
            query.get("category", ""),
            query.get("vendor", ""),
            page_path(referer_path(Headers(scope=scope))),
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store", "Vary": "Accept-Language"})

    def get_asset(self, scope: Scope, sub: str) -> Response:
        body, media_type, etag = self.assets[sub]
        headers = Headers(scope=scope)
        if headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(
            body,
            media_type=media_type,
            headers={"ETag": etag, "Cache-Control": "public, max-age=3600"},
        )

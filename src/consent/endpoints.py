"""The consent endpoints under the prefix (default ``/_consent``) and ``/.well-known/gpc.json``.

=======  ===========================  ==================================================
Method   Path                         What
=======  ===========================  ==================================================
GET      ``<prefix>``                 the visitor's state and the categories (JSON)
POST     ``<prefix>``                 record a decision (JSON or form) -> receipt + cookie
DELETE   ``<prefix>``                 withdraw every non-necessary category
GET      ``<prefix>/receipt``         the visitor's latest receipt (JSON or HTML)
GET      ``<prefix>/declaration``     the cookie declaration (HTML with a no-JS form, or JSON)
GET      ``<prefix>/banner.js`` ...   banner assets and translations
GET      ``/.well-known/gpc.json``    Global Privacy Control support resource
=======  ===========================  ==================================================

Every decision is recorded durably in the receipt store *before* the response (and the new consent
cookie) is sent. When the store is unavailable the POST answers 503 and sets nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from html import escape
from importlib import resources
from json.encoder import encode_basestring as _json_str
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from .classify import Classifier
from .cookies import cookie_pairs
from .declaration import declaration_data, render_html
from .i18n import pick_language, ui_strings
from .policy import Category, Policy
from .receipts import (
    Controller,
    Purpose,
    Receipt,
    ReceiptSigner,
    StoredReceipt,
    hyphenated,
    to_kantara,
    truncate_ip,
    uuid7_hex,
)
from .state import ConsentCookie, ConsentState
from .store import ReceiptStore, StoreUnavailable, open_store

__all__ = ["MAX_BODY", "ConsentEndpoints"]

logger = logging.getLogger("consent")

MAX_BODY = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Vary": "Cookie"}

# JSON exactly as JSONResponse renders it (compact, UTF-8 as is).
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _js(value: Any) -> str:
    """``_JSON(value)``, without the encoder's Python layers for the usual str and int."""
    kind = type(value)
    if kind is str:
        return _json_str(value)  # what _JSON does for a str
    if kind is int:
        return str(value)
    return _JSON(value)


_CACHE_LIMIT = 64
_LANGUAGE_KEY_MAX = 512  # query string and Accept-Language together, in bytes


class _JSONAnswer(Response):
    """A JSON answer whose body is already rendered (the decision's answer is spliced together
    from pre-rendered parts instead of being built as a dict and serialised)."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"cache-control", b"no-store"),
            (b"vary", b"Cookie"),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"application/json"),
            *raw_headers,
        ]


class _RequestHeaders(Headers):
    """Starlette's request headers with ``get`` answered from a dict (first value wins, as
    in Headers): a decision looks up about ten of them."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        first: dict[bytes, bytes] = {}
        for name, value in self._list:
            first.setdefault(name, value)
        self._first = first

    def get(self, key: str, default: Any = None) -> Any:
        value = self._first.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")


def stored_receipt_json(stored: StoredReceipt, receipt: Receipt) -> str:
    """``json.dumps(stored.to_dict())`` as JSONResponse renders it (keys in another order).

    When ``stored`` seals ``receipt`` (its body is the receipt's canonical JSON, which holds
    every field of ``to_dict()`` but the chain ones), the body is reused instead of dumping the
    receipt again.
    """
    body = stored.body
    if stored.receipt is not receipt or type(stored.seq) is not int or body[-1:] != "}":
        return _JSON(stored.to_dict())
    return (
        f"{body[:-1]},"
        f'"seq":{stored.seq},"kid":{_js(stored.kid)},"signature":{_js(stored.signature)},'
        f'"prev_hash":{_js(stored.prev_hash)},"hash":{_js(stored.hash)},"body":{_js(body)}}}'
    )


class BadRequest(Exception):
    """A client error: turned into a JSON response naming the problem."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail

    def response(self) -> Response:
        body: dict[str, Any] = {"error": self.error}
        if self.detail is not None:
            body["detail"] = self.detail
        try:
            return JSONResponse(body, status_code=self.status, headers=_NO_STORE)
        except UnicodeEncodeError:  # a lone surrogate from the path, echoed in the detail
            content = json.dumps(body, separators=(",", ":")).encode()  # escaped as \udcff
            return Response(content, self.status, _NO_STORE, "application/json")


def _load_assets() -> dict[str, tuple[bytes, str, str]]:
    """Banner assets by path under the prefix: (body, media type, etag)."""
    assets: dict[str, tuple[bytes, str, str]] = {}
    root = resources.files("consent") / "banner"
    types = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".json": "application/json",
    }
    if not root.is_dir():
        return assets
    items = [(item.name, item) for item in root.iterdir()]
    i18n = root / "i18n"
    if i18n.is_dir():
        items += [(f"i18n/{item.name}", item) for item in i18n.iterdir()]
    for name, item in items:
        suffix = name[name.rfind(".") :]
        if suffix in types and item.is_file():
            body = item.read_bytes()
            assets["/" + name] = (
                body,
                types[suffix],
                '"' + hashlib.sha256(body).hexdigest()[:20] + '"',
            )
    return assets


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
        self.cookie = cookie
        self.signer = ReceiptSigner(list(keys))
        if isinstance(store, str):
            # A URL no backend understands is a mistake in the configuration: say so now, not
            # on the first decision (building a store does not connect to it).
            open_store(store, self.signer, timeout=self.site.receipts.timeout)
        self._store_spec = store
        self._store: ReceiptStore | None = None
        self._store_lock = anyio.Lock()
        self.prefix = prefix
        self.trusted_origins = {o.rstrip("/").lower() for o in trusted_origins}
        self.classifier = classifier
        self.assets = _load_assets()
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

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    # ------------------------------------------------------------------ dispatch

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        state: ConsentState,
        subject: str | None,
    ) -> None:
        method = scope["method"]
        sub = path[len(self.prefix) :]
        response: Response
        try:
            if path == "/.well-known/gpc.json":
                response = self._only(method, ("GET", "HEAD")) or Response(
                    self._gpc_json,
                    media_type="application/json",
                    headers={"Cache-Control": "max-age=86400"},
                )
            elif sub in ("", "/"):
                if method in ("GET", "HEAD"):
                    response = self.get_state(scope, state, subject)
                elif method == "POST":
                    response = await self.post_decision(scope, receive, state, subject)
                elif method == "DELETE":
                    response = await self.delete_decision(scope, state, subject)
                else:
                    response = self._not_allowed(("GET", "HEAD", "POST", "DELETE"))
            elif sub == "/receipt":
                response = self._only(method, ("GET", "HEAD")) or await self.get_receipt(
                    scope, state
                )
            elif sub == "/declaration":
                response = self._only(method, ("GET", "HEAD")) or self.get_declaration(scope, state)
            elif sub in self.assets:
                response = self._only(method, ("GET", "HEAD")) or self.get_asset(scope, sub)
            else:
                raise BadRequest(404, "not found", {"path": path})
        except BadRequest as exc:
            response = exc.response()
        await response(scope, receive, send)

    @staticmethod
    def _only(method: str, allowed: tuple[str, ...]) -> Response | None:
        return None if method in allowed else ConsentEndpoints._not_allowed(allowed)

    @staticmethod
    def _not_allowed(allowed: tuple[str, ...]) -> Response:
        return JSONResponse(
            {"error": "method not allowed", "detail": {"allowed": list(allowed)}},
            status_code=405,
            headers={"Allow": ", ".join(allowed)},
        )

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
            found = language_of(scope, self.site.language, self.policy.languages)
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
                "cookies": [
                    {k: c[k] for k in ("name", "vendor", "purpose", "duration")}
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
        return JSONResponse(body, headers=_NO_STORE)

    # ------------------------------------------------------------------ POST / DELETE

    def _check_origin(self, scope: Scope, headers: Headers) -> None:
        """Refuse cross-site decisions: a hostile page must not grant consent for a visitor."""
        site = headers.get("sec-fetch-site")
        if site == "same-origin":
            return
        origin = headers.get("origin")
        if origin and origin != "null":
            origin = origin.rstrip("/").lower()
            if origin in self.trusted_origins:
                return
            host = headers.get("host", "").lower()
            parts = urlsplit(origin)
            # A plain-http page may not decide for the https site (a network attacker could
            # write one). The other way round is allowed: behind a proxy that ends TLS, the
            # request may arrive as http from an https page.
            downgraded = parts.scheme == "http" and scope.get("scheme") == "https"
            if (
                host
                and parts.scheme in ("http", "https")
                and parts.netloc == host
                and not downgraded
            ):
                return
        raise BadRequest(
            403,
            "cross-site request refused",
            "a consent decision is accepted only from the site's own pages (same-origin "
            "Sec-Fetch-Site or a matching Origin header)",
        )

    async def _read_body(self, scope: Scope, receive: Receive, headers: Headers) -> bytes:
        declared = headers.get("content-length")
        if declared is not None:
            # Digits only (RFC 9110 8.6): int() would also take "-5", "+16", "1_6", " 16".
            if not (declared.isascii() and declared.isdigit()):
                raise BadRequest(400, "invalid Content-Length header")
            if int(declared) > MAX_BODY:
                raise BadRequest(413, "request body too large", {"limit_bytes": MAX_BODY})
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise BadRequest(413, "request body too large", {"limit_bytes": MAX_BODY})
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _parse_decision(
        self, content_type: str, body: bytes
    ) -> tuple[set[str], dict[str, Any], bool]:
        """The granted categories, extra fields (method, page, next) and whether it was a form."""
        media = content_type.split(";")[0].strip().lower()
        extra: dict[str, Any] = {}
        refuse: list[str] = []
        if media == "application/json":
            try:
                data = json.loads(body)
                # JSON may hold lone surrogates ("\ud800", or raw in UTF-8/16/32, which
                # json.loads lets through) that no UTF-8 text can hold. A plain ASCII body
                # without escapes or NULs (any UTF-16/32 body has NULs) cannot: skip the check.
                if b"\\" in body or b"\x00" in body or not body.isascii():
                    json.dumps(data, ensure_ascii=False).encode("utf-8")
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise BadRequest(400, "malformed JSON body", str(exc)) from None
            if not isinstance(data, dict) or "accept" not in data:
                raise BadRequest(
                    422, "the body must be an object with an 'accept' field", {"field": "accept"}
                )
            accept = data["accept"]
            if accept == "all":
                accepted = set(self.policy.optional)
            elif accept == "none":
                accepted = set()
            elif isinstance(accept, list) and all(isinstance(a, str) for a in accept):
                accepted = set(accept)
            else:
                raise BadRequest(
                    422,
                    '\'accept\' must be a list of category keys, "all" or "none"',
                    {"field": "accept"},
                )
            raw_refuse = data.get("refuse", [])
            if not isinstance(raw_refuse, list) or not all(isinstance(r, str) for r in raw_refuse):
                raise BadRequest(
                    422, "'refuse' must be a list of category keys", {"field": "refuse"}
                )
            refuse = raw_refuse
            for name in ("method", "page"):
                if isinstance(data.get(name), str):
                    extra[name] = data[name]
            is_form = False
        elif media == "application/x-www-form-urlencoded":
            try:
                # errors="strict": a percent-encoded byte that is not UTF-8 ("%ff") is as
                # malformed as a raw one, not a replacement character.
                fields = parse_qsl(
                    body.decode("utf-8"),
                    keep_blank_values=True,
                    strict_parsing=False,
                    errors="strict",
                )
            except UnicodeDecodeError:
                raise BadRequest(400, "form body is not UTF-8") from None
            values = [v for k, v in fields if k == "accept"]
            # The "Accept all" and "Reject all" buttons send their value after the ticked
            # boxes' (accept=analytics&accept=none): the button says what the visitor chose.
            if "all" in values and "none" in values:
                raise BadRequest(
                    422, '\'accept\' cannot be both "all" and "none"', {"field": "accept"}
                )
            if "all" in values:
                accepted = set(self.policy.optional)
            elif "none" in values:
                accepted = set()
            else:
                accepted = {v for v in values if v}
            for k, v in fields:
                if k in ("next", "page", "method"):
                    extra[k] = v
            is_form = True
        else:
            raise BadRequest(
                415,
                "unsupported content type",
                {
                    "expected": ["application/json", "application/x-www-form-urlencoded"],
                    "got": media or None,
                },
            )
        unknown = sorted((accepted | set(refuse)) - set(self.policy.categories))
        if unknown:
            raise BadRequest(
                422, f"unknown category: {', '.join(map(repr, unknown))}", {"unknown": unknown}
            )
        necessary_refused = sorted(set(refuse) & self.policy.necessary)
        if necessary_refused:
            raise BadRequest(
                422,
                f"necessary categories cannot be refused: {', '.join(necessary_refused)}",
                {"necessary": necessary_refused},
            )
        both = sorted(accepted & set(refuse))
        if both:
            raise BadRequest(
                422, f"categories both accepted and refused: {', '.join(both)}", {"conflict": both}
            )
        return accepted - self.policy.necessary, extra, is_form

    async def post_decision(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None
    ) -> Response:
        headers = _RequestHeaders(scope)
        self._check_origin(scope, headers)
        body = await self._read_body(scope, receive, headers)
        granted, extra, is_form = self._parse_decision(headers.get("content-type", ""), body)
        method = extra.get("method") if extra.get("method") in ("banner", "form", "api") else None
        if method is None:
            method = "form" if is_form else "api"
        if state.gpc:
            granted -= self.policy.sale_or_share
        event = "updated" if state.decided else ("given" if granted else "refused")
        page = (
            _page_path(extra.get("page"))
            or _page_path(extra.get("next"))
            or _page_path(_referer_path(headers))
        )
        return await self._record(
            scope, headers, state, subject, granted, event, method, page, is_form, extra
        )

    async def delete_decision(
        self, scope: Scope, state: ConsentState, subject: str | None
    ) -> Response:
        headers = _RequestHeaders(scope)
        self._check_origin(scope, headers)
        return await self._record(
            scope,
            headers,
            state,
            subject,
            set(),
            "withdrawn",
            "api",
            _referer_path(headers),
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
        try:
            store = await self.store()
            stored = await store.append(receipt)
        except StoreUnavailable as exc:
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
                headers={**_NO_STORE, "Retry-After": "30"},
            )

        secure = self._secure(scope)
        cookie_header = (
            f"{site.consent_cookie.name}={self.cookie.dumps(new_state)}{self._cookie_tail}"
        )
        if secure:
            cookie_header += "; Secure"
        set_cookies = [(b"set-cookie", cookie_header.encode("latin-1"))]
        set_cookies.extend(
            (b"set-cookie", h) for h in self._expiry_for(headers, new_state.denied, secure)
        )

        if is_form and "application/json" not in headers.get("accept", ""):
            response: Response = RedirectResponse(
                _safe_next(extra.get("next"), headers), status_code=303
            )
            response.raw_headers.extend(set_cookies)
            response.headers["Cache-Control"] = "no-store"
            return response
        answer = (
            f'{{"receipt_id":{_js(receipt_id)},"event":{_js(event)},"state":'
            f"{self.decided_state_text(new_state, language, self._public_prefix(scope))},"
            f'"receipt":{stored_receipt_json(stored, receipt)}}}'
        )
        return _JSONAnswer(answer.encode("utf-8"), set_cookies)

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

    async def get_receipt(self, scope: Scope, state: ConsentState) -> Response:
        headers = Headers(scope=scope)
        if not state.decided or not state.receipt_id:
            if _wants_html(headers):
                language = self.language(scope)
                t = ui_strings(language)
                link = f'<a href="{escape(self._public_prefix(scope))}/declaration">{escape(t["change_choices"])}</a>'
                body = f"<h1>{escape(t['receipt_title'])}</h1><p>{escape(t['receipt_none'])}</p><p>{link}</p>"
                return HTMLResponse(
                    _page(t["receipt_title"], body, language), status_code=404, headers=_NO_STORE
                )
            raise BadRequest(404, "no consent decision recorded for this browser")
        try:
            store = await self.store()
            stored = await store.get(state.receipt_id)
        except StoreUnavailable:
            raise BadRequest(503, "the receipt store is unavailable") from None
        if stored is None or stored.receipt.subject_id != state.subject_id:
            raise BadRequest(404, "receipt not found")
        if _wants_html(headers):
            return HTMLResponse(
                _receipt_html(
                    stored, self._public_prefix(scope), self.policy, self.language(scope)
                ),
                headers=_NO_STORE,
            )
        return JSONResponse(
            {"receipt": stored.to_dict(), "kantara": to_kantara(stored, base_url=_site_url(scope))},
            headers=_NO_STORE,
        )

    def get_declaration(self, scope: Scope, state: ConsentState) -> Response:
        headers = Headers(scope=scope)
        language = self.language(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if query.get("format") == "json" or not _wants_html(headers):
            return JSONResponse(declaration_data(self.policy, language))
        form = consent_form(
            self.policy, self._public_prefix(scope), state, next_url="/", language=language
        )
        title = ui_strings(language)["declaration"]
        page = _page(title, render_html(self.policy, language, form=form), language)
        return HTMLResponse(page, headers=_NO_STORE)

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


# ---------------------------------------------------------------------- helpers


def _site_url(scope: Scope) -> str | None:
    """``scheme://host`` of the request (the ``Host`` header), or None without one."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            if host and not any(c in host for c in "/\\@?# "):
                return f"{scope.get('scheme', 'http')}://{host}/"
            return None
    return None


def _referer_path(headers: Headers) -> str | None:
    ref = headers.get("referer")
    if not ref:
        return None
    parts = urlsplit(ref)
    return parts.path or "/"


def _page_path(value: str | None) -> str | None:
    """Where a choice was made, as a path of this site: without its query string or fragment
    (a search, an e-mail address in a link: personal data a receipt need not keep), and
    nothing from another site."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    return value.split("?", 1)[0].split("#", 1)[0][:2000] or None


def _safe_next(value: str | None, headers: Headers) -> str:
    """A same-origin redirect target: a path starting with a single '/', no CR/LF or backslash."""
    candidate = value if value is not None else (_referer_path(headers) or "/")
    if (
        not candidate.startswith("/")
        or candidate.startswith("//")
        or any(c in candidate for c in "\\\r\n\t")
        or len(candidate) > 2000
    ):
        return "/"
    return candidate


def _wants_html(headers: Headers) -> bool:
    accept = headers.get("accept", "")
    return "text/html" in accept and accept.find("text/html") < (
        accept.find("application/json") if "application/json" in accept else len(accept) + 1
    )


def _page(title: str, body: str, language: str) -> str:
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;"
        "color:#1a1a1a;overflow-wrap:break-word;hyphens:auto}table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:.3rem .5rem;"
        "text-align:left;overflow-wrap:anywhere}fieldset{margin:1rem 0}"
        "button{font:inherit;padding:.5rem 1rem;margin:.25rem}"
        # On a narrow screen a wide table scrolls by itself, not the whole page (WCAG 1.4.10).
        "@media (max-width:40rem){table{display:block;overflow-x:auto}}"
        "</style></head><body><main>" + body + "</main></body></html>"
    )


def language_of(scope: Scope, default: str, known: frozenset[str] = frozenset()) -> str:
    """The language to render in: ``?lang=``, then ``Accept-Language``, then the site default
    (see :func:`~consent.i18n.pick_language`)."""
    accept = None
    for name, value in scope.get("headers", ()):
        if name == b"accept-language":
            accept = value.decode("latin-1")
            break
    return pick_language(scope.get("query_string", b""), accept, default, known)


def consent_form(
    policy: Policy, prefix: str, state: ConsentState, *, next_url: str, language: str = "en"
) -> str:
    """A plain HTML form with the same choices as the banner (works without JavaScript)."""
    t = ui_strings(language)
    rows = []
    gpc_note = ""
    for key, cat in policy.ordered():
        title = escape(cat.text(language).title)
        if cat.necessary:
            rows.append(
                f'<p><label><input type="checkbox" checked disabled> {title} '
                f"({escape(t['always_on'])})</label></p>"
            )
        elif state.gpc and cat.sale_or_share:
            # Global Privacy Control refuses it whatever is ticked (as the banner shows it).
            rows.append(
                f'<p><label><input type="checkbox" disabled> {title} '
                f"— {escape(t['gpc_off'])}</label></p>"
            )
            gpc_note = f"<p>{escape(t['gpc'])}</p>"
        else:
            checked = " checked" if key in state.granted else ""
            rows.append(
                f'<p><label><input type="checkbox" name="accept" value="{escape(key)}"{checked}> '
                f"{title}</label></p>"
            )
    return (
        f'<form method="post" action="{escape(prefix)}" class="consent-form">'
        f"<fieldset><legend>{escape(t['your_choices'])}</legend>{''.join(rows)}{gpc_note}"
        "</fieldset>"
        f'<input type="hidden" name="next" value="{escape(next_url)}">'
        f'<button type="submit" name="save" value="1">{escape(t["save"])}</button>'
        f'<button type="submit" name="accept" value="all">{escape(t["accept_all"])}</button>'
        f'<button type="submit" name="accept" value="none">{escape(t["reject_all"])}</button>'
        "</form>"
    )


def _receipt_html(stored: StoredReceipt, prefix: str, policy: Policy, language: str) -> str:
    """The visitor's receipt as a page in ``language`` (categories by their titles)."""
    r = stored.receipt
    t = ui_strings(language)

    def titles(keys: list[str]) -> str:
        cats = policy.categories
        return (
            ", ".join(cats[k].text(language).title if k in cats else k for k in keys) or t["none"]
        )

    rows = [
        (t["receipt_id"], r.receipt_id),
        (t["receipt_time"], r.time),
        (t["receipt_event"], t.get(f"event_{r.event}", r.event)),
        (t["receipt_granted"], titles(r.granted)),
        (t["receipt_refused"], titles(r.refused)),
        (t["receipt_method"], t.get(f"method_{r.method}", r.method)),
        (t["receipt_gpc"], t["yes"] if r.gpc else t["no"]),
        (t["controller"], f"{r.controller.name} <{r.controller.email}>"),
        (t["receipt_policy"], r.policy_url),
        (t["receipt_revision"], r.revision),
        (t["receipt_jurisdiction"], r.jurisdiction),
        (t["receipt_subject"], r.subject_id),
        (t["receipt_signature"].replace("{kid}", stored.kid), stored.signature),
        (t["receipt_hash"], stored.hash),
    ]
    table = "".join(
        f'<tr><th scope="row">{escape(k)}</th><td>{escape(str(v))}</td></tr>' for k, v in rows
    )
    body = (
        f"<h1>{escape(t['receipt_title'])}</h1><p>{escape(t['receipt_intro'])}</p>"
        f"<table>{table}</table>"
        f'<p><a href="{escape(prefix)}/declaration">{escape(t["change_choices"])}</a></p>'
    )
    return _page(t["receipt_title"], body, language)

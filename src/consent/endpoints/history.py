"""The visitor's own pages under the prefix: their history of receipts (``<prefix>/receipt``) and
the text of a policy revision (``<prefix>/revision/<rev>``).

:class:`~consent.endpoints.routes.ConsentEndpoints` routes to them; the data is built by
:mod:`consent.history`, the pages by :mod:`consent.pages`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import anyio
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope

from ..archive import document_of, entry_problem, policy_from_document
from ..cookies import cookie_pairs
from ..declaration import declaration_data, render_html
from ..history import history_json, history_jsonld
from ..pages import history_page, no_history_page, revision_page
from ..policy import Policy
from ..receipts import StoredReceipt
from ..state import ConsentCookie, ConsentState
from ..store import ReceiptStore, StoreUnavailable
from ..store.base import HISTORY_LIMIT
from .responses import (
    NEGOTIATED,
    NO_STORE,
    NO_STORE_NEGOTIATED,
    BadRequest,
    site_url,
    wants_html,
)

__all__ = ["REVISION", "VisitorHistory"]

REVISION = "/revision/"  # <prefix>/revision/<rev>: one route for every revision


class VisitorHistory:
    """The handlers of a visitor's history and of a policy revision's text (routes of
    :class:`~consent.endpoints.routes.ConsentEndpoints`, which gives them what they need of it)."""

    def __init__(
        self,
        *,
        policy: Policy,
        cookie: ConsentCookie,
        store: Callable[[], Awaitable[ReceiptStore]],
        unavailable: Callable[[], None],
        language: Callable[[Scope], str],
        public_prefix: Callable[[Scope], str],
    ) -> None:
        self._policy = policy
        self._cookie = cookie
        self._store = store  # the receipt store, opened on first use
        self._unavailable = unavailable  # counts a store failure answered with a 503
        self._language = language
        self._public_prefix = public_prefix

    async def receipt(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        """The visitor's history: every receipt of the subject id of their consent cookie
        (also one whose decision no longer counts), newest first. See :mod:`consent.history`."""
        headers = Headers(scope=scope)
        prefix = self._public_prefix(scope)
        subject_id = state.subject_id or subject or self._expired_subject(headers)
        entries: list[StoredReceipt] = []
        if subject_id:
            try:
                store = await self._store()
                entries = await store.history_for_subject(subject_id, HISTORY_LIMIT)
            except StoreUnavailable:
                self._unavailable()
                raise BadRequest(503, "the receipt store is unavailable") from None
        # The decision in effect must be one of this subject's receipts.
        if (
            entries
            and state.decided
            and all(e.receipt.receipt_id != state.receipt_id for e in entries)
        ):
            raise BadRequest(404, "receipt not found")
        if not entries or subject_id is None:
            if wants_html(headers):
                return HTMLResponse(
                    no_history_page(prefix, self._language(scope)),
                    status_code=404,
                    headers=NO_STORE,
                )
            raise BadRequest(404, "no consent decision recorded for this browser")
        current = state.decided and state.receipt_id == entries[0].receipt.receipt_id
        accept = headers.get("accept", "")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "application/ld+json" in accept and not wants_html(headers):
            document = history_jsonld(
                entries,
                base_url=site_url(scope),
                now=int(time.time()),
                lifetime=self._policy.site.consent_cookie.max_age,
                revision=self._policy.revision,
            )
            return JSONResponse(document, media_type="application/ld+json", headers=NO_STORE)
        if query.get("format") != "json" and wants_html(headers):
            return HTMLResponse(
                history_page(
                    entries,
                    subject_id=subject_id,
                    current=current,
                    prefix=prefix,
                    policy=self._policy,
                    language=self._language(scope),
                    limit=HISTORY_LIMIT,
                ),
                headers=NO_STORE,
            )
        data = history_json(
            entries,
            subject_id=subject_id,
            current=current,
            prefix=prefix,
            base_url=site_url(scope),
            limit=HISTORY_LIMIT,
        )
        extra = dict(NO_STORE)
        if query.get("format") == "json":
            name = "".join(c for c in subject_id[:64] if c.isascii() and (c.isalnum() or c in "-_"))
            extra["Content-Disposition"] = (
                f'attachment; filename="consent-receipts-{name or "visitor"}.json"'
            )
        return JSONResponse(data, headers=extra)

    def _expired_subject(self, headers: Headers) -> str | None:
        """The subject id of a validly signed consent cookie that has outlived its lifetime
        (the middleware gives none for it): its choice no longer counts, but its history is
        still the visitor's. The signature is checked as of when the cookie was signed."""
        name = self._policy.site.consent_cookie.name
        for header in headers.getlist("cookie"):
            for cookie_name, raw in cookie_pairs(header.encode("latin-1")):
                if cookie_name == name:
                    value = raw.partition(b"=")[2].decode("latin-1").strip(' \t"')
                    _, found = self._cookie.loads(value, now=0)
                    if found:
                        return found
        return None

    async def revision(
        self, scope: Scope, receive: Receive, state: ConsentState, subject: str | None, sub: str
    ) -> Response:
        """The text visitors were shown under the revision ``sub`` names (a unique prefix of at
        least 12 hex digits is enough): the current policy's declaration, or the one the store's policy
        archive keeps for an earlier revision, rendered the same way; else a readable 404."""
        revision = sub[len(REVISION) :]
        language = self._language(scope)
        prefix = self._public_prefix(scope)
        wanted = revision.lower()
        if not (12 <= len(wanted) <= 64 and all(c in "0123456789abcdef" for c in wanted)):
            raise BadRequest(404, "unknown policy revision", {"revision": revision[:80]})
        current = self._policy.revision.startswith(wanted)
        shown = self._policy if current else await self._archived_policy(wanted)
        body = render_html(shown, language) if shown is not None else None
        html = revision_page(
            shown.revision if shown is not None else wanted,
            body_html=body,
            prefix=prefix,
            language=language,
            current=current,
            archived=shown is not None and not current,
        )
        if not wants_html(Headers(scope=scope)):
            if shown is not None:
                return JSONResponse(
                    {"revision": shown.revision, **declaration_data(shown, language)},
                    headers=NEGOTIATED,
                )
            raise BadRequest(404, "the text of this policy revision is not kept by this site")
        return HTMLResponse(html, status_code=200 if shown else 404, headers=NO_STORE_NEGOTIATED)

    async def _archived_policy(self, wanted: str) -> Policy | None:
        """The policy the store's archive keeps for the one revision starting with ``wanted``
        (None: none, several, or a text that does not hash to its address: ``consent verify``
        reports that one)."""
        try:
            store = await self._store()
            entries = await anyio.to_thread.run_sync(
                lambda: [e for e in store.iter_policies() if e.revision.startswith(wanted)]
            )
        except StoreUnavailable:
            self._unavailable()
            raise BadRequest(503, "the receipt store is unavailable") from None
        if len({e.revision for e in entries}) != 1:
            return None
        for entry in entries:
            document = document_of(entry) if entry_problem(entry) is None else None
            if document is None:
                continue
            try:
                policy = policy_from_document(document)
            except ValueError:
                continue
            if policy.revision == entry.revision:
                return policy
        return None

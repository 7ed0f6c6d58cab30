"""What the middleware inserts into pages: the banner's tags, Consent Mode snippets, the no-JS form.

The template helpers (:func:`banner_tags`, :func:`consent_mode_default`, :func:`script_tag`) are
public, for sites that place the tags themselves; :class:`Injection` prepares them once per site
and hands each HTML response its rewrite (:mod:`consent.html.responder`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from html import escape

from starlette.types import Message, Scope, Send

from ..pages import noscript_form
from ..policy import CONSENT_MODE_TYPES, Policy
from ..state import ConsentState
from .headers import VARY_COOKIE
from .responder import DocumentCache, HtmlResponder, rewrite_document

__all__ = [
    "CONSENT_MODE_TYPES",
    "Injection",
    "banner_tags",
    "consent_mode_default",
    "script_tag",
]

_FORMS_LIMIT = 1024
_FORM_ADDRESS_MAX = 1024  # forms for longer page addresses are made each time, never kept


def _js_json(value: object) -> str:
    """JSON that is safe inside an inline ``<script>``: no ``<``, ``>``, ``&``, and no
    U+2028/U+2029 (``ensure_ascii`` escapes those)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def banner_tags(prefix: str, *, nonce: str | None = None) -> str:
    """The stylesheet link and deferred script of the banner, for sites that place them
    themselves instead of relying on automatic injection."""
    p = prefix.rstrip("/")
    n = "" if nonce is None else f' nonce="{escape(nonce)}"'
    return (
        f'<link rel="stylesheet" href="{escape(p)}/banner.css"{n}>'
        f'<script src="{escape(p)}/banner.js" defer data-consent-prefix="{escape(p)}"{n}></script>'
    )


def consent_mode_default(types: Sequence[str], granted_types: Sequence[str] = ()) -> str:
    """Inline JavaScript for Google Consent Mode: every type ``denied`` by default (with
    ``wait_for_update``), then an ``update`` granting ``granted_types``.  Must run before
    any Google tag; wrap it with :func:`script_tag`."""
    if isinstance(types, str) or isinstance(granted_types, str):
        raise TypeError("types and granted_types are sequences of consent type names")
    granted = list(dict.fromkeys(str(t) for t in granted_types))
    every = list(dict.fromkeys([*(str(t) for t in types), *granted]))
    default: dict[str, object] = dict.fromkeys(every, "denied")
    default["wait_for_update"] = 500
    code = (
        "window.dataLayer=window.dataLayer||[];"
        "function gtag(){dataLayer.push(arguments);}"
        f"gtag('consent','default',{_js_json(default)});"
    )
    if granted:
        code += f"gtag('consent','update',{_js_json(dict.fromkeys(granted, 'granted'))});"
    return code


def script_tag(code: str, *, nonce: str | None = None) -> str:
    """Wrap inline JavaScript in a ``<script>`` element (with a CSP nonce if given).
    ``code`` must already be safe for a script element, as the helpers here produce."""
    if "</script" in code.lower() or "<!--" in code:
        raise ValueError("inline script must not contain '</script' or '<!--'")
    n = "" if nonce is None else f' nonce="{escape(nonce)}"'
    return f"<script{n}>{code}</script>"


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
        """The banner's stylesheet and script, under the site's root path."""
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
        extra_headers: Sequence[tuple[bytes, bytes]] = VARY_COOKIE,
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

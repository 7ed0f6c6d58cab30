"""HTML pages on their way to the browser: banner injection and server-side script gating.

The middleware passes each ``http.response.start`` message through
:func:`~consent.html.headers.scan_start` (which also filters its ``Set-Cookie`` headers); when
it finds a rewritable page, a page sent in one message is rewritten at once and a streamed one
goes through an :class:`~consent.html.responder.HtmlResponder`. The parts, each with one job:

* :mod:`consent.html.tokenizer`: the byte-streaming tokenizer that inserts the banner's tags
  and activates ``data-consent`` elements (no ASGI);
* :mod:`consent.html.headers`: one pass over a response's headers, and their fixes once the
  body changed (``Content-Length``, validators);
* :mod:`consent.html.responder`: the ``send`` wrapper for one page, and the document cache;
* :mod:`consent.html.inject`: what is inserted (banner tags, Consent Mode snippets), prepared
  once per site.
"""

from __future__ import annotations

from .headers import (
    HEADER_KINDS,
    LAYOUT_COMPLEX,
    LAYOUT_NO_LENGTH,
    VARY_COOKIE,
    add_headers,
    csp_script_nonce,
    fix_headers,
    header_kind,
    html_page_nonce,
    html_rewrite_applies,
    scan_start,
    with_length,
)
from .inject import CONSENT_MODE_TYPES, banner_tags, consent_mode_default, script_tag
from .responder import DocumentCache, DocumentKey, HtmlResponder, rewrite_document
from .tokenizer import DEFAULT_MAX_TAIL, HtmlRewriter

__all__ = [
    "CONSENT_MODE_TYPES",
    "DEFAULT_MAX_TAIL",
    "HEADER_KINDS",
    "LAYOUT_COMPLEX",
    "LAYOUT_NO_LENGTH",
    "VARY_COOKIE",
    "DocumentCache",
    "DocumentKey",
    "HtmlResponder",
    "HtmlRewriter",
    "add_headers",
    "banner_tags",
    "consent_mode_default",
    "csp_script_nonce",
    "fix_headers",
    "header_kind",
    "html_page_nonce",
    "html_rewrite_applies",
    "rewrite_document",
    "scan_start",
    "script_tag",
    "with_length",
]

"""Response headers of a page being rewritten: one pass over a start message, the fixes after.

:func:`scan_start` reads a response start message's headers once: is it a rewritable page
(uncompressed ``text/html``, not HEAD/1xx/204/205/206/304, not an attachment or a range),
with which CSP script nonce, which ``Set-Cookie`` values pass, where its ``Content-Length`` is.
:func:`with_length` and :func:`fix_headers` then set the rewritten body's length and drop the
validators a changed body invalidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from operator import itemgetter
from typing import Any, Final

from starlette.types import Message

from ..cookies import header_bytes

__all__ = [
    "HEADER_KINDS",
    "LAYOUT_COMPLEX",
    "LAYOUT_NO_LENGTH",
    "VARY_COOKIE",
    "add_headers",
    "csp_script_nonce",
    "fix_headers",
    "header_kind",
    "html_page_nonce",
    "html_rewrite_applies",
    "scan_start",
    "with_length",
]


#: Added to whatever depends on the visitor's cookies, so that a shared cache does not mix
#: visitors.
VARY_COOKIE: tuple[tuple[bytes, bytes], ...] = ((b"vary", b"Cookie"),)

_NO_BODY_STATUS: Final = frozenset({204, 205, 206, 304})
# Headers that describe the exact bytes of the body; wrong once the body changes.
_BODY_VALIDATORS: Final = frozenset(
    {b"etag", b"content-md5", b"digest", b"content-digest", b"repr-digest"}
)


# Response header names the rewriting looks at, by kind. ``HEADER_KINDS`` maps a header name as
# sent (any case) to its kind; names not seen before are added by ``header_kind`` (bounded), so
# the loops over a response's headers do one dict lookup per header.
H_OTHER: Final = 0
H_SET_COOKIE: Final = 1
H_CONTENT_LENGTH: Final = 2
H_VALIDATOR: Final = 3
H_CONTENT_TYPE: Final = 4
H_CONTENT_ENCODING: Final = 5
H_CSP: Final = 6
H_CSP_REPORT_ONLY: Final = 7
H_CONTENT_RANGE: Final = 8
H_CONTENT_DISPOSITION: Final = 9
_KNOWN_KINDS: Final = {
    b"set-cookie": H_SET_COOKIE,
    b"content-length": H_CONTENT_LENGTH,
    **dict.fromkeys(_BODY_VALIDATORS, H_VALIDATOR),
    b"content-type": H_CONTENT_TYPE,
    b"content-encoding": H_CONTENT_ENCODING,
    b"content-security-policy": H_CSP,
    b"content-security-policy-report-only": H_CSP_REPORT_ONLY,
    b"content-range": H_CONTENT_RANGE,
    b"content-disposition": H_CONTENT_DISPOSITION,
}
HEADER_KINDS: dict[bytes, int] = dict(_KNOWN_KINDS)


def header_kind(name: bytes) -> int:
    """The kind of a response header name not yet in ``HEADER_KINDS`` (and remember it)."""
    kind = _KNOWN_KINDS.get(name.lower(), H_OTHER)
    if len(HEADER_KINDS) < 512 and len(name) <= 64:
        HEADER_KINDS[bytes(name)] = kind
    return kind


# Content-Type value -> whether it is text/html (a site sends few distinct values).
_html_types: dict[bytes, bool] = {}


def _is_html_type(value: bytes | bytearray) -> bool:
    if type(value) is not bytes:
        value = bytes(value)  # a bytearray cannot be a dict key
    found = _html_types.get(value)
    if found is None:
        found = value.split(b";", 1)[0].strip().lower() == b"text/html"
        if len(_html_types) < 256 and len(value) <= 256:
            _html_types[value] = found
    return found


def html_rewrite_applies(method: str, start: Message) -> bool:
    """Whether a response can be rewritten: an uncompressed ``text/html`` body that the
    browser will parse as a document (not HEAD, not 1xx/204/205/206/304, not a download
    with ``Content-Disposition: attachment``, not a ``Content-Range`` part)."""
    return html_page_nonce(method, start) is not None


def html_page_nonce(method: str, start: Message) -> str | None:
    """``None`` when the response cannot be rewritten (see :func:`html_rewrite_applies`);
    otherwise the nonce its ``Content-Security-Policy`` allows scripts with (see
    :func:`csp_script_nonce`), or ``""`` when it has none. (The header pass of
    :func:`scan_start`, keeping every ``Set-Cookie``.)"""
    return scan_start(method, start, _keep_all, frozenset())[1]


def _keep_all(value: bytes, allowed: frozenset[str]) -> bool:
    return True


#: ``scan_start``'s layout when the headers need :func:`fix_headers` (body validators, or
#: more than one ``Content-Length``).
LAYOUT_COMPLEX: Final = -2
#: ``scan_start``'s layout when the headers have no ``Content-Length``.
LAYOUT_NO_LENGTH: Final = -1


def scan_start(
    method: str,
    start: Message,
    keep_set_cookie: Callable[[bytes, frozenset[str]], bool],
    allowed: frozenset[str],
    kept_names: Collection[bytes] = (),
) -> tuple[list[tuple[bytes, bytes]] | None, str | None, int]:
    """One pass over a response start message's headers: is it a rewritable page, and with
    which CSP nonce; which ``Set-Cookie`` values pass; where is its ``Content-Length``.
    ``(headers, nonce, layout)``:

    * ``headers``: the header list without the ``Set-Cookie`` values for which
      ``keep_set_cookie(value, allowed)`` is false (each value is offered to it exactly once,
      but for a value whose name, the bytes before its first ``=``, is in ``kept_names``:
      those are kept at once); ``None`` when every header is kept (then
      ``start["headers"]`` is the list).
    * ``nonce``: ``None`` when the response cannot be rewritten (see
      :func:`html_rewrite_applies`), else its scripts' nonce (see :func:`csp_script_nonce`),
      ``""`` when it has none.
    * ``layout``: where the one ``Content-Length`` is in the kept headers
      (:data:`LAYOUT_NO_LENGTH` when there is none, :data:`LAYOUT_COMPLEX` when
      :func:`fix_headers` must rebuild them), so that :func:`with_length` sets a rewritten
      page's length without another pass.
    """
    page = method == "GET" or method.upper() != "HEAD"
    if page:
        status = start.get("status", 200)
        if type(status) is not int:
            try:
                status = int(status)
            except (TypeError, ValueError):
                page = False
        page = page and status >= 200 and status not in _NO_BODY_STATUS
    html = None
    nonce = report_only = ""
    layout = LAYOUT_NO_LENGTH
    kinds = HEADER_KINDS
    headers = start.get("headers") or ()
    out: list[tuple[bytes, bytes]] | None = None
    i = -1
    for name, value in headers:
        i += 1
        if type(name) is not bytes or type(value) is not bytes:
            # (str, memoryview, bytearray: servers pass them on) Judged as bytes, and passed on
            # as bytes; dropped when they cannot be read (it may be a Set-Cookie).
            if out is None:
                out = list(headers[:i])
            name, value = header_bytes(name), header_bytes(value)
            if name is None or value is None:
                continue
        kind = kinds.get(name)
        if kind is None:
            kind = header_kind(name)
        if kind == H_SET_COOKIE:
            key, eq, _ = value.partition(b"=")
            if not (eq and key in kept_names) and not keep_set_cookie(value, allowed):
                if out is None:
                    out = list(headers[:i])  # all bytes, or out would exist already
                continue
        elif kind == H_CONTENT_LENGTH:
            layout = (
                (i if out is None else len(out)) if layout == LAYOUT_NO_LENGTH else LAYOUT_COMPLEX
            )
        elif kind == H_VALIDATOR:
            layout = LAYOUT_COMPLEX
        elif kind >= H_CONTENT_TYPE and page:
            if kind == H_CONTENT_TYPE:
                if html is None:
                    html = _html_types.get(value)
                    if html is None:
                        html = _is_html_type(value)
            elif kind == H_CONTENT_ENCODING:
                for coding in value.split(b","):
                    if coding.strip().lower() not in (b"", b"identity"):
                        page = False
                        break
            elif kind == H_CSP:
                nonce = nonce or csp_script_nonce(value)
            elif kind == H_CSP_REPORT_ONLY:
                report_only = report_only or csp_script_nonce(value)
            elif kind == H_CONTENT_RANGE or (
                value.split(b";", 1)[0].strip().lower() == b"attachment"
            ):
                page = False
        if out is not None:
            out.append((name, value))
    if not (page and html):
        return out, None, layout
    # An enforced policy's nonce first; a report-only one keeps its reports quiet.
    return out, nonce or report_only, layout


def with_length(
    headers: Sequence[tuple[bytes, bytes]],
    layout: int,
    length: bytes,
    body_changed: bool,
    extra: Sequence[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    """A rewritten page's headers from what :func:`scan_start` kept: the one correct
    ``Content-Length`` (where the first one was), ``extra`` appended; what
    :func:`fix_headers` makes of them."""
    if layout == LAYOUT_COMPLEX:
        return fix_headers(headers, content_length=length, body_changed=body_changed, extra=extra)
    out = list(headers)
    if layout == LAYOUT_NO_LENGTH:
        out.append((b"content-length", length))
    else:
        out[layout] = (out[layout][0], length)
    return add_headers(out, extra)


_NAME = itemgetter(0)


def add_headers(
    out: list[tuple[bytes, bytes]], extra: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``out`` with ``extra`` appended, where a ``vary`` of ``extra`` is merged into the
    response's own ``Vary`` instead of repeating it (behind Starlette's SessionMiddleware the
    page already varies with ``Cookie``): the tokens it lacks, compared without case, are added
    to its first ``Vary`` header; nothing is added to ``Vary: *``."""
    for name, value in extra:
        if name == b"vary":
            _merge_vary(out, value)
        else:
            out.append((name, value))
    return out


def _merge_vary(out: list[tuple[bytes, bytes]], value: bytes) -> None:
    try:
        # No header name of four characters, the usual case: no Vary to merge into (in C).
        unvaried = 4 not in map(len, map(_NAME, out))
    except TypeError:  # a name without a length (see header_bytes)
        unvaried = False
    if unvaried:
        out.append((b"vary", value))
        return
    first = -1
    named: set[bytes] = set()
    for i, (name, old) in enumerate(out):
        if type(name) is not bytes or type(old) is not bytes:  # (see header_bytes)
            name, old = header_bytes(name) or b"", header_bytes(old) or b""
        if len(name) != 4 or name.lower() != b"vary":
            continue
        tokens = {t.strip(b" \t").lower() for t in old.split(b",")}
        if b"*" in tokens:
            return  # it varies with everything already
        named |= tokens
        if first < 0:
            first = i
    missing = [t.strip(b" \t") for t in value.split(b",")]
    missing = [t for t in missing if t and t.lower() not in named]
    if not missing:
        return
    if first < 0:
        out.append((b"vary", b", ".join(missing)))
        return
    name, old = out[first]
    kept = (header_bytes(old) or b"").strip(b" \t")
    out[first] = (header_bytes(name) or b"vary", b", ".join([kept, *missing] if kept else missing))


_NONCE = re.compile(rb"'nonce-([A-Za-z0-9+/_=-]+)'", re.IGNORECASE)
# Which directive governs a <script> element: the first of these that the policy has.
_SCRIPT_DIRECTIVES: Final = (b"script-src-elem", b"script-src", b"default-src")


def csp_script_nonce(policy: bytes) -> str:
    """The nonce a ``Content-Security-Policy`` header value allows ``<script>`` elements with
    (from ``script-src-elem``, else ``script-src``, else ``default-src``), or ``""``.
    Injected tags carry it, so a strict policy does not block the banner."""
    for serialized in policy.split(b","):  # one header may carry several policies
        directives: dict[bytes, bytes] = {}
        for part in serialized.split(b";"):
            words = part.strip().split(None, 1)
            if words:
                # The first occurrence of a directive wins (CSP3 "parse a serialized policy").
                directives.setdefault(words[0].lower(), words[1] if len(words) > 1 else b"")
        for directive in _SCRIPT_DIRECTIVES:
            if directive in directives:
                match = _NONCE.search(directives[directive])
                if match:
                    return match.group(1).decode("ascii")
                break
    return ""


def fix_headers(
    headers: Iterable[Any],
    *,
    content_length: int | bytes | None,
    body_changed: bool,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> list[tuple[bytes, bytes]]:
    """Rebuild the header list of a rewritten body, in one pass: one correct
    ``Content-Length`` (in place of the first one) or none, validators dropped when the body
    changed, ``extra`` appended. Every other header keeps its name, value and position;
    ``Set-Cookie`` headers are never merged (they were filtered before, by the cookie filter)."""
    out: list[tuple[bytes, bytes]] = []
    if content_length is None:
        length = None
    elif type(content_length) is bytes:
        length = content_length
    else:
        length = str(content_length).encode("ascii")
    kinds = HEADER_KINDS
    for name, value in headers:
        if type(name) is not bytes or type(value) is not bytes:
            name, value = header_bytes(name), header_bytes(value)
            if name is None or value is None:
                continue  # no header a server can send (it may be a Set-Cookie): dropped
        kind = kinds.get(name)
        if kind is None:
            kind = header_kind(name)
        if kind == H_CONTENT_LENGTH:
            if length is not None:
                out.append((name, length))
                length = None
        elif kind != H_VALIDATOR or not body_changed:
            out.append((name, value))
    if length is not None:
        out.append((b"content-length", length))
    if extra:
        add_headers(out, extra)
    return out

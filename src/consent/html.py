"""Streaming HTML injection and server-side script gating.

The middleware passes each ``http.response.start`` message through :func:`scan_start`
(which also filters its ``Set-Cookie`` headers); when it finds a rewritable page (see
:func:`html_rewrite_applies`), a page sent in one message is rewritten at once and a
streamed one goes through an :class:`HtmlResponder`, which

* inserts ``head_start`` right after the opening ``<head>`` tag (before any other tag in
  the head, as Google Consent Mode needs), ``head_end`` right before ``</head>`` and
  ``body_start`` right after the opening ``<body>`` tag;
* activates elements gated by ``data-consent`` whose categories are all granted, so
  they run on the very first page load::

      <script type="text/plain" data-consent="analytics" src="/a.js"></script>
      <iframe data-consent="embedded" data-src="https://..."></iframe>
      <img data-consent="marketing" data-src="...">

* fixes the response headers: ``Content-Length`` is recomputed when the whole body came
  in one message and dropped otherwise; ``ETag`` (and body digests) are dropped whenever
  the body may differ from what the application produced.

The document is never decoded and never held in memory: the rewriter is a small HTML
tokenizer over bytes that emits everything it has seen except an incomplete construct at
the end of a chunk (a tag cut in half, a possible ``</script`` or ``-->``), which it holds
back and joins with the next chunk.  The held tail is capped (8 KiB by default); a single
tag longer than that is passed through without gating, but the tokenizer still follows it,
so tag boundaries, comments and raw-text elements stay correct.

Markup inside comments, attribute values and raw-text elements (``<script>``,
``<style>``, ``<textarea>``, ``<title>``, ``<iframe>``, ...) is never touched.

Where no ``<head>`` tag exists, ``head_start`` goes before the first ``<script>``, or
before ``<body>``/``</head>``; what found no place at all (a fragment) is appended at the
end.  An empty body stays empty.  Only the first ``<head>``, ``</head>`` and ``<body>``
count.

Known simplifications, all about malformed or exotic markup: the "script data double
escaped" state (``<!--<script>`` inside a script) is not modelled, ``<noscript>`` content
is treated as markup, and foreign content (``<svg><title>``) is tokenized like HTML.

Speed: the tokenizer is one compiled pattern that consumes runs of uninteresting text and
tags in C; Python code runs only for ``<head>``, ``<body>``, ``<script>``, raw-text
elements and (when something is granted) ``<img>``/``<iframe>`` with ``data-consent``.
Expect roughly 100-200 MB/s on real pages, more on text-heavy ones.
"""

from __future__ import annotations

import html as _html
import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Final

from starlette.types import Message, Send

from .cookies import header_bytes

__all__ = [
    "CONSENT_MODE_TYPES",
    "HtmlResponder",
    "HtmlRewriter",
    "banner_tags",
    "consent_mode_default",
    "html_rewrite_applies",
    "script_tag",
]

# --------------------------------------------------------------------------------------
# Tokenizer patterns (bytes).  Whitespace is the HTML set: TAB, LF, FF, CR, SPACE.
# Quantifiers are possessive so that a failed match never backtracks into a long run.
# --------------------------------------------------------------------------------------

# An attribute name: the first character may be "=" (a parse error browsers accept).
_ATTR_NAME: Final = rb"[^\t\n\f\r />][^\t\n\f\r />=]*+"
# An attribute value after "=": quoted, unquoted, or empty when the tag ends right away.
_ATTR_VALUE: Final = rb"""(?:"[^"]*+"|'[^']*+'|[^\t\n\f\r >"'][^\t\n\f\r >]*+|(?=>))"""


def _attr_units(name: bytes, value: bytes = _ATTR_VALUE) -> bytes:
    """Everything between a tag name and its ``>``: attributes and separators.  An
    attribute without a value must be followed by something other than "=" (the
    lookahead fails at the end of the buffer, so a tag cut after an attribute name is
    recognised as incomplete)."""
    return (
        rb"(?:"
        + name
        + rb"(?:="
        + value
        + rb"|[\t\n\f\r ]*+=[\t\n\f\r ]*+"
        + value
        + rb"|(?=[\t\n\f\r ]*+[^\t\n\f\r =]))|[\t\n\f\r /]++)*+"
    )


_ATTR_UNITS: Final = _attr_units(_ATTR_NAME)
# The same, for a tag that has no data-consent attribute.
_ATTR_UNITS_UNGATED: Final = _attr_units(rb"(?!(?i:data-consent)[\t\n\f\r />=])" + _ATTR_NAME)
_TAG_NAME: Final = rb"[A-Za-z][^\t\n\f\r />]*+"

# A complete start or end tag.
_TAG: Final = re.compile(rb"<(/?)(" + _TAG_NAME + rb")" + _ATTR_UNITS + rb">")
# The opening of a tag, to learn its name when the tag is too long to hold.
_TAG_OPEN: Final = re.compile(rb"<(/?)(" + _TAG_NAME + rb")")

# Start tags that always need attention: insertion points and raw-text elements.
_SPECIAL: Final = rb"head|body|script|iframe|style|textarea|title|xmp|noembed|noframes|plaintext"


# Raw-text elements that, complete, need nothing from us either: skipped in one go.
_RAW_SKIPPED: Final = (b"title", b"style", b"textarea", b"xmp", b"noembed", b"noframes")


def _raw_element(name: bytes, attrs: bytes) -> bytes:
    """A complete start tag ``name`` and its raw text, up to (not including) its end tag,
    which must be in the buffer (the end tag itself is an ordinary boring end tag)."""
    return (
        rb"|<(?i:" + name + rb")(?=[\t\n\f\r />])" + attrs + rb">"
        rb"(?:[^<]++|<(?!/(?i:" + name + rb")[\t\n\f\r />]))*+"
        rb"(?=</(?i:" + name + rb")[\t\n\f\r />])"
    )


def _boring(gating: bool, scripts: bool) -> re.Pattern[bytes]:
    """A run of markup that needs nothing from us: text, complete uninteresting tags,
    complete comments, doctypes and bogus comments, and complete raw-text elements that
    cannot matter (``<title>``, ``<style>``, ...; ``<script>`` once ``head_start`` is
    placed (``scripts``), ``<script>``/``<iframe>`` without ``data-consent`` when gating).
    It stops at the first ``<`` that starts something interesting or incomplete.  (The
    most frequent alternatives come first; that alone is worth a third of the speed.)"""
    if gating:
        # <img> matters only with a data-consent attribute.
        start = (
            rb"|<(?!(?i:" + _SPECIAL + rb"|img)[\t\n\f\r />])" + _TAG_NAME + _ATTR_UNITS + rb">"
            rb"|<(?=(?i:img)[\t\n\f\r />])" + _TAG_NAME + _ATTR_UNITS_UNGATED + rb">"
        )
    else:
        start = rb"|<(?!(?i:" + _SPECIAL + rb")[\t\n\f\r />])" + _TAG_NAME + _ATTR_UNITS + rb">"
    activatable = _ATTR_UNITS_UNGATED if gating else _ATTR_UNITS
    raw = b"".join(_raw_element(name, _ATTR_UNITS) for name in _RAW_SKIPPED)
    raw += _raw_element(b"iframe", activatable)
    if scripts:
        raw = _raw_element(b"script", activatable) + raw
    return re.compile(
        rb"(?:[^<]++"
        rb"|</(?!(?i:head)[\t\n\f\r />])"
        + _TAG_NAME
        + _ATTR_UNITS
        + rb">"
        + start
        + raw
        + rb"|<(?=[^A-Za-z/!?])"
        rb"|<!--(?:-?>|(?:[^-]++|-(?!-!?>))*+--!?>)"
        rb"|<!(?!--)[^>]*+>"
        rb"|<\?[^>]*+>"
        rb"|</(?:>|[^A-Za-z>][^>]*+>)"
        rb")*+"
    )


# Indexed by "is head_start placed": before that, every <script> needs attention.
# Without any granted category nothing can be activated, so <img> is uninteresting.
_BORING_NO_GATING: Final = (_boring(False, False), _boring(False, True))
_BORING_GATING: Final = (_boring(True, False), _boring(True, True))

_COMMENT_END: Final = re.compile(rb"--!?>")
_DATA_CONSENT: Final = re.compile(rb"(?i)data-consent")

# Iterating the attributes of a complete tag (the tag grammar is already checked).
_ATTR_ITER: Final = re.compile(
    rb"[\t\n\f\r /]++|("
    + _ATTR_NAME
    + rb""")(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+("[^"]*+"|'[^']*+'|[^\t\n\f\r >"'][^\t\n\f\r >]*+|))?"""
)

# Continuing a tag that was too long to hold, from a known position inside it.  Here an
# unquoted value must be seen to end, so that a value cut by the buffer end is noticed.
_UNITS_RE: Final = re.compile(
    _attr_units(
        _ATTR_NAME,
        rb"""(?:"[^"]*+"|'[^']*+'|[^\t\n\f\r >"'][^\t\n\f\r >]*+(?=[\t\n\f\r >])|(?=>))""",
    )
)
_NAME_WS_RE: Final = re.compile(_ATTR_NAME + rb"[\t\n\f\r ]*+")
_AFTER_NAME_RE: Final = re.compile(rb"[^\t\n\f\r />=]*+[\t\n\f\r ]*+")
_WS_RE: Final = re.compile(rb"[\t\n\f\r ]*+")
_UNQUOTED_RE: Final = re.compile(rb"[^\t\n\f\r >]*+")

# Elements whose content is raw text (or RCDATA): no tags inside, only the end tag.
_RAW_TEXT: Final = frozenset(
    {b"script", b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed", b"noframes"}
)
_RAW_END: Final = {name: re.compile(rb"</(?i:" + name + rb")[\t\n\f\r />]") for name in _RAW_TEXT}

# Tokenizer states.
_DATA: Final = 0
_COMMENT: Final = 1
_RAW: Final = 2
_TAG_CONT: Final = 3  # inside a start/end tag that was too long to hold
_BOGUS: Final = 4  # inside <!...>, <?...> or </...> that was too long to hold
_PLAINTEXT: Final = 5
_IDLE: Final = 6  # nothing left that could change: the rest passes through

# Positions inside a tag, used only for tags too long to hold.
_T_NEUTRAL: Final = 0
_T_AFTER_NAME: Final = 1
_T_BEFORE_VALUE: Final = 2
_T_DQ: Final = 3
_T_SQ: Final = 4
_T_UNQUOTED: Final = 5

_LETTERS: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

DEFAULT_MAX_TAIL: Final = 8192


def _scan_tag(buf: bytes, pos: int, sub: int) -> tuple[int, int]:
    """Follow a tag from ``pos`` (at position ``sub`` inside it) to its closing ``>``.

    Returns ``(end, sub)``: ``end`` is the index after ``>``, or -1 if the tag goes on
    beyond the buffer, in which case ``sub`` tells where the next buffer resumes.
    """
    n = len(buf)
    while True:
        if sub in (_T_DQ, _T_SQ):
            i = buf.find(b'"' if sub == _T_DQ else b"'", pos)
            if i < 0:
                return -1, sub
            pos, sub = i + 1, _T_NEUTRAL
        elif sub == _T_BEFORE_VALUE:
            pos = _WS_RE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                return -1, sub
            c = buf[pos]
            if c == 0x22:  # "
                pos, sub = pos + 1, _T_DQ
            elif c == 0x27:  # '
                pos, sub = pos + 1, _T_SQ
            elif c == 0x3E:  # >
                return pos + 1, _T_NEUTRAL
            else:
                sub = _T_UNQUOTED
        elif sub == _T_UNQUOTED:
            pos = _UNQUOTED_RE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                return -1, sub
            sub = _T_NEUTRAL
        elif sub == _T_AFTER_NAME:
            pos = _AFTER_NAME_RE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                return -1, sub
            if buf[pos] == 0x3D:  # =
                pos, sub = pos + 1, _T_BEFORE_VALUE
            else:
                sub = _T_NEUTRAL
        else:
            pos = _UNITS_RE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                return -1, _T_NEUTRAL
            if buf[pos] == 0x3E:
                return pos + 1, _T_NEUTRAL
            # An attribute whose name or value continues beyond the buffer.
            end = _NAME_WS_RE.match(buf, pos).end()  # type: ignore[union-attr]
            if end >= n:
                return -1, _T_AFTER_NAME
            if buf[end] == 0x3D:
                pos, sub = end + 1, _T_BEFORE_VALUE
            else:  # cannot happen with the grammar above; make progress regardless
                pos = max(end, pos + 1)


def _unquote(value: bytes) -> bytes:
    if value[:1] in (b'"', b"'"):
        return value[1:-1]
    return value


_GATE_CACHE_LIMIT: Final = 256
_GATE_CACHE_MAX_TAG: Final = 1024
# (tag, granted) -> activated tag or None.  A site's gated tags are few and appear on every
# page, so each one is parsed once per set of granted categories.
_gate_cache: dict[tuple[bytes, frozenset[bytes]], bytes | None] = {}


def _gate(tag: bytes, name: bytes, name_end: int, granted: frozenset[bytes]) -> bytes | None:
    """Return the activated form of a gated tag, or None to leave it as it is."""
    if len(tag) > _GATE_CACHE_MAX_TAG:
        return _gate_parse(tag, name, name_end, granted)
    key = (tag, granted)
    try:
        return _gate_cache[key]
    except KeyError:
        pass
    new = _gate_parse(tag, name, name_end, granted)
    if len(_gate_cache) >= _GATE_CACHE_LIMIT:
        _gate_cache.clear()
    _gate_cache[key] = new
    return new


def _gate_parse(tag: bytes, name: bytes, name_end: int, granted: frozenset[bytes]) -> bytes | None:
    # (lower-case name, start incl. preceding separator, end, name start, name end,
    #  unquoted value or None)
    attrs: list[tuple[bytes, int, int, int, int, bytes | None]] = []
    first: dict[bytes, int] = {}
    separator = name_end
    for m in _ATTR_ITER.finditer(tag, name_end, len(tag) - 1):
        attr = m.group(1)
        if attr is None:
            separator = m.start()
            continue
        lname = attr.lower()
        raw = m.group(2)
        value = None if raw is None else _unquote(raw)
        first.setdefault(lname, len(attrs))
        attrs.append((lname, separator, m.end(), m.start(1), m.end(1), value))
        separator = m.end()

    index = first.get(b"data-consent")
    if index is None:
        return None
    categories = (attrs[index][5] or b"").split()
    if not categories or not all(c in granted for c in categories):
        return None

    # attribute to drop -> None; attribute to rename -> new name
    renames: dict[int, bytes] = {}
    drop: set[bytes] = set()
    if name == b"script":
        index = first.get(b"type")
        if index is None or (attrs[index][5] or b"").strip().lower() != b"text/plain":
            return None
        drop.add(b"type")
        if b"data-type" in first:
            renames[first[b"data-type"]] = b"type"
    else:
        pairs = [(b"data-src", b"src")]
        if name == b"img":
            pairs += [(b"data-srcset", b"srcset"), (b"data-sizes", b"sizes")]
        for source, target in pairs:
            if source in first:
                renames[first[source]] = target
                drop.add(target)
        if not renames:
            return None

    parts: list[bytes] = []
    last = 0
    for i, (lname, start, end, nstart, nend, _value) in enumerate(attrs):
        new_name = renames.get(i)
        if new_name is not None:
            parts += (tag[last:nstart], new_name)
            last = nend
        elif lname in drop:
            parts.append(tag[last:start])
            last = end
            if tag[end : end + 1] not in (b" ", b"\t", b"\n", b"\f", b"\r", b"/", b">"):
                parts.append(b" ")  # keep the next attribute apart from the previous one
    parts.append(tag[last:])
    return b"".join(parts)


_ENCODED_LIMIT: Final = 64
# frozenset of granted category keys -> the same as bytes (one per consent state seen).
_encoded_cache: dict[frozenset[str], frozenset[bytes]] = {}


def _encoded(granted: Iterable[str]) -> frozenset[bytes]:
    if isinstance(granted, frozenset):
        found = _encoded_cache.get(granted)
        if found is None:
            found = frozenset(g.encode("utf-8") for g in granted)
            if len(_encoded_cache) >= _ENCODED_LIMIT:
                _encoded_cache.clear()
            _encoded_cache[granted] = found
        return found
    return frozenset(g.encode("utf-8") for g in granted)


class HtmlRewriter:
    """Incremental rewriter: call :meth:`feed` with each chunk, then :meth:`close`.

    The concatenated results equal what one ``feed(whole_document)`` + ``close()``
    produces, for any chunking, as long as no single tag is longer than ``max_tail``.
    """

    __slots__ = (
        "_body_start",
        "_boring",
        "_granted",
        "_head_end",
        "_head_start",
        "_last",
        "_max_tail",
        "_raw_end",
        "_raw_keep",
        "_seen",
        "_state",
        "_tag_name",
        "_tag_sub",
        "_tail",
        "changed",
    )

    def __init__(
        self,
        *,
        head_start: bytes = b"",
        head_end: bytes = b"",
        body_start: bytes = b"",
        granted: Iterable[str] = (),
        max_tail: int = DEFAULT_MAX_TAIL,
    ) -> None:
        # Pending insertions; None once inserted (or when there is nothing to insert).
        self._head_start: bytes | None = head_start or None
        self._head_end: bytes | None = head_end or None
        self._body_start: bytes | None = body_start or None
        self._granted = _encoded(granted)
        self._boring = _BORING_GATING if self._granted else _BORING_NO_GATING
        self._max_tail = max(16, max_tail)
        self._state = _DATA
        self._raw_end: re.Pattern[bytes] = _RAW_END[b"script"]
        self._raw_keep = 0
        self._tag_name = b""
        self._tag_sub = _T_NEUTRAL
        self._tail = b""
        self._seen = False
        self._last = False  # the chunk being fed is the last one (see rewrite())
        #: True once the output differs from the input.
        self.changed = False

    def feed(self, chunk: bytes) -> bytes:
        """Rewrite the next chunk; returns the bytes that can be sent now."""
        if not chunk:
            return b""
        self._seen = True
        if self._tail:
            chunk = self._tail + chunk
            self._tail = b""
        return self._run(chunk, final=False)

    def rewrite(self, document: bytes) -> bytes:
        """The whole document at once: the same as ``feed(document) + close()``, but once
        nothing is left to insert or activate the rest is passed on without tokenizing."""
        self._last = True
        out = self.feed(document)
        return out + self.close()

    def close(self) -> bytes:
        """Flush the held tail and any insertion that found no place in the document."""
        tail, self._tail = self._tail, b""
        out = self._run(tail, final=True) if tail else b""
        if not self._seen:
            return out  # an empty body stays empty
        extra = [x for x in (self._head_start, self._head_end, self._body_start) if x]
        self._head_start = self._head_end = self._body_start = None
        if extra:
            self.changed = True
            return out + b"".join(extra)
        return out

    # ----------------------------------------------------------------------------------

    def _idle(self, buf: bytes, pos: int, gates: list[Any]) -> bool:
        """True when nothing from ``buf[pos:]`` on can change: every insertion is placed and
        no tag can be activated (nothing granted, or no ``data-consent`` left in the last
        chunk).  Without granted categories that holds for the rest of the document.

        ``gates`` caches, per buffer, its lower-cased copy and where the next
        ``data-consent`` starts (-1: none; -2: not looked for yet)."""
        if self._head_start is not None or self._head_end is not None:
            return False
        if self._body_start is not None:
            return False
        if not self._granted:
            self._state = _IDLE
            return True
        if not self._last:
            return False
        at: int = gates[1]
        if at == -2 or 0 <= at < pos:
            if gates[0] is None:
                gates[0] = buf.lower()
            at = gates[1] = gates[0].find(b"data-consent", pos)
        return at < 0

    def _run(self, buf: bytes, final: bool) -> bytes:
        gates: list[Any] = [None, -2]
        if self._state == _IDLE or (self._state == _DATA and self._idle(buf, 0, gates)):
            return buf
        out: list[bytes] = []
        mark = 0  # buf[:mark] is in `out`
        pos = 0
        n = len(buf)
        hold = n  # buf[hold:] becomes the tail
        while pos < n:
            state = self._state
            if state == _DATA:
                boring = self._boring[self._head_start is None]
                pos = boring.match(buf, pos).end()  # type: ignore[union-attr]
                if pos >= n:
                    break
                # buf[pos] is "<" and starts something interesting or incomplete.
                c1 = buf[pos + 1 : pos + 2]
                if c1 == b"!":
                    if buf.startswith(b"<!--", pos):
                        # Incomplete comment (complete ones are boring).  "<!-->" and
                        # "<!--->" close at once, so wait until that can be decided.
                        if not final and (n - pos == 4 or (n - pos == 5 and buf[pos + 4] == 0x2D)):
                            hold = pos
                            break
                        self._state = _COMMENT
                        pos += 4
                        continue
                    pos, hold = self._bogus(buf, pos, final)
                    if hold < n:
                        break
                    continue
                if c1 == b"?":
                    pos, hold = self._bogus(buf, pos, final)
                    if hold < n:
                        break
                    continue
                if c1 == b"/":
                    c2 = buf[pos + 2 : pos + 3]
                    if not c2:
                        if not final:
                            hold = pos
                        pos = n
                        break
                    if c2[0] not in _LETTERS:
                        pos, hold = self._bogus(buf, pos, final)
                        if hold < n:
                            break
                        continue
                elif not c1:
                    if not final:
                        hold = pos
                    pos = n
                    break
                elif c1[0] not in _LETTERS:
                    pos += 1  # "<" as text (normally consumed by the boring run)
                    continue
                # A start or end tag.
                m = _TAG.match(buf, pos)
                if m is not None:
                    pos, mark = self._on_tag(buf, m, out, mark)
                    if self._state == _DATA and self._idle(buf, pos, gates):
                        pos = n
                    continue
                if final:
                    pos = n
                    break
                if n - pos <= self._max_tail:
                    hold = pos
                    break
                pos, mark = self._overflow(buf, pos, out, mark)
            elif state == _RAW:
                m = self._raw_end.search(buf, pos)
                if m is not None:
                    pos = m.start()
                    self._state = _DATA
                    continue
                if not final:
                    hold = max(pos, n - self._raw_keep)
                pos = n
            elif state == _COMMENT:
                m = _COMMENT_END.search(buf, pos)
                if m is not None:
                    pos = m.end()
                    self._state = _DATA
                    continue
                if not final:
                    hold = max(pos, n - 3)
                pos = n
            elif state == _TAG_CONT:
                end, self._tag_sub = _scan_tag(buf, pos, self._tag_sub)
                if end < 0:
                    pos = n
                    break
                self._state = _DATA
                pos, mark = self._after_tag(buf, self._tag_name, end, out, mark)
            elif state == _BOGUS:
                i = buf.find(b">", pos)
                if i < 0:
                    pos = n
                    break
                pos = i + 1
                self._state = _DATA
            else:  # _PLAINTEXT: everything up to the end is text
                pos = n
        if hold < n:
            self._tail = buf[hold:]
        else:
            hold = n
        if mark == 0 and hold == n and not out:
            return buf
        out.append(buf[mark:hold])
        return b"".join(out)

    def _bogus(self, buf: bytes, pos: int, final: bool) -> tuple[int, int]:
        """``<!...>``, ``<?...>`` or ``</...>`` without its ``>`` in this buffer
        (complete ones are boring).  Returns ``(pos, hold)``."""
        n = len(buf)
        if not final and n - pos <= self._max_tail:
            return n, pos
        self._state = _BOGUS
        return n, n

    def _pending_head(self, out: list[bytes]) -> None:
        """Everything that belongs in the head and has not been placed yet."""
        if self._head_start is not None:
            out.append(self._head_start)
            self._head_start = None
        if self._head_end is not None:
            out.append(self._head_end)
            self._head_end = None

    def _before_tag(self, is_end: bool, name: bytes, pre: list[bytes]) -> None:
        if is_end:
            if name == b"head":
                self._pending_head(pre)
        elif name == b"body":
            self._pending_head(pre)
        elif name == b"script" and self._head_start is not None:
            pre.append(self._head_start)
            self._head_start = None

    def _after_tag(
        self, buf: bytes, name: bytes, end: int, out: list[bytes], mark: int
    ) -> tuple[int, int]:
        """Actions once a start tag named ``name`` ended at ``end``."""
        post: bytes | None = None
        if name == b"head":
            post, self._head_start = self._head_start, None
        elif name == b"body":
            post, self._body_start = self._body_start, None
        elif name in _RAW_TEXT:
            self._state = _RAW
            self._raw_end = _RAW_END[name]
            self._raw_keep = len(name) + 3
        elif name == b"plaintext":
            self._state = _PLAINTEXT
        if post:
            out += (buf[mark:end], post)
            self.changed = True
            return end, end
        return end, mark

    def _on_tag(
        self, buf: bytes, m: re.Match[bytes], out: list[bytes], mark: int
    ) -> tuple[int, int]:
        start, end = m.span()
        is_end = bool(m.group(1))
        name = m.group(2).lower()
        pre: list[bytes] = []
        self._before_tag(is_end, name, pre)
        new: bytes | None = None
        if (
            not is_end
            and (name == b"script" or name == b"img" or name == b"iframe")
            and self._granted
            and _DATA_CONSENT.search(buf, start, end) is not None
        ):
            tag = buf[start:end]
            new = _gate(tag, name, m.end(2) - start, self._granted)
        if pre or new is not None:
            out.append(buf[mark:start])
            out += pre
            out.append(buf[start:end] if new is None else new)
            mark = end
            self.changed = True
        if is_end:
            return end, mark
        return self._after_tag(buf, name, end, out, mark)

    def _overflow(self, buf: bytes, pos: int, out: list[bytes], mark: int) -> tuple[int, int]:
        """A tag longer than the tail cap: pass it through, follow it to its end."""
        n = len(buf)
        m = _TAG_OPEN.match(buf, pos)
        assert m is not None  # pos is "<" + letter or "</" + letter
        name = m.group(2).lower() if m.end() < n else b""
        is_end = bool(m.group(1))
        pre: list[bytes] = []
        self._before_tag(is_end, name, pre)
        if pre:
            out += (buf[mark:pos], *pre)
            mark = pos
            self.changed = True
        self._state = _TAG_CONT
        self._tag_name = b"" if is_end else name
        self._tag_sub = _T_NEUTRAL
        end, self._tag_sub = _scan_tag(buf, m.end(), _T_NEUTRAL)
        if end < 0:
            return n, mark
        # Not reached in practice (the full tag pattern failed), but stay consistent.
        self._state = _DATA
        return self._after_tag(buf, self._tag_name, end, out, mark)


# --------------------------------------------------------------------------------------
# ASGI plumbing
# --------------------------------------------------------------------------------------

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
    :func:`fix_headers` (without a ``Set-Cookie`` filter) makes of them."""
    if layout == LAYOUT_COMPLEX:
        return fix_headers(headers, content_length=length, body_changed=body_changed, extra=extra)
    out = list(headers)
    if layout == LAYOUT_NO_LENGTH:
        out.append((b"content-length", length))
    else:
        out[layout] = (out[layout][0], length)
    out.extend(extra)
    return out


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
    keep_set_cookie: Callable[[bytes, frozenset[str]], bool] | None = None,
    allowed: frozenset[str] = frozenset(),
) -> list[tuple[bytes, bytes]]:
    """Rebuild the header list of a rewritten body, in one pass: one correct
    ``Content-Length`` (in place of the first one) or none, validators dropped when the body
    changed, only the ``Set-Cookie`` values for which ``keep_set_cookie(value, allowed)``
    holds (all without it), ``extra`` appended.  Every other header keeps its name, value and position;
    ``Set-Cookie`` headers are never merged."""
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
        elif kind == H_SET_COOKIE:
            if keep_set_cookie is None or keep_set_cookie(value, allowed):
                out.append((name, value))
        elif kind != H_VALIDATOR or not body_changed:
            out.append((name, value))
    if length is not None:
        out.append((b"content-length", length))
    if extra:
        out.extend(extra)
    return out


_PENDING: Final = 0  # start message held back until the first body message
_STREAM: Final = 1  # start sent, body being rewritten
_PASS: Final = 2  # body passed through untouched (pathsend / zerocopysend)
_DONE: Final = 3

DocumentKey = tuple[bytes, bytes, bytes, bytes, frozenset[str]]
_INSERTS_MAX: Final = 16 << 10  # what DocumentCache keeps rewrites for, inserted in all


class DocumentCache:
    """Rewritten whole documents, so a page that many visitors are sent is tokenized once.

    The rewrite of a single-message body is a pure function of the body and of what is
    inserted (the head and body insertions and the granted categories); the cache is keyed
    on all of them, so a hit returns exactly what rewriting would.  Pages that differ per
    visitor simply miss.  Bounded: documents of at most ``max_document`` bytes, and at most
    ``max_bytes`` of documents and their rewrites in all (the oldest entries are dropped
    first).  Safe to share between threads (dict operations; a lost race only recomputes).
    """

    __slots__ = ("_entries", "_recent", "_size", "max_bytes", "max_document")

    def __init__(self, *, max_bytes: int = 8 << 20, max_document: int = 64 << 10) -> None:
        self.max_bytes = max_bytes
        self.max_document = max_document
        self._entries: dict[DocumentKey, tuple[bytes, bool, bytes]] = {}
        self._size = 0
        # Per set of insertions, the document last found: a page asked for again and again is
        # recognised by comparing its bytes, without hashing them. (At most 32 entries, which
        # may outlive their place in ``_entries``: at most 32 documents more than the budget.)
        self._recent: dict[
            tuple[bytes, bytes, bytes, frozenset[str]], tuple[bytes, tuple[bytes, bool, bytes]]
        ] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def rewrite(
        self,
        body: bytes,
        head_start: bytes,
        head_end: bytes,
        body_start: bytes,
        granted: frozenset[str],
    ) -> tuple[bytes, bool, bytes]:
        """What :func:`rewrite_document` returns for these arguments, from the cache when it
        holds it, else rewritten now and kept."""
        if len(head_start) + len(head_end) + len(body_start) > _INSERTS_MAX:
            # (a <noscript> form for a long page address, say): not worth keeping
            return _rewritten(body, head_start, head_end, body_start, granted)
        inserts = (head_start, head_end, body_start, granted)
        recent = self._recent.get(inserts)
        if recent is not None and recent[0] == body:
            return recent[1]
        key = (body, head_start, head_end, body_start, granted)
        hit = self._entries.get(key)
        if hit is None:
            hit = _rewritten(body, head_start, head_end, body_start, granted)
            self.put(key, hit)
        if len(self._recent) >= 32:
            self._recent.clear()
        self._recent[inserts] = (body, hit)
        return hit

    def put(self, key: DocumentKey, value: tuple[bytes, bool, bytes]) -> None:
        cost = len(key[0]) + len(value[0]) + 200
        if cost > self.max_bytes:
            return
        entries = self._entries
        while entries and self._size + cost > self.max_bytes:
            # Drop the oldest entry (dicts keep insertion order).
            try:
                old = next(iter(entries))
                gone = entries.pop(old)
            except (KeyError, RuntimeError, StopIteration):
                break
            self._size -= len(old[0]) + len(gone[0]) + 200
        if key not in entries:
            entries[key] = value
            self._size += cost


def rewrite_document(
    body: bytes,
    *,
    head_start: bytes,
    head_end: bytes,
    body_start: bytes,
    granted: frozenset[str],
    cache: DocumentCache | None = None,
) -> tuple[bytes, bool, bytes]:
    """A whole document rewritten (or taken from ``cache``): ``(new body, whether it differs
    from ``body``, its length as ``Content-Length`` bytes)``."""
    if cache is None or len(body) > cache.max_document:
        return _rewritten(body, head_start, head_end, body_start, granted)
    return cache.rewrite(body, head_start, head_end, body_start, granted)


def _rewritten(
    body: bytes, head_start: bytes, head_end: bytes, body_start: bytes, granted: frozenset[str]
) -> tuple[bytes, bool, bytes]:
    rewriter = HtmlRewriter(
        head_start=head_start, head_end=head_end, body_start=body_start, granted=granted
    )
    out = rewriter.rewrite(body)
    return out, rewriter.changed, str(len(out)).encode("ascii")


class HtmlResponder:
    """Wraps ``send`` for one HTML response; feed it the start message, then the rest.

    * The start message is held until the first body message.  If that message is also
      the last one, the body is rewritten at once (or taken from ``cache``) and
      ``Content-Length`` set to its new length; ``ETag`` and body digests are dropped only
      if the body really changed.
    * Otherwise the response is streamed: ``Content-Length`` is removed (the server then
      uses chunked encoding) and ``ETag``/digests are always dropped, since the body may
      change after the headers are gone.
    * ``http.response.pathsend`` / ``http.response.zerocopysend`` cannot be rewritten:
      the original start message is sent unchanged and the body passes through.
    * Any other message (trailers, extensions) is passed through in order.

    ``extra_headers`` are appended to the start message's headers when it is sent.
    """

    __slots__ = (
        "_body_start",
        "_cache",
        "_extra",
        "_granted",
        "_head_end",
        "_head_start",
        "_mode",
        "_rewriter",
        "_send",
        "_start",
    )

    def __init__(
        self,
        send: Send,
        *,
        head_start: bytes,
        head_end: bytes,
        body_start: bytes,
        granted: frozenset[str],
        cache: DocumentCache | None = None,
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self._send = send
        self._head_start = head_start
        self._head_end = head_end
        self._body_start = body_start
        self._granted = granted
        self._cache = cache
        self._extra = extra_headers
        self._rewriter: HtmlRewriter | None = None
        self._start: Message | None = None
        self._mode = _PENDING

    def _new_rewriter(self) -> HtmlRewriter:
        rewriter = self._rewriter = HtmlRewriter(
            head_start=self._head_start,
            head_end=self._head_end,
            body_start=self._body_start,
            granted=self._granted,
        )
        return rewriter

    async def _send_start(self, *, content_length: int | bytes | None, body_changed: bool) -> None:
        start = self._start
        assert start is not None
        headers = fix_headers(
            start.get("headers", ()),
            content_length=content_length,
            body_changed=body_changed,
            extra=self._extra,
        )
        start = dict(start)
        start["headers"] = headers
        await self._send(start)

    async def _send_original_start(self) -> None:
        start = self._start
        assert start is not None
        if self._extra:
            start = dict(start)
            start["headers"] = [*start.get("headers", ()), *self._extra]
        await self._send(start)

    async def __call__(self, message: Message) -> None:
        kind = message.get("type")
        mode = self._mode
        if kind == "http.response.start" and mode == _PENDING and self._start is None:
            self._start = message
            return
        if mode == _PENDING and self._start is None:
            await self._send(message)  # nothing to hold yet (e.g. a debug message)
            return
        if kind == "http.response.body" and mode in (_PENDING, _STREAM):
            await self._body(message)
            return
        if kind in ("http.response.pathsend", "http.response.zerocopysend"):
            if mode == _PENDING:
                await self._send_original_start()
            elif mode == _STREAM:
                assert self._rewriter is not None
                rest = self._rewriter.close()
                if rest:
                    await self._send(
                        {"type": "http.response.body", "body": rest, "more_body": True}
                    )
            self._mode = _PASS
            await self._send(message)
            return
        if mode == _PENDING:
            await self._send_start(content_length=None, body_changed=True)
            self._new_rewriter()
            self._mode = _STREAM
        await self._send(message)

    async def _body(self, message: Message) -> None:
        more = bool(message.get("more_body", False))
        if self._mode == _PENDING:
            if not more:
                out, changed, length = rewrite_document(
                    bytes(message.get("body", b"")),
                    head_start=self._head_start,
                    head_end=self._head_end,
                    body_start=self._body_start,
                    granted=self._granted,
                    cache=self._cache,
                )
                await self._send_start(content_length=length, body_changed=changed)
                self._mode = _DONE
                await self._send({**message, "body": out})
                return
            await self._send_start(content_length=None, body_changed=True)
            self._new_rewriter()
            self._mode = _STREAM
        rewriter = self._rewriter
        assert rewriter is not None
        out = rewriter.feed(bytes(message.get("body", b"")))
        if not more:
            out += rewriter.close()
            self._mode = _DONE
        elif not out:
            return  # everything held back; nothing worth a message
        await self._send({**message, "body": out})


# --------------------------------------------------------------------------------------
# Template helpers
# --------------------------------------------------------------------------------------

#: The Google Consent Mode v2 consent types.
CONSENT_MODE_TYPES: Final = (
    "ad_storage",
    "ad_user_data",
    "ad_personalization",
    "analytics_storage",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
)


def _attr(value: str) -> str:
    return _html.escape(value, quote=True)


def _js_json(value: object) -> str:
    """JSON that is safe inside an inline ``<script>``: no ``<``, ``>``, ``&``, and no
    U+2028/U+2029 (``ensure_ascii`` escapes those)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def banner_tags(prefix: str, *, nonce: str | None = None) -> str:
    """The stylesheet link and deferred script of the banner, for sites that place them
    themselves instead of relying on automatic injection."""
    p = prefix.rstrip("/")
    n = "" if nonce is None else f' nonce="{_attr(nonce)}"'
    return (
        f'<link rel="stylesheet" href="{_attr(p)}/banner.css"{n}>'
        f'<script src="{_attr(p)}/banner.js" defer data-consent-prefix="{_attr(p)}"{n}></script>'
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
    n = "" if nonce is None else f' nonce="{_attr(nonce)}"'
    return f"<script{n}>{code}</script>"

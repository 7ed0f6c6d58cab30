"""The byte-streaming HTML tokenizer: insertions and ``data-consent`` gating (no ASGI).

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

import re
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["DEFAULT_MAX_TAIL", "HtmlRewriter"]

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

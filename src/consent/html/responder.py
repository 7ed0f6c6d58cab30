"""Rewriting one HTML response on its way out: the ``send`` wrapper and the document cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from starlette.types import Message, Send

from .headers import add_headers, fix_headers
from .tokenizer import HtmlRewriter

__all__ = ["DocumentCache", "DocumentKey", "HtmlResponder", "rewrite_document"]


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
            start["headers"] = add_headers(list(start.get("headers", ())), self._extra)
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

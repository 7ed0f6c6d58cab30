"""What the consent endpoints answer with: JSON rendering, client errors, banner assets.

Also the small readings of a request that several endpoints share (the language, whether
HTML is wanted, the site's address).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from json.encoder import encode_basestring as _json_str
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from ..i18n import available_languages, pick_language
from ..policy import Policy
from ..receipts import Receipt, StoredReceipt

__all__ = [
    "NO_STORE",
    "BadRequest",
    "language_of",
    "load_assets",
    "not_allowed",
    "site_url",
    "stored_receipt_json",
    "wants_html",
    "word_assets",
]

NO_STORE = {"Cache-Control": "no-store", "Vary": "Cookie"}
# Answers chosen by the Accept header (HTML for a browser, JSON otherwise) say so to caches.
NEGOTIATED = {"Vary": "Accept"}
NO_STORE_NEGOTIATED = {**NO_STORE, "Vary": "Cookie, Accept"}

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
            return JSONResponse(body, status_code=self.status, headers=NO_STORE)
        except UnicodeEncodeError:  # a lone surrogate from the path, echoed in the detail
            content = json.dumps(body, separators=(",", ":")).encode()  # escaped as \udcff
            return Response(content, self.status, NO_STORE, "application/json")


def load_assets() -> dict[str, tuple[bytes, str, str]]:
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
        # (the words are the site's: see word_assets)
        if suffix in types and item.is_file() and not name.startswith("i18n/"):
            assets["/" + name] = _asset(item.read_bytes(), types[suffix])
    return assets


def _asset(body: bytes, media_type: str) -> tuple[bytes, str, str]:
    return body, media_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def word_assets(policy: Policy) -> dict[str, tuple[bytes, str, str]]:
    """``/i18n/<lang>.json`` for each language the banner offers and each bundled one (a page
    in a language the site does not offer still finds its file, then takes the state's
    language): the bundled words with the site's over them."""
    return {
        f"/i18n/{lang}.json": _asset(
            json.dumps(policy.ui_strings(lang), ensure_ascii=False, indent=1).encode("utf-8"),
            "application/json",
        )
        for lang in sorted(policy.offered_languages | available_languages())
    }


def not_allowed(allowed: tuple[str, ...]) -> Response:
    """405, naming the methods the path answers."""
    return JSONResponse(
        {"error": "method not allowed", "detail": {"allowed": list(allowed)}},
        status_code=405,
        headers={"Allow": ", ".join(allowed)},
    )


def site_url(scope: Scope) -> str | None:
    """``scheme://host`` of the request (the ``Host`` header), or None without one."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            if host and not any(c in host for c in "/\\@?# "):
                return f"{scope.get('scheme', 'http')}://{host}/"
            return None
    return None


def wants_html(headers: Headers) -> bool:
    accept = headers.get("accept", "")
    return "text/html" in accept and accept.find("text/html") < (
        accept.find("application/json") if "application/json" in accept else len(accept) + 1
    )


def language_of(
    scope: Scope,
    default: str,
    known: frozenset[str] = frozenset(),
    offered: frozenset[str] | None = None,
) -> str:
    """The language to render in: ``?lang=``, then ``Accept-Language``, then the site default
    (see :func:`~consent.i18n.pick_language`)."""
    accept = None
    for name, value in scope.get("headers", ()):
        if name == b"accept-language":
            accept = value.decode("latin-1")
            break
    return pick_language(scope.get("query_string", b""), accept, default, known, offered)

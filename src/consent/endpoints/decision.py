"""A visitor's decision as it arrives: from where, how big, and what it grants.

Each check raises :class:`~consent.endpoints.responses.BadRequest` naming the problem (403 for
another site's page, 400/413/415/422 for the body); recording it is the routes' job.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import Headers
from starlette.types import Receive, Scope

from ..policy import Policy
from .responses import BadRequest

__all__ = [
    "MAX_BODY",
    "check_origin",
    "page_path",
    "parse_decision",
    "read_body",
    "referer_path",
    "safe_next",
]

MAX_BODY = 16 * 1024


def check_origin(scope: Scope, headers: Headers, trusted_origins: Collection[str]) -> None:
    """Refuse cross-site decisions: a hostile page must not grant consent for a visitor."""
    site = headers.get("sec-fetch-site")
    if site == "same-origin":
        return
    origin = headers.get("origin")
    if origin and origin != "null":
        origin = origin.rstrip("/").lower()
        if origin in trusted_origins:
            return
        host = headers.get("host", "").lower()
        parts = urlsplit(origin)
        # A plain-http page may not decide for the https site (a network attacker could
        # write one). The other way round is allowed: behind a proxy that ends TLS, the
        # request may arrive as http from an https page.
        downgraded = parts.scheme == "http" and scope.get("scheme") == "https"
        if host and parts.scheme in ("http", "https") and parts.netloc == host and not downgraded:
            return
    raise BadRequest(
        403,
        "cross-site request refused",
        "a consent decision is accepted only from the site's own pages (same-origin "
        "Sec-Fetch-Site or a matching Origin header)",
    )


async def read_body(receive: Receive, headers: Headers) -> bytes:
    """The request body, refused beyond :data:`MAX_BODY` (declared or sent)."""
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


def parse_decision(
    policy: Policy, content_type: str, body: bytes
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
            accepted = set(policy.optional)
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
            raise BadRequest(422, "'refuse' must be a list of category keys", {"field": "refuse"})
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
            raise BadRequest(422, '\'accept\' cannot be both "all" and "none"', {"field": "accept"})
        if "all" in values:
            accepted = set(policy.optional)
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
    unknown = sorted((accepted | set(refuse)) - set(policy.categories))
    if unknown:
        raise BadRequest(
            422, f"unknown category: {', '.join(map(repr, unknown))}", {"unknown": unknown}
        )
    necessary_refused = sorted(set(refuse) & policy.necessary)
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
    return accepted - policy.necessary, extra, is_form


def referer_path(headers: Headers) -> str | None:
    ref = headers.get("referer")
    if not ref:
        return None
    parts = urlsplit(ref)
    return parts.path or "/"


def page_path(value: str | None) -> str | None:
    """Where a choice was made, as a path of this site: without its query string or fragment
    (a search, an e-mail address in a link: personal data a receipt need not keep), and
    nothing from another site."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    return value.split("?", 1)[0].split("#", 1)[0][:2000] or None


def safe_next(value: str | None, headers: Headers) -> str:
    """A same-origin redirect target: a path starting with a single '/', no CR/LF or backslash."""
    candidate = value if value is not None else (referer_path(headers) or "/")
    if (
        not candidate.startswith("/")
        or candidate.startswith("//")
        or any(c in candidate for c in "\\\r\n\t")
        or len(candidate) > 2000
    ):
        return "/"
    return candidate

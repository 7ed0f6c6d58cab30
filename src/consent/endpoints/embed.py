"""A "Load this once" request as it arrives: which category, which embedded item, which page.

Consent to load one embedded item on one page view (``POST <prefix>/once``, a JSON object with
``category``, ``src`` and optionally ``page``). Each check raises
:class:`~consent.endpoints.responses.BadRequest` naming the problem; recording the receipt is
the routes' job.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from ..policy import Policy
from ..state import ConsentState
from .decision import page_path, referer_path
from .responses import BadRequest

__all__ = ["Once", "embed_host", "parse_once"]


class Once(NamedTuple):
    """A checked "Load this once": the category, the host the item loads from, the page."""

    category: str
    host: str
    page: str | None


def parse_once(policy: Policy, state: ConsentState, headers: Headers, body: bytes) -> Once:
    """The request's body checked: JSON, a non-necessary category the browser's GPC signal
    does not refuse, an http(s) address or a path of the site's own."""
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise BadRequest(415, "unsupported content type", {"expected": ["application/json"]})
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(400, "malformed JSON body", str(exc)) from None
    if not isinstance(data, dict):
        raise BadRequest(422, "the body must be an object", {"field": None})
    key, src, page = data.get("category"), data.get("src"), data.get("page")
    if not isinstance(key, str) or key not in policy.categories:
        raise BadRequest(422, "'category' must name a category", {"field": "category"})
    if key in policy.necessary:
        raise BadRequest(422, f"{key!r} is necessary and needs no consent", {"field": "category"})
    if state.gpc and key in policy.sale_or_share:
        raise BadRequest(
            409,
            f"{key!r} is refused by the browser's Global Privacy Control signal",
            {"field": "category"},
        )
    host = embed_host(src, headers)
    if host is None:
        raise BadRequest(
            422, "'src' must be the embedded item's http(s) address or path", {"field": "src"}
        )
    where = page_path(page if isinstance(page, str) else None) or page_path(referer_path(headers))
    return Once(key, host, where)


def embed_host(src: Any, headers: Headers) -> str | None:
    """The host an embedded item loads from: that of an http(s) address, the site's own for a
    path; None for anything else."""
    if not isinstance(src, str) or not src or len(src) > 2048:
        return None
    if src.startswith("/") and not src.startswith("//"):
        return headers.get("host", "").lower()[:255] or "(this site)"
    try:
        parts = urlsplit(src)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname

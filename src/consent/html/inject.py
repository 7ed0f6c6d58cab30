"""What the middleware inserts into pages: the banner's tags and Google Consent Mode snippets."""

from __future__ import annotations

import html as _html
import json
from collections.abc import Sequence
from typing import Final

__all__ = ["CONSENT_MODE_TYPES", "banner_tags", "consent_mode_default", "script_tag"]

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

"""The scanned site: its address, its consent endpoint and banner, and the policy to check it
against (a policy directory, or the site's own declaration rebuilt as a :class:`Policy`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ..policy import Category, Policy, SiteConfig

__all__ = ["DeclarationError", "Site", "policy_from_declaration", "same_site"]


class DeclarationError(Exception):
    """The site's declaration is not one the middleware writes."""


@dataclass(slots=True)
class Site:
    """What the scanner learnt about the site before the decisions."""

    #: the start URL, after redirects
    url: str
    #: where the consent endpoint answers (a path, such as ``/_consent``), or ``None``
    prefix: str | None
    #: the page carries the middleware's banner
    banner: bool
    #: the site's category keys, in display order, and which are necessary / sale_or_share
    categories: list[str]
    necessary: frozenset[str]
    sale_or_share: frozenset[str]

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def optional(self) -> list[str]:
        return [k for k in self.categories if k not in self.necessary]


def same_site(host: str, site_host: str) -> bool:
    """Whether ``host`` (or a cookie's domain) belongs to the site at ``site_host``: the same
    host, the site's domain without ``www.`` or a subdomain of it, or a parent domain of the
    site's host. (Without the public-suffix list, ``a.example.com`` and ``b.example.com`` are
    two sites unless one is the other's parent.) An IP address is only itself."""
    host = host.lstrip(".").lower()
    site = site_host.lower()
    if host == site:
        return True
    try:
        ipaddress.ip_address(site.strip("[]"))
        return False
    except ValueError:
        pass
    base = site.removeprefix("www.")
    return host == base or host.endswith("." + base) or ("." in host and site.endswith("." + host))


def policy_from_declaration(data: Mapping[str, Any]) -> Policy:
    """The policy a site declares at ``<prefix>/declaration`` (JSON), as a :class:`Policy` the
    middleware's classifier can use. Raises :class:`DeclarationError` naming what is wrong."""
    try:
        site = SiteConfig.model_validate(
            {
                "controller": data["controller"],
                "policy_url": data["policy_url"],
                "jurisdiction": data.get("jurisdiction", "EU"),
                "undeclared": data.get("undeclared", "block"),
            }
        )
        categories: dict[str, Category] = {}
        for order, cat in enumerate(data["categories"]):
            key = cat["key"]
            categories[key] = Category.model_validate(
                {
                    "key": key,
                    "title": cat["title"],
                    "description": cat["description"],
                    "necessary": cat.get("necessary", False),
                    "sale_or_share": cat.get("sale_or_share", False),
                    "order": order,
                    "consent_mode": cat.get("consent_mode", []),
                    "third_parties": cat.get("third_parties", []),
                    "cookies": [_rule(c) for c in cat.get("cookies", [])],
                }
            )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DeclarationError(f"{where}: {first['msg']}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise DeclarationError(f"missing or malformed field {exc}") from None
    if not categories:
        raise DeclarationError("no categories")
    return Policy(site=site, categories=categories)


def _rule(cookie: Mapping[str, Any]) -> dict[str, Any]:
    kind = cookie.get("match", "name")
    if kind not in ("name", "pattern", "regex"):
        raise DeclarationError(f"unknown match {kind!r} of cookie {cookie.get('name')!r}")
    domains = cookie.get("domain") or None
    return {
        kind: cookie["name"],
        "vendor": cookie.get("vendor", ""),
        "purpose": cookie.get("purpose", ""),
        "duration": cookie.get("duration", ""),
        "domain": domains,
        "path": cookie.get("path", "/"),
        "third_party": cookie.get("third_party", False),
    }

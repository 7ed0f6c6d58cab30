"""The cookie policy: ``site.toml`` plus one TOML file per category, read and validated once, at
start-up.

* :mod:`consent.policy.models`: what the files may hold (pydantic models of the site settings,
  the categories and their cookie rules);
* :mod:`consent.policy.loader`: a directory read into a :class:`Policy` (:func:`load_policy`),
  the checks across files, and the revision hash.

Every name is importable from ``consent.policy`` itself.
"""

from __future__ import annotations

from .loader import Policy, PolicyError, load_policy, revision_of
from .models import (
    CATEGORY_KEY,
    CONSENT_MODE_TYPES,
    COOKIE_GLOB,
    COOKIE_NAME,
    BannerSettings,
    Category,
    CategoryText,
    ConsentCookieSettings,
    Controller,
    CookieRule,
    CookieText,
    GpcSettings,
    LanguageCode,
    ReceiptSettings,
    SiteConfig,
    glob_to_regex,
)

__all__ = [
    "CATEGORY_KEY",
    "CONSENT_MODE_TYPES",
    "COOKIE_GLOB",
    "COOKIE_NAME",
    "BannerSettings",
    "Category",
    "CategoryText",
    "ConsentCookieSettings",
    "Controller",
    "CookieRule",
    "CookieText",
    "GpcSettings",
    "LanguageCode",
    "Policy",
    "PolicyError",
    "ReceiptSettings",
    "SiteConfig",
    "glob_to_regex",
    "load_policy",
    "revision_of",
]

"""The catalog's category keys as a site's own category names.

The catalog speaks of ``necessary``, ``analytics``, ``marketing`` and ``preferences`` (see
:data:`~consent.catalog.database.CATEGORY_KEYS`). A site may call its categories otherwise; its
category for a catalog key is, in this order:

1. for ``necessary``: its category with ``necessary = true`` (the one keyed ``necessary`` when
   there are several);
2. a category, not necessary, keyed by the catalog key or one of its :data:`SYNONYMS`, in the
   order listed;
3. a category, not necessary, whose ``consent_mode`` holds a Google Consent Mode type of that
   purpose (:data:`CONSENT_MODE_TYPES`);
4. none: the site has no such category (a draft rule then names a file to create).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..policy import Policy

__all__ = ["CONSENT_MODE_TYPES", "SYNONYMS", "site_category"]

#: Category keys taken to mean the catalog's key, in order of preference.
SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "necessary": ("necessary", "essential", "strictly-necessary", "strictly_necessary", "required"),
    "analytics": ("analytics", "statistics", "stats", "performance", "measurement"),
    "marketing": ("marketing", "advertising", "ads", "targeting", "tracking"),
    "preferences": (
        "preferences",
        "preference",
        "functional",
        "functionality",
        "personalization",
        "personalisation",
    ),
}

#: Google Consent Mode types that say what a category is for.
CONSENT_MODE_TYPES: Mapping[str, tuple[str, ...]] = {
    "analytics": ("analytics_storage",),
    "marketing": ("ad_storage", "ad_user_data", "ad_personalization"),
    "preferences": ("functionality_storage", "personalization_storage"),
}


def site_category(policy: Policy, key: str) -> str | None:
    """The site's category key for the catalog's ``key``, or ``None`` when it has none."""
    categories = policy.categories
    if key == "necessary":
        necessary = [k for k, _ in policy.ordered() if categories[k].necessary]
        if not necessary:
            return None
        return "necessary" if "necessary" in necessary else necessary[0]
    optional = [k for k, _ in policy.ordered() if not categories[k].necessary]
    for name in SYNONYMS.get(key, (key,)):
        if name in optional:
            return name
    types = set(CONSENT_MODE_TYPES.get(key, ()))
    for name in optional:
        if types.intersection(categories[name].consent_mode):
            return name
    return None

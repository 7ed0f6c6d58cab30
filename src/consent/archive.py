"""The policy archive's document (everything visitors were shown under a policy revision), and
writing it to the receipt store before the first receipt under that revision.

For a revision, the store keeps an **archived policy**: one canonical JSON document holding
what the revision hash covers, as written (:meth:`consent.policy.Policy.revision_document`:
controller, policy URL, the site's notice and its translations, every category's texts,
translations, flags and cookie rules), the display order and the site's language, and the
banner's wording in every language the site serves (the notice as shown, button labels and
headings, the bundled translations included). It is addressed by the SHA-256 of its text (its
**digest**) and written once, with a signed ``policy`` record in the receipt log naming its
revision and digest, before the first receipt under the revision is appended. The first such
record says that archiving began (``"began": true``): every receipt after it must name an
archived revision.

The banner's bundled wording does not change the revision (visitors are not asked again when
a button label changes), but a new wording is archived as a new document under the same
revision: the archive keeps every version of what was shown.

This module makes the document and writes it (the request path calls :class:`Archiver` before a
decision's receipt is appended); :mod:`consent.audit.archive` checks the archive and carries it
in exports, :mod:`consent.audit.revisions` reads it back for ``consent revisions``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio

from .i18n import available_languages, ui_strings
from .policy import Category, Policy, SiteConfig, revision_of
from .store.base import ArchivedPolicy, ReceiptStore

__all__ = [
    "FORMAT",
    "Archiver",
    "archive_entry",
    "canonical",
    "digest_of",
    "document_of",
    "entry_problem",
    "policy_document",
    "policy_from_document",
]

logger = logging.getLogger("consent.archive")

FORMAT = "asgi-consent/policy/1"
"""The ``format`` of an archived policy document."""


# --------------------------------------------------------------------------- the document


def policy_document(policy: Policy) -> dict[str, Any]:
    """Everything a visitor is shown under ``policy``'s revision (see the module's text)."""
    site = policy.site
    languages = sorted(available_languages() | policy.languages)
    banner = {}
    for language in languages:
        strings = ui_strings(language)
        banner[language] = {
            # the notice as the banner shows it: the site's own, else the bundled default
            "notice": site.notice_for(language) or strings["notice"],
            "strings": dict(strings),
        }
    return {
        "format": FORMAT,
        "revision": policy.revision,
        "language": site.language,
        "jurisdiction": site.jurisdiction,
        "order": [key for key, _ in policy.ordered()],
        "policy": policy.revision_document(),
        "banner": banner,
    }


def canonical(document: Mapping[str, Any]) -> str:
    """The text of an archived document: JSON with sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(body: str) -> str:
    """The address of an archived text: SHA-256 of its UTF-8 bytes, in hex."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def archive_entry(policy: Policy, now: int | None = None) -> ArchivedPolicy:
    """The archived policy of ``policy``, ready for :meth:`ReceiptStore.archive_policy`."""
    body = canonical(policy_document(policy))
    return ArchivedPolicy(
        digest=digest_of(body),
        revision=policy.revision,
        timestamp=int(time.time()) if now is None else now,
        body=body,
    )


def policy_from_document(document: Mapping[str, Any]) -> Policy:
    """The :class:`Policy` an archived document was made from (its revision is the same);
    raises ValueError when the document is not one."""
    try:
        doc = document["policy"]
        order = {key: n for n, key in enumerate(document.get("order", []))}
        site = SiteConfig.model_validate(
            {
                "controller": doc["controller"],
                "policy_url": doc["policy_url"],
                "undeclared": doc["undeclared"],
                "language": document.get("language", "en"),
                "jurisdiction": document.get("jurisdiction", "EU"),
                "banner": {
                    "notice": doc["notice"],
                    "notice_translations": doc["notice_translations"],
                },
            }
        )
        categories = {
            key: Category.model_validate({**cat, "order": order.get(key, 100)})
            for key, cat in doc["categories"].items()
        }
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"not an archived policy document: {exc}") from None
    return Policy(site=site, categories=categories)


def document_of(entry: ArchivedPolicy) -> dict[str, Any] | None:
    """The archived document ``entry`` holds, or None when its text is not one."""
    try:
        data = json.loads(entry.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def entry_problem(entry: ArchivedPolicy) -> str | None:
    """What is wrong with an archived policy's text, or None: it must hash to its digest, be
    an archived document, and its policy part must hash to its revision."""
    if digest_of(entry.body) != entry.digest:
        return "its text does not hash to the digest the store records (text edited)"
    document = document_of(entry)
    if document is None:
        return "its text is not an archived policy document"
    if document.get("revision") != entry.revision:
        return "the revision it names differs from the store's"
    policy = document.get("policy")
    if not isinstance(policy, dict) or revision_of(policy) != entry.revision:
        return "its policy texts do not hash to its revision (texts edited)"
    return None


# --------------------------------------------------------------------------- writing


class Archiver:
    """Archives a policy in a store once per process, before its first receipt there.

    The store writes the archived text and its signed record in one transaction, only when it
    does not hold that text yet, so every process of a site may call it.
    """

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._done: set[int] = set()  # id() of the stores holding it
        self._lock = anyio.Lock()

    async def ensure(self, store: ReceiptStore) -> None:
        """Archive the policy in ``store`` unless done already (raises StoreUnavailable)."""
        if id(store) in self._done:
            return
        archive = getattr(store, "archive_policy", None)
        if archive is None:  # a store of the application's own without an archive
            logger.warning(
                "receipt store %r keeps no policy archive: receipts name revision %s, whose "
                "texts are not kept",
                store,
                self._policy.short_revision,
            )
            self._done.add(id(store))
            return
        async with self._lock:
            if id(store) in self._done:
                return
            entry = archive_entry(self._policy)
            if await archive(entry):
                logger.info(
                    "policy revision %s archived in the receipt store (digest %s)",
                    entry.revision[:16],
                    entry.digest[:16],
                )
            self._done.add(id(store))

"""Consent receipts as ISO/IEC TS 27560 consent records in the W3C Data Privacy Vocabulary
(DPV), serialised as JSON-LD: one record per receipt, with the DPV consent status of each
purpose (category) the visitor was asked about.

The terms are those of DPV 2.2 (https://w3id.org/dpv/2.2, namespace ``https://w3id.org/dpv#``);
:data:`TERMS` lists every DPV term the records use, and the tests check each against the
vocabulary's published term list.

Status per purpose, from the receipt's event and the visitor's previous decision (when known):

* ``given`` (first decision): granted -> ``dpv:ConsentGiven``, else ``dpv:ConsentRefused``;
* ``refused``: every purpose ``dpv:ConsentRefused``;
* ``updated``: granted and granted before -> ``dpv:RenewedConsentGiven``; granted and not
  granted before -> ``dpv:ConsentGiven``; refused and granted before -> ``dpv:ConsentWithdrawn``;
  refused and not granted before -> ``dpv:ConsentRefused``. With no previous decision known,
  granted -> ``dpv:RenewedConsentGiven`` and refused -> ``dpv:ConsentRefused``;
* ``withdrawn``: refused and granted before -> ``dpv:ConsentWithdrawn`` (every refused purpose
  when the previous decision is not known), refused and not granted before -> ``ConsentRefused``.

``dpv:ConsentExpired`` and ``dpv:ConsentInvalidated`` are never recorded (the visitor made no
decision): :func:`record` derives them when asked, for a receipt whose consent cookie lifetime
has passed or whose policy revision is no longer the site's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin

from .receipts import Receipt, StoredReceipt, format_time

__all__ = [
    "CONTEXT",
    "DPV",
    "DPV_VERSION",
    "TERMS",
    "document",
    "purpose_statuses",
    "record",
    "with_context",
]

DPV = "https://w3id.org/dpv#"
DPV_VERSION = "https://w3id.org/dpv/2.2"
"""The DPV release whose terms the records use."""

ISO_27560 = "ISO/IEC TS 27560:2023"

CONTEXT: dict[str, Any] = {
    "dpv": DPV,
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

TERMS: frozenset[str] = frozenset(
    {
        # classes
        "ConsentRecord",
        "Consent",
        "DataSubject",
        "DataController",
        "ThirdParty",
        "Purpose",
        "ConsentNotice",
        "ExplicitlyExpressedConsent",
        # statuses
        "ConsentGiven",
        "ConsentRefused",
        "ConsentWithdrawn",
        "RenewedConsentGiven",
        "ConsentExpired",
        "ConsentInvalidated",
        # properties
        "hasConsentStatus",
        "hasDataSubject",
        "hasDataController",
        "hasPurpose",
        "hasRecipient",
        "hasIdentifier",
        "hasNotice",
        "hasJurisdiction",
        "hasName",
        "hasContact",
        "hasAddress",
        "isIndicatedBy",
        "isIndicatedAtTime",
        "hasIndicationMethod",
    }
)

_METHODS = {
    "banner": "cookie banner",
    "form": "consent form (HTML, no script)",
    "api": "consent API (JSON)",
    "gpc": "Global Privacy Control signal (Sec-GPC: 1)",
}


def _term(name: str) -> dict[str, str]:
    assert name in TERMS, name
    return {"@id": f"dpv:{name}"}


def purpose_statuses(receipt: Receipt, previous: Iterable[str] | None) -> dict[str, str]:
    """The DPV consent status (a term name) of each non-necessary purpose of ``receipt``;
    ``previous``: the categories the visitor's previous receipt granted (None: not known, or
    no previous receipt)."""
    before = None if previous is None else set(previous)
    granted = set(receipt.granted)
    out: dict[str, str] = {}
    keys = [p.key for p in receipt.purposes if not p.necessary] or sorted(
        granted | set(receipt.refused)
    )
    for key in keys:
        on = key in granted
        was = before is not None and key in before
        if receipt.event == "given":
            status = "ConsentGiven" if on else "ConsentRefused"
        elif receipt.event == "refused":
            status = "ConsentRefused"
        elif on:
            status = "RenewedConsentGiven" if before is None or was else "ConsentGiven"
        elif was or (before is None and receipt.event == "withdrawn"):
            status = "ConsentWithdrawn"
        else:
            status = "ConsentRefused"
        out[key] = status
    return out


def record(
    stored: StoredReceipt | Receipt,
    *,
    previous: Iterable[str] | None = None,
    base_url: str | None = None,
    now: int | None = None,
    lifetime: int | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """The receipt as a DPV consent record (a JSON-LD node, without ``@context``).

    ``base_url`` makes a policy URL that is a path absolute. Derived statuses, when asked:
    with ``now`` and ``lifetime`` (seconds the consent cookie lasts), a purpose whose consent
    was given and has outlived it also has ``dpv:ConsentExpired``; with ``revision`` (the
    site's current policy revision), a receipt under another revision has
    ``dpv:ConsentInvalidated`` for its given purposes (the visitor is asked again).
    """
    receipt = stored.receipt if isinstance(stored, StoredReceipt) else stored
    statuses = purpose_statuses(receipt, previous)
    expired = now is not None and lifetime is not None and now - receipt.timestamp > lifetime
    invalidated = revision is not None and receipt.revision != revision
    subject_node = {
        "@id": f"urn:consent-subject:{receipt.subject_id}",
        "@type": "dpv:DataSubject",
        "dpv:hasIdentifier": receipt.subject_id,
    }
    controller = receipt.controller
    controller_node: dict[str, Any] = {
        "@type": "dpv:DataController",
        "dpv:hasName": controller.name,
        "dpv:hasContact": f"mailto:{controller.email}",
    }
    if controller.address:
        controller_node["dpv:hasAddress"] = controller.address
    if controller.url:
        controller_node["@id"] = controller.url
    notice = urljoin(base_url, receipt.policy_url) if base_url else receipt.policy_url
    time = {"@value": format_time(receipt.timestamp), "@type": "xsd:dateTime"}
    parts: list[dict[str, Any]] = []
    for purpose in receipt.purposes:
        status = statuses.get(purpose.key)
        if status is None:
            continue  # necessary: not based on consent
        found = [_term(status)]
        if status in ("ConsentGiven", "RenewedConsentGiven"):
            if expired:
                found.append(_term("ConsentExpired"))
            if invalidated:
                found.append(_term("ConsentInvalidated"))
        purpose_node: dict[str, Any] = {
            "@type": "dpv:Purpose",
            "dct:identifier": purpose.key,
            "dct:title": {"@value": purpose.title, "@language": receipt.language},
        }
        if purpose.third_parties:
            purpose_node["dpv:hasRecipient"] = [
                {"@type": "dpv:ThirdParty", "dpv:hasName": name} for name in purpose.third_parties
            ]
        parts.append(
            {
                "@type": ["dpv:Consent", "dpv:ExplicitlyExpressedConsent"],
                "dpv:hasPurpose": purpose_node,
                "dpv:hasConsentStatus": found[0] if len(found) == 1 else found,
            }
        )
    return {
        "@id": f"urn:uuid:{receipt.receipt_id}",
        "@type": "dpv:ConsentRecord",
        "dct:conformsTo": ISO_27560,
        "dct:source": DPV_VERSION,
        "dpv:hasIdentifier": receipt.receipt_id,
        "dct:created": time,
        "dct:description": f"consent receipt: {receipt.event}",
        "dpv:hasDataSubject": subject_node,
        "dpv:isIndicatedBy": {"@id": subject_node["@id"]},
        "dpv:isIndicatedAtTime": time,
        "dpv:hasIndicationMethod": _METHODS.get(receipt.method, receipt.method),
        "dpv:hasDataController": controller_node,
        "dpv:hasJurisdiction": receipt.jurisdiction,
        "dpv:hasNotice": {
            "@id": notice,
            "@type": "dpv:ConsentNotice",
            "dct:hasVersion": receipt.revision,
        },
        "dct:hasPart": parts,
    }


def document(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON-LD document of consent records (``@graph``), with the context."""
    return {"@context": CONTEXT, "@graph": records}


def with_context(node: Mapping[str, Any]) -> dict[str, Any]:
    """One record as a JSON-LD document of its own (a line of ``consent export --format dpv``)."""
    return {"@context": CONTEXT, **node}

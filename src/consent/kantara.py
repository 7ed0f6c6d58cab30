"""A consent receipt as a Kantara Initiative Consent Receipt (KI-CR-v1.1.0) JSON document."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from .receipts import KANTARA_VERSION, Receipt, StoredReceipt

__all__ = ["to_kantara"]


_COLLECTION_METHODS: dict[str, str] = {
    "banner": "Website cookie banner",
    "form": "Website consent form (HTML, no script)",
    "api": "Website consent API (JSON)",
    "gpc": "Global Privacy Control signal (Sec-GPC: 1)",
    "embed": "Website placeholder of embedded content",
}

_TERMINATION = (
    "Until the visitor withdraws or changes this choice, the consent cookie expires, "
    "or the cookie policy revision changes"
)
_TERMINATION_ONCE = "After one load of the embedded item on one page view"


def to_kantara(stored: StoredReceipt | Receipt, *, base_url: str | None = None) -> dict[str, Any]:
    """The receipt as a Kantara Initiative Consent Receipt (KI-CR-v1.1.0) JSON document.

    ``base_url`` (the site's address, ``https://www.example.org``) makes a policy URL that is
    a path (``/cookie-policy``) absolute, so that the receipt can be read away from the site.

    The service is the site; its purposes are the categories the visitor's choice covers
    (necessary categories as primary purposes, plus every granted category). Refused
    categories are not purposes of a consent receipt; they remain in the native receipt's
    ``refused`` field. No ``publicKey`` is given: receipts carry a symmetric signature.
    """
    receipt = stored.receipt if isinstance(stored, StoredReceipt) else stored
    controller = receipt.controller
    address: dict[str, str] = {}
    if controller.address:
        address["streetAddress"] = controller.address
    pii_controller: dict[str, Any] = {
        "piiController": controller.name,
        "contact": controller.contact or controller.email,
        "address": address,
        "email": controller.email,
        "phone": controller.phone or "",
    }
    if controller.url:
        pii_controller["piiControllerUrl"] = controller.url

    purposes: list[dict[str, Any]] = []
    for purpose in receipt.purposes:
        if not (purpose.granted or purpose.necessary):
            continue
        entry: dict[str, Any] = {
            "purpose": purpose.title,
            "purposeCategory": [purpose.key],
            "consentType": "EXPLICIT",
            "piiCategory": ["Online identifiers (cookies and similar technologies)"],
            "primaryPurpose": purpose.necessary,
            "termination": _TERMINATION_ONCE if receipt.event == "once" else _TERMINATION,
            "thirdPartyDisclosure": bool(purpose.third_parties),
        }
        if purpose.third_parties:
            entry["thirdPartyName"] = ", ".join(purpose.third_parties)
        purposes.append(entry)

    return {
        "version": KANTARA_VERSION,
        "jurisdiction": receipt.jurisdiction,
        "consentTimestamp": receipt.timestamp,
        "collectionMethod": _COLLECTION_METHODS[receipt.method],
        "consentReceiptID": receipt.receipt_id,
        "language": receipt.language,
        "piiPrincipalId": receipt.subject_id,
        "piiControllers": [pii_controller],
        "policyUrl": urljoin(base_url, receipt.policy_url) if base_url else receipt.policy_url,
        "services": [{"service": controller.url or controller.name, "purposes": purposes}],
        "sensitive": False,
        "spiCat": [],
    }

"""The consent-receipt log after the fact: export, verify, purge, and incidents recorded in it.

Verification recomputes everything a stored row claims: the signature over its body, its
keyed link (its seq and its place after the previous row), that its indexed columns match the
signed body, and, for a store, that the log ends where the signed chain head says it ends and
starts where the signed purge checkpoint says it starts. It reports every finding, and the
incident markers with the findings each of them covers.

One module per job (time arguments are :mod:`consent.times`'s): :mod:`.lines` (the export formats),
:mod:`.export` (also as W3C DPV consent records), :mod:`.subject` (one visitor's receipts for an
access request, with a signed statement), :mod:`.verify` (with :mod:`.chain`, :mod:`.heads` and
:mod:`.findings`), :mod:`.archive` (the policy archive's checks, and its lines in an export),
:mod:`.revisions` (the revisions a store knows, for ``consent revisions``), :mod:`.incident`,
:mod:`.purge`, and :mod:`.parallel` (a large log shared with a second process). The ``consent``
command's handlers live in :mod:`consent.cli.audit` and :mod:`consent.cli.revisions`.
"""

from __future__ import annotations

from ..times import parse_time
from .export import export, export_dpv
from .findings import MAX_LISTED, Finding, Incident, VerifyResult
from .heads import parse_head
from .incident import NothingToRecord, record_incident
from .lines import CSV_COLUMNS, EVENTS
from .purge import purge, retention_cutoff
from .subject import export_subject
from .verify import verify_file, verify_store

__all__ = [
    "CSV_COLUMNS",
    "EVENTS",
    "MAX_LISTED",
    "Finding",
    "Incident",
    "NothingToRecord",
    "VerifyResult",
    "export",
    "export_dpv",
    "export_subject",
    "parse_head",
    "parse_time",
    "purge",
    "record_incident",
    "retention_cutoff",
    "verify_file",
    "verify_store",
]

"""``consent revisions``: the policy revisions a receipt store knows, their texts and changes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..audit.revisions import (
    Revision,
    RevisionNotFound,
    diff_documents,
    documents,
    find_revision,
    revisions,
    show_markdown,
)
from ..receipts import format_time
from ..store import StoreUnavailable, open_store
from .codes import EXIT_FINDING, EXIT_OK, EXIT_USAGE

__all__ = ["cmd_revisions", "register"]


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"consent: error: {message}", file=sys.stderr)
    return status


def _when(timestamp: int | None) -> str:
    return "-" if timestamp is None else format_time(timestamp)


def _list(known: list[Revision], fmt: str) -> int:
    if fmt == "json":
        print(json.dumps([r.to_dict() for r in known], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not known:
        print("no revisions: the store holds no receipts and no archived policy")
        return EXIT_OK
    print(f"{'REVISION':<16}  {'FIRST USED':<20}  {'LAST USED':<20}  {'RECEIPTS':>8}  ARCHIVED")
    for r in known:
        archived = f"yes ({len(r.archived)})" if len(r.archived) > 1 else "yes"
        print(
            f"{r.revision[:16]}  {_when(r.first):<20}  {_when(r.last):<20}  {r.receipts:>8}  "
            f"{archived if r.archived else 'no'}"
        )
    return EXIT_OK


def _texts(revision: Revision) -> dict[str, Any] | None:
    """The newest archived document of ``revision`` (what visitors were shown last)."""
    found = documents(revision)
    return found[-1] if found else None


def _not_archived(revision: Revision) -> int:
    return _fail(
        f"revision {revision.revision[:16]} is named by {revision.receipts} receipts but its "
        "texts are not archived (recorded before archiving began)",
        EXIT_FINDING,
    )


def _show(revision: Revision, fmt: str, language: str | None) -> int:
    document = _texts(revision)
    if document is None:
        return _not_archived(revision)
    if fmt == "json":
        out = {
            **revision.to_dict(),
            "documents": [
                {"digest": e.digest, "document": json.loads(e.body)} for e in revision.archived
            ],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    try:
        sys.stdout.write(show_markdown(document, language))
    except ValueError as exc:
        return _fail(f"revision {revision.revision[:16]}: {exc}", EXIT_FINDING)
    return EXIT_OK


def _diff(old: Revision, new: Revision, fmt: str) -> int:
    a, b = _texts(old), _texts(new)
    for revision, document in ((old, a), (new, b)):
        if document is None:
            return _not_archived(revision)
    assert a is not None
    assert b is not None
    lines = diff_documents(a, b)
    if fmt == "json":
        print(
            json.dumps(
                {
                    "from": old.revision,
                    "to": new.revision,
                    "revision_changed": old.revision != new.revision,
                    "changes": lines,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    print(f"--- {old.revision[:16]}")
    print(f"+++ {new.revision[:16]}")
    print("\n".join(lines) if lines else "no differences in the archived texts")
    return EXIT_OK


def cmd_revisions(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.store)
        known = revisions(store)
        if args.diff:
            old, new = (find_revision(known, prefix) for prefix in args.diff)
            return _diff(old, new, args.format)
        if args.show:
            return _show(find_revision(known, args.show), args.format, args.language)
    except RevisionNotFound as exc:
        return _fail(str(exc))
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    return _list(known, args.format)


def register(subparsers: Any) -> None:
    """Add ``revisions`` to the ``consent`` command."""
    p = subparsers.add_parser(
        "revisions",
        help="list the policy revisions in a receipt store, show or compare their texts",
        description=(
            "List every policy revision the store knows: when receipts first and last named "
            "it, how many, and whether its texts are archived. --show REV prints what "
            "visitors were shown under it (a unique prefix is enough); --diff REV1 REV2 what "
            "changed. Exit 2 for an unknown or ambiguous revision, 1 for one whose texts are "
            "not archived."
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--show", metavar="REV", help="print this revision's texts")
    action.add_argument("--diff", nargs=2, metavar=("REV1", "REV2"), help="what changed")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    p.add_argument("--language", metavar="LANG", help="with --show: the texts in this language")
    p.set_defaults(func=cmd_revisions)

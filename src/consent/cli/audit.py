"""``consent export|verify|incident|purge|create-store``: the receipt log on the command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any, TextIO

from ..audit import (
    EVENTS,
    NothingToRecord,
    VerifyResult,
    export,
    export_dpv,
    export_subject,
    parse_head,
    parse_time,
    record_incident,
    retention_cutoff,
    verify_file,
    verify_store,
)
from ..receipts import (
    ReceiptSigner,
    format_time,
)
from ..store import ReceiptStore, StoreUnavailable, open_store
from ..store.base import redact_url
from .codes import EXIT_BROKEN_PIPE, EXIT_FINDING, EXIT_OK, EXIT_USAGE

__all__ = ["cmd_create_store", "cmd_export", "cmd_incident", "cmd_purge", "cmd_verify", "register"]


def _signer(required: bool) -> ReceiptSigner | None:
    try:
        return ReceiptSigner.from_env()
    except ValueError:
        if required:
            raise
        return None


def _fail(message: str) -> int:
    print(f"consent: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_export(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        signer = _signer(required=False)
        store = open_store(args.store, signer)
        if args.with_policies and args.format != "jsonl":
            raise ValueError("--with-policies needs --format jsonl")
    except ValueError as exc:
        return _fail(str(exc))
    if args.subject is not None and args.format == "csv":
        return _fail("--subject writes JSON Lines (with its signed statement) or --format dpv")
    if args.subject is not None and (since is not None or until is not None or args.event):
        return _fail("--subject exports every receipt of the subject: no --since, --until, --event")
    if args.with_policies and args.subject is not None:
        return _fail("--with-policies goes with an export of the log, not with --subject")

    def write(out: TextIO) -> int:
        if args.format == "dpv":
            n, unreadable = export_dpv(
                store, out, since=since, until=until, event=args.event, subject=args.subject
            )
            if unreadable:
                print(
                    f"consent: {unreadable} stored rows are not valid receipts and were left "
                    "out; run consent verify",
                    file=sys.stderr,
                )
            return n
        if args.subject is not None:
            return export_subject(store, out, args.subject, signer=signer)
        return export(
            store,
            out,
            args.format,
            since,
            until,
            args.event,
            signer=signer,
            with_policies=args.with_policies,
        )

    try:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = write(out)
            print(f"Exported {n} receipts to {args.output}", file=sys.stderr)
        else:
            write(sys.stdout)
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`consent export ... | head`): stop quietly, with the status a
        # program ended by SIGPIPE has (as the command line's other commands do).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except StoreUnavailable as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        signer = _signer(required=True)
        assert signer is not None
        expect = parse_head(args.expect_head) if args.expect_head else None
        if args.file:
            result = verify_file(args.file, signer, expect_head=expect)
        else:
            result = verify_store(open_store(args.store, signer), signer, expect_head=expect)
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc}")
    if result.ok:
        print(result.message())
    else:
        for finding in result.findings:
            print(finding.line())
        more = result.finding_count - len(result.findings)
        if more:
            print(f"and {more} more findings")
        n = result.finding_count
        print(f"BROKEN: {n} finding{'s' if n != 1 else ''}; {result.count} receipts read")
    for incident in result.incidents:
        print("\n".join(incident.lines()))
    if result.ok and result.head is not None:
        print(f"head: seq {result.head.seq} hash {result.head.hash}")
    elif result.ok and args.file and not any(n.startswith("subject export") for n in result.notes):
        print(
            "no chain head: the receipts are genuine and linked, but the file does not show "
            "that it holds the whole log (a filtered export, or one cut short)"
        )
    if result.ok and result.checkpoint is not None:
        cp = result.checkpoint
        print(
            f"purged: {cp.count} receipts recorded before {format_time(cp.before)}, up to seq "
            f"{cp.seq} (signed checkpoint of {format_time(cp.time)}); the log starts after it"
        )
    if result.ok and result.count and result.keyed_from is None:
        print(
            "links: unkeyed, as earlier versions wrote them (the next decision recorded "
            "switches the log to keyed links)"
        )
    elif result.ok and result.switched:
        print(f"links: keyed from seq {result.keyed_from} on (signed switch record)")
    for note in result.notes:
        print(note)
    return EXIT_OK if result.ok else EXIT_FINDING


def cmd_incident(args: argparse.Namespace) -> int:
    try:
        signer = _signer(required=True)
        assert signer is not None
        store = open_store(args.store, signer)
        reason = args.reason.strip()
        if not reason:
            raise ValueError("--reason must say what happened")
        incident = record_incident(store, signer, reason=reason, by=args.by or None)
    except NothingToRecord:
        return _fail("nothing to record: the log verifies and its chain head is sound")
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    print(f"Incident recorded at seq {incident.seq}; recording continues after it.")
    print("\n".join(incident.lines()))
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    if (args.before is None) == (args.policy is None):
        return _fail("give the cut-off: --before TIME, or --policy DIR for its retention_days")
    try:
        signer = _signer(required=True)
        if args.before is not None:
            before = parse_time(args.before)
            given = f"--before {args.before}"
        else:
            before, given = retention_cutoff(args.policy)
        store = open_store(args.store, signer)
    except ValueError as exc:
        return _fail(str(exc))
    assert signer is not None
    if before > time.time():
        return _fail(f"{given} is in the future; a retention cut-off is a past date")
    try:
        result = verify_store(store, signer)
        if args.dry_run:
            return _purge_plan(store, before, result)
        if not result.ok:
            print(f"refusing to purge a broken log: {result.message()}")
            return EXIT_FINDING
        n = store.purge(before)
        checkpoint = store.chain_state().checkpoint
    except StoreUnavailable as exc:
        return _fail(str(exc))
    where = f"; the log now starts after seq {checkpoint.seq}" if checkpoint else ""
    print(f"Purged {n} receipts recorded before {format_time(before)}{where}")
    for incident in result.incidents:
        if checkpoint is not None and incident.seq <= checkpoint.seq:
            print(
                f"The incident marker at seq {incident.seq} (recorded "
                f"{format_time(incident.time)}: {incident.reason}) was purged with them."
            )
    return EXIT_OK


def _purge_plan(store: ReceiptStore, before: int, result: VerifyResult) -> int:
    """``consent purge --dry-run``: what would go, deleting nothing."""
    plan = store.purge_plan(before)
    if not result.ok:
        print(f"a purge would be refused: the log does not verify: {result.message()}")
        return EXIT_FINDING
    if plan.count == 0:
        print(f"Dry run: nothing was recorded before {format_time(before)}; nothing would go.")
        return EXIT_OK
    assert plan.oldest is not None
    assert plan.newest is not None
    print(
        f"Dry run: would purge {plan.count} receipts recorded before {format_time(before)} "
        f"(seq {plan.first} to {plan.last}, recorded {format_time(plan.oldest)} to "
        f"{format_time(plan.newest)}); the log would start after seq {plan.last}. "
        "Nothing was deleted."
    )
    return EXIT_OK


def cmd_create_store(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.store)
    except ValueError as exc:
        return _fail(str(exc))

    async def prepare() -> bool:
        try:
            return await store.open()  # logs why, when it cannot
        finally:
            await store.close()

    if not asyncio.run(prepare()):
        return _fail(f"the receipt store {redact_url(args.store)} could not be prepared")
    print(f"Receipt store ready: {redact_url(args.store)}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``export``, ``verify``, ``incident``, ``purge`` and ``create-store`` to the
    ``consent`` command."""
    times = (
        "Times are YYYY-MM-DD (midnight UTC) or RFC 3339 (2026-11-25T12:00:00Z). "
        "Keys come from CONSENT_SECRET_KEY (comma-separated; all verify)."
    )
    p = subparsers.add_parser(
        "export",
        help="write the consent-receipt log as JSON Lines or CSV",
        description=(
            "Stream the receipt log, oldest first. Every row carries its signature, chain "
            "hashes and signed body, so the export can be verified on its own. " + times
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.add_argument(
        "--format",
        choices=["jsonl", "csv", "dpv"],
        default="jsonl",
        help="jsonl (default), csv, or dpv: one JSON-LD consent record (W3C DPV) per line",
    )
    p.add_argument("--since", metavar="TIME", help="receipts at or after TIME")
    p.add_argument("--until", metavar="TIME", help="receipts before TIME")
    p.add_argument("--event", choices=EVENTS, help="only this kind of decision")
    p.add_argument(
        "--subject",
        metavar="ID",
        help=(
            "only this visitor's receipts (their pseudonymous id, for an access request), "
            "ending with a statement that consent verify --file checks"
        ),
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument(
        "--with-policies",
        action="store_true",
        help=(
            "begin with the archived texts of every policy revision the exported receipts "
            "name (jsonl; consent verify --file checks them)"
        ),
    )
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "verify",
        help="prove the consent-receipt log intact",
        description=(
            "Check every receipt's signature, keyed link and place, and the signed chain "
            "head. Exit 0 and print 'OK: N receipts verified' and the head (keep it "
            "elsewhere), or exit 1 and list every finding. Incident markers are reported "
            "with what they cover. " + times
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", metavar="URL", help="verify the log in this store")
    source.add_argument("--file", metavar="EXPORT", help="verify an export (.jsonl or .csv)")
    p.add_argument(
        "--expect-head",
        metavar="HEAD",
        help=(
            "a head kept from an earlier run (SEQ:HASH, the 'head: seq N hash H' line, or a "
            "file holding it): the log must still pass through it (finds a rollback)"
        ),
    )
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "incident",
        help="record a signed incident marker, so that recording resumes after damage",
        description=(
            "After the log was found damaged (decisions answered 503: the chain head is "
            "missing or does not match the newest receipt) and you have investigated: verify "
            "the log, then append a signed marker saying what was found, how many receipts are "
            "affected, why (--reason) and by whom (--by). Recording continues after it, and "
            "consent verify reports it and what it covers from then on. Needs "
            "CONSENT_SECRET_KEY. Exits 2 when there is nothing to record."
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.add_argument("--reason", required=True, metavar="TEXT", help="what happened, in words")
    p.add_argument("--by", metavar="NAME", help="who records it")
    p.set_defaults(func=cmd_incident)

    p = subparsers.add_parser(
        "purge",
        help="delete receipts older than a retention cut-off",
        description=(
            "Verify the log, then delete the receipts recorded before the cut-off (--before "
            "TIME, or --policy DIR: retention_days of its site.toml before now) and write a "
            "signed checkpoint so the remaining log still verifies. --dry-run says what would "
            "go and deletes nothing. " + times
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.add_argument("--before", metavar="TIME", help="retention cut-off")
    p.add_argument(
        "--policy", metavar="DIR", help="cut-off from [receipts] retention_days in DIR/site.toml"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be purged; delete nothing"
    )
    p.set_defaults(func=cmd_purge)

    p = subparsers.add_parser(
        "create-store",
        help="create the receipt store's tables (once, with an owner role)",
        description=(
            "Create the tables of the receipt store at URL if they do not exist, as the site "
            "does when it first connects. Run it once with a role that may create them; the "
            "site's own role then needs only the grants in docs/operations.md (Privileges)."
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.set_defaults(func=cmd_create_store)

"""``consent stats``: consent statistics of a receipt store, as a table, JSON, CSV or a chart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..store import StoreUnavailable
from ..times import parse_time

__all__ = ["cmd_stats", "register"]

EXIT_OK, EXIT_USAGE = 0, 2


def _time(value: str) -> int:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    """Add ``stats`` to the ``consent`` command."""
    p = subparsers.add_parser(
        "stats",
        help="consent statistics: decisions and opt-in rates over time",
        description=(
            "Per day, week or month: the number of decisions, the share of accept-all, reject-all "
            "and custom choices, the share sent with Global Privacy Control, and per category the "
            "share of decisions offering it that granted it. Counted by the database from the "
            "statistics columns kept with each receipt (a store made by an earlier version gets "
            "them first, filled from the signed bodies). --per decision counts every receipt; "
            "--per visitor each visitor's latest receipt in the bucket. Times are UTC. An empty "
            "range prints an empty table (exit 0)."
        ),
    )
    p.add_argument("--store", required=True, metavar="URL", help="receipt store URL")
    p.add_argument("--since", type=_time, metavar="T", help="from T on (YYYY-MM-DD or RFC 3339)")
    p.add_argument("--until", type=_time, metavar="T", help="before T")
    p.add_argument("--by", choices=["day", "week", "month"], default="day")
    p.add_argument("--per", choices=["decision", "visitor"], default="decision")
    p.add_argument("--split", choices=["language", "method", "revision"])
    p.add_argument("--format", choices=["table", "json", "csv", "svg", "png"], default="table")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    from .query import collect
    from .render import as_csv, as_json, as_table

    if args.since is not None and args.until is not None and args.until <= args.since:
        print("consent: error: --until must be after --since", file=sys.stderr)
        return EXIT_USAGE
    if args.format in ("svg", "png"):
        try:
            from .chart import render_chart
        except ImportError as exc:
            print(f"consent: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        stats = collect(
            args.store,
            since=args.since,
            until=args.until,
            by=args.by,
            per=args.per,
            split=args.split,
        )
    except (ValueError, StoreUnavailable) as exc:
        print(f"consent: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.format in ("svg", "png"):
        data = render_chart(stats, args.format)
    else:
        text = {"table": as_table, "json": as_json, "csv": as_csv}[args.format](stats)
        data = text.encode()
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return EXIT_OK

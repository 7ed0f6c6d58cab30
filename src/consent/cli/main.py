"""The ``consent`` command: its parser, and the dispatch to each command's handler.

Exit codes: 0 success, 1 a finding (invalid policy, broken receipt chain), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..catalog.command import register as register_catalog
from ..scanner.command import register as register_scan
from ..stats.command import register as register_stats
from .audit import register as register_audit
from .codes import EXIT_BROKEN_PIPE, EXIT_USAGE
from .demo import register as register_demo
from .policy import register as register_policy
from .revisions import register as register_revisions

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="consent",
        description=(
            "Server-side cookie consent for ASGI sites: validate the cookie policy, render the "
            "cookie declaration, export and verify the consent-receipt audit log."
        ),
        epilog="Exit status: 0 success, 1 a finding (invalid policy, broken chain), 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    # One module per command group; each adds its commands.
    register_policy(sub)
    register_demo(sub)
    register_audit(sub)
    register_revisions(sub)
    register_catalog(sub)
    register_scan(sub)
    register_stats(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read the output stopped early (``consent export ... | head``): stop too,
        # quietly, and keep the interpreter's last flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return result

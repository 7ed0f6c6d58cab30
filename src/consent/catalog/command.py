"""``consent catalog NAME...``: what the known-cookie catalog says about cookie names."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .database import FUNCTIONAL_NOTE, SOURCE, Suggestion, lookup

__all__ = ["cmd_catalog", "describe", "register"]


def describe(suggestion: Suggestion) -> list[str]:
    """The catalog's answer as indented lines of text."""
    if suggestion.ambiguous:
        lines = [f"  ambiguous: the {SOURCE} lists it under conflicting categories"]
        lines += [
            f"    {e.platform or '?'}: {e.category} -> {e.key}"
            f"{f', {e.retention}' if e.retention else ''}: {e.description}"
            for e in suggestion.entries
        ]
        return lines
    how = "exact name" if suggestion.match == "exact" else f"prefix {suggestion.pattern!r}"
    lines = [
        f"  {suggestion.vendor or '(no platform named)'}: {suggestion.catalog_category} -> "
        f"{suggestion.category} ({how})",
    ]
    if suggestion.description:
        lines.append(f"  {suggestion.description}")
    if suggestion.retention:
        lines.append(f"  retention: {suggestion.retention}")
    if "Functional" in suggestion.catalog_category:
        lines.append(f"  note: {FUNCTIONAL_NOTE}")
    return lines


def cmd_catalog(args: argparse.Namespace) -> int:
    found = {name: lookup(name) for name in args.names}
    if args.format == "json":
        data: dict[str, Any] = {n: (s.to_json() if s else None) for n, s in found.items()}
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        for name, suggestion in found.items():
            print(name)
            if suggestion is None:
                print(f"  not in the {SOURCE}")
            else:
                print("\n".join(describe(suggestion)))
    return 1 if None in found.values() else 0


def register(subparsers: Any) -> None:
    """Add ``catalog`` to the ``consent`` command."""
    p = subparsers.add_parser(
        "catalog",
        help="what the known-cookie catalog says about cookie names",
        description=(
            f"Look cookie or storage-key names up in the {SOURCE} shipped with asgi-consent "
            "(exact name first, then the longest prefix row): platform, category (the "
            "catalog's word and the policy key it maps to), description, retention. Names the "
            "catalog lists under conflicting categories are shown as ambiguous. Exit 1 when a "
            "name is not in the catalog."
        ),
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_catalog)

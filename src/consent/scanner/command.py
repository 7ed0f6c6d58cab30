"""``consent scan URL``: the site in a real browser under every consent decision, checked against
its policy and the known-cookie catalog.

Exit status: 0 no violations and no undeclared cookies, 1 when there are (with ``--strict`` also
third-party hosts contacted before consent), 2 a usage error, an unreachable site, a decision the
site would not take, or no browser.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..policy import Policy, PolicyError, load_policy

if TYPE_CHECKING:
    from .browser import Progress, ScanOptions
    from .report import Report

__all__ = ["DEFAULT_BROWSER", "cmd_scan", "find_browser", "register"]

EXIT_USAGE = 2
#: Debian's Chromium; otherwise the first of these on PATH.
DEFAULT_BROWSER = "/usr/bin/chromium"
_ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_PLAYWRIGHT = (
    "consent scan needs Playwright: pip install 'asgi-consent[scan]' (it drives an installed "
    "Chromium; no browser download is needed)"
)
INSTALL_BROWSER = (
    "install Chromium (Debian/Ubuntu: apt-get install chromium) or pass --browser PATH to a "
    "Chromium or Chrome executable"
)


def find_browser(given: str | None) -> str | None:
    """``given`` if it is an executable file; else Debian's Chromium or one on PATH."""
    if given:
        return given if os.path.isfile(given) and os.access(given, os.X_OK) else None
    if os.path.isfile(DEFAULT_BROWSER) and os.access(DEFAULT_BROWSER, os.X_OK):
        return DEFAULT_BROWSER
    for name in _ON_PATH:
        found = shutil.which(name)
        if found:
            return found
    return None


def _fail(message: str) -> int:
    print(f"consent scan: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_scan(args: argparse.Namespace) -> int:
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _fail(f"{args.url!r} is not an http:// or https:// address")
    policy: Policy | None = None
    if args.policy:
        try:
            policy = load_policy(args.policy)
        except PolicyError as exc:
            print(f"consent scan: {args.policy}: invalid cookie policy", file=sys.stderr)
            for err in exc.errors:
                print(f"  {err}", file=sys.stderr)
            return EXIT_USAGE
    try:
        from .browser import BrowserUnavailable, ScanOptions, Unreachable
    except ImportError as exc:
        return _fail(f"{INSTALL_PLAYWRIGHT} ({exc})")
    browser = find_browser(args.browser)
    if browser is None:
        where = args.browser or f"{DEFAULT_BROWSER} (or {', '.join(_ON_PATH)} on PATH)"
        return _fail(f"no browser at {where}: {INSTALL_BROWSER}")

    progress: Progress | None = None
    if sys.stderr.isatty():

        def show(line: str) -> None:
            print(f"scan: {line}", file=sys.stderr, flush=True)

        progress = show

    options = ScanOptions(
        browser=browser,
        pages=args.pages,
        prefix="/" + args.prefix.strip("/") if args.prefix else None,
        jobs=args.jobs,
        timeout=args.timeout,
    )
    started = time.time()
    try:
        report = asyncio.run(_scan(args.url, options, policy, args.policy, progress))
    except BrowserUnavailable as exc:
        return _fail(f"cannot start the browser {browser}: {exc}; {INSTALL_BROWSER}")
    except Unreachable as exc:
        return _fail(f"cannot scan {exc}")
    except _Declaration as exc:
        return _fail(str(exc))
    report.started = started
    report.duration = time.time() - started

    from .render import render_json, render_text, write_drafts

    text = render_json(report) if args.format == "json" else render_text(report, strict=args.strict)
    code = report.exit_code(strict=args.strict)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(
            f"consent scan: {len(report.violations)} violations, {len(report.undeclared)} "
            f"undeclared; report in {args.output} (exit {code})",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    if args.draft:
        written = write_drafts(report, Path(args.draft))
        if written:
            print(
                "consent scan: draft rules to review in " + ", ".join(str(p) for p in written),
                file=sys.stderr,
            )
    for decision, error in report.errors:
        print(f"consent scan: decision {decision!r} could not be made: {error}", file=sys.stderr)
    return code


class _Declaration(Exception):
    """The site's declaration cannot be read as a policy."""


async def _scan(
    url: str,
    options: ScanOptions,
    policy: Policy | None,
    policy_dir: str | None,
    progress: Progress | None,
) -> Report:
    from ..catalog import default_catalog
    from .browser import Scanner
    from .model import Decision, plan
    from .report import build_report
    from .site import DeclarationError, policy_from_declaration

    async with Scanner(options, progress) as scanner:
        site, declaration = await scanner.probe(url)
        source = location = revision = None
        if policy is not None:
            source, location = "directory", policy_dir
        elif declaration is not None:
            location = f"{site.origin}{site.prefix}/declaration"
            try:
                policy = policy_from_declaration(declaration)
            except DeclarationError as exc:
                raise _Declaration(f"{location}: not a cookie declaration: {exc}") from None
            source, revision = "declaration", str(declaration.get("revision") or "") or None
        if site.prefix is not None:
            decisions = plan(site.optional, site.sale_or_share)
        else:
            decisions = [Decision("none")]
        if progress is not None:
            progress(f"decisions: {', '.join(d.name for d in decisions)}")
        runs = await scanner.run_all(site, decisions)
    return build_report(
        site,
        runs,
        policy,
        default_catalog(),
        policy_source=source,
        policy_location=location,
        revision=revision,
        pages=options.pages,
    )


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: at least 1")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < number <= 600:
        raise argparse.ArgumentTypeError(f"{value!r}: between 0 and 600 seconds")
    return number


def register(subparsers: Any) -> None:
    """Add ``scan`` to the ``consent`` command."""
    p = subparsers.add_parser(
        "scan",
        help="scan a site in a real browser under each consent decision",
        description=(
            "Visit the site in headless Chromium under each consent decision (none, reject, each "
            "category alone, all, and Global Privacy Control), made through its own banner or "
            "consent endpoint; record cookies, storage keys and other hosts; check them against "
            "the site's policy (its declaration, or --policy DIR) and the known-cookie catalog. "
            "Exit 0 when clean, 1 on violations or undeclared cookies, 2 on usage errors or an "
            "unreachable site."
        ),
    )
    p.add_argument("url", metavar="URL", help="the page to start from")
    p.add_argument(
        "--policy",
        metavar="DIR",
        help="check against this policy directory (default: the site's <prefix>/declaration)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE")
    p.add_argument("--draft", metavar="DIR", help="write draft rules for undeclared cookies to DIR")
    p.add_argument(
        "--pages",
        type=_positive,
        default=10,
        metavar="N",
        help="same-origin pages to visit per decision (default 10)",
    )
    p.add_argument(
        "--browser",
        metavar="PATH",
        help=f"Chromium or Chrome executable (default {DEFAULT_BROWSER})",
    )
    p.add_argument(
        "--prefix",
        metavar="PATH",
        help="where the consent endpoint answers when the page does not say (default /_consent)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="third-party hosts contacted before consent make the exit status 1",
    )
    p.add_argument(
        "--jobs",
        type=_positive,
        default=4,
        metavar="N",
        help="decisions scanned at the same time (default 4)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long a page may take to load (default 30)",
    )
    p.set_defaults(func=cmd_scan)

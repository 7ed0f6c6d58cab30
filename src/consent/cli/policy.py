"""``consent init|check|declaration``: the cookie policy on the command line."""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ..classify import REGEX_NAME_LIMIT, backtracking_risk
from ..declaration import render_html, render_json, render_markdown
from ..policy import Policy, PolicyError, load_policy
from .codes import EXIT_FINDING, EXIT_OK, EXIT_USAGE

__all__ = ["cmd_check", "cmd_declaration", "cmd_init", "register"]


def _load(directory: str) -> Policy | int:
    try:
        return load_policy(directory)
    except PolicyError as exc:
        print(f"{directory}: invalid cookie policy", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return EXIT_FINDING


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.directory)
    if target.exists() and any(target.iterdir()) and not args.force:
        print(f"{target}: not empty (use --force to overwrite the policy files)", file=sys.stderr)
        return EXIT_USAGE
    target.mkdir(parents=True, exist_ok=True)
    source = resources.files("consent") / "init_policy"
    written = []
    for item in sorted(source.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            with resources.as_file(item) as path:
                shutil.copyfile(path, target / item.name)
            written.append(item.name)
    print(f"Wrote a starter policy to {target}/: {', '.join(written)}")
    print("Edit the controller in site.toml, declare your cookies, then run: consent check", target)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    policy = _load(args.directory)
    if isinstance(policy, int):
        return policy
    site = policy.site
    print(f"Policy {args.directory}: valid")
    print(f"  controller   {site.controller.name} <{site.controller.email}>")
    print(f"  revision     {policy.revision}")
    print(
        f"  undeclared   {site.undeclared} (cookies no category declares are "
        f"{'blocked' if site.undeclared == 'block' else 'let through'} in both directions)"
    )
    print(f"  gpc          {'honoured' if site.gpc.honor else 'ignored'}")
    own = ", ".join(f"banner/{lang}.json" for lang in sorted(policy.words))
    print(
        f"  languages    {', '.join(sorted(policy.offered_languages))}"
        + (f" (the site's words: {own})" if own else "")
    )
    print()
    rows = [("CATEGORY", "KIND", "RULE", "VENDOR", "NOTES")]
    for key, cat in policy.ordered():
        flags = []
        if cat.necessary:
            flags.append("necessary")
        if cat.sale_or_share:
            flags.append("sale/share")
        if cat.consent_mode:
            flags.append("gcm:" + ",".join(cat.consent_mode))
        if cat.third_parties:
            flags.append("shared with: " + ", ".join(cat.third_parties))
        if not cat.cookies:
            rows.append((key, "-", "(no cookies)", "", " ".join(flags)))
        for i, rule in enumerate(cat.cookies):
            notes = " ".join(flags) if i == 0 else ""
            if rule.domains:
                notes = (notes + " domain=" + ",".join(rule.domains)).strip()
            rows.append((key if i == 0 else "", rule.kind, rule.label, rule.vendor, notes))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print(
            "  "
            + "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )
    n_rules = sum(len(c.cookies) for c in policy.categories.values())
    print()
    print(f"{len(policy.categories)} categories, {n_rules} cookie rules")
    return _warnings(policy, args)


def _warnings(policy: Policy, args: argparse.Namespace) -> int:
    """What ``consent check`` warns about: regexes that can backtrack badly, and necessary
    rules the known-cookie catalog calls Analytics or Marketing. ``--strict``: exit 1."""
    from ..catalog.checks import necessary_warnings

    messages: list[str] = []
    for key, cat in policy.ordered():
        for i, rule in enumerate(cat.cookies):
            risk = None if rule.regex is None else backtracking_risk(rule.regex)
            if risk is not None:
                messages.append(
                    f"{key}.toml: cookies[{i}].regex: {rule.regex!r}: {risk} "
                    f"(on names of up to {REGEX_NAME_LIMIT} characters, the longest that "
                    "regexes are matched against); prefer a glob (pattern = ...), which is "
                    "matched in linear time, or a regex without nested repetition"
                )
    messages += [w.message() for w in necessary_warnings(policy, ignore=args.ignore)]
    messages += _word_warnings(policy)
    for message in messages:
        print(f"warning: {message}")
    if messages:
        print(f"{len(messages)} warning{'s' if len(messages) > 1 else ''}")
    return EXIT_FINDING if messages and args.strict else EXIT_OK


def _word_warnings(policy: Policy) -> list[str]:
    """Per language: the interface words the banner would show in English for want of a
    translation, and keys in the site's word files that nothing reads."""
    from ..i18n import available_languages, bundled_keys

    keys = bundled_keys()
    messages = []
    for lang in sorted(policy.words):
        unknown = sorted(set(policy.words[lang]) - keys)
        if unknown:
            messages.append(
                f"banner/{lang}.json: unknown keys (nothing reads them): {', '.join(unknown)}"
            )
    for lang in sorted(policy.offered_languages - available_languages()):
        missing = sorted(keys - set(policy.words.get(lang, {})))
        if missing:
            where = f"banner/{lang}.json" if lang in policy.words else f"no banner/{lang}.json"
            messages.append(
                f"language {lang!r}: {len(missing)} of {len(keys)} words missing ({where}); "
                f"the banner shows them in English: {', '.join(missing)}"
            )
    for lang in sorted(set(policy.words) - policy.offered_languages):
        messages.append(
            f"banner/{lang}.json: {lang!r} is not in [banner] languages, so it is never shown"
        )
    return messages


def cmd_declaration(args: argparse.Namespace) -> int:
    policy = _load(args.directory)
    if isinstance(policy, int):
        return policy
    render = {"markdown": render_markdown, "html": render_html, "json": render_json}[args.format]
    if args.language and args.language not in policy.languages:
        print(
            f"consent: warning: the policy has no {args.language!r} texts (it has "
            f"{', '.join(sorted(policy.languages))}): categories and cookies are shown in "
            f"{policy.site.language!r}; add [translations.{args.language}] tables",
            file=sys.stderr,
        )
    text = render(policy, args.language)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``init``, ``check`` and ``declaration`` to the ``consent`` command."""
    p = subparsers.add_parser(
        "init",
        help="write a starter policy directory",
        description=(
            "Write a ready-to-edit policy directory: site.toml and one file per category "
            "(necessary, analytics, marketing, preferences, embedded)."
        ),
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--force", action="store_true", help="overwrite files in a non-empty DIR")
    p.set_defaults(func=cmd_init)

    p = subparsers.add_parser(
        "check",
        help="validate a policy directory",
        description=(
            "Validate site.toml and every category file; print the categories and cookie rules. "
            "Exit 1 and name file and field of every problem when invalid. Warn when a rule of a "
            "necessary category matches a known Analytics or Marketing cookie of the catalog."
        ),
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when there are warnings, not only errors"
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULE",
        help="no catalog warning for this rule (its name, glob or regex as written); repeatable",
    )
    p.set_defaults(func=cmd_check)

    p = subparsers.add_parser(
        "declaration",
        help="render the cookie declaration",
        description=(
            "Render the cookie declaration (per category: text, cookies, vendor, purpose, duration)."
        ),
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--format", choices=["markdown", "html", "json"], default="markdown")
    p.add_argument("--language", help="use the category and cookie translations for this language")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_declaration)

"""A policy directory read and validated once: :func:`load_policy` reads ``site.toml`` and one
TOML file per category into the models of :mod:`consent.policy.models`, checks them across
files (no cookie name in two categories), and gives the :class:`Policy` with its revision hash.

Every error names the file, the field path and what is wrong, so an operator can fix a broken
policy without reading code.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..i18n import available_languages, merge_words
from .models import CATEGORY_KEY, Category, CookieRule, SiteConfig

__all__ = ["Policy", "PolicyError", "load_policy", "revision_of"]


class PolicyError(Exception):
    """The policy directory is invalid. ``errors`` lists one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("invalid cookie policy:\n" + "\n".join(f"  - {e}" for e in errors))


def _normalise_text(value: Any) -> Any:
    """Whitespace-insensitive canonical form used by the revision hash."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [_normalise_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise_text(v) for k, v in value.items()}
    return value


def revision_of(document: Mapping[str, Any]) -> str:
    """The revision hash of a :meth:`Policy.revision_document`: SHA-256 over its canonical
    JSON, whitespace inside texts normalised."""
    blob = json.dumps(_normalise_text(document), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Policy:
    """A validated policy directory."""

    site: SiteConfig
    categories: Mapping[str, Category]
    source: Path | None = None
    #: The site's interface words by language (``<policy>/banner/<lang>.json``), merged over
    #: the bundled ones. Button labels and other interface words: not part of the revision.
    words: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: str | Path) -> Policy:
        return load_policy(directory)

    def revision_document(self) -> dict[str, Any]:
        """What the revision hash covers, as written (texts not yet normalised): the
        controller, the policy URL, the site's own notice and its translations, how undeclared
        cookies are treated, and every category with its texts, translations, flags and cookie
        rules. Not covered: the banner's bundled wording (button labels, headings) and the
        display order. The policy archive (:mod:`consent.archive`) keeps this document and
        the banner's wording beside it."""
        return {
            "controller": self.site.controller.model_dump(mode="json"),
            "policy_url": self.site.policy_url,
            "notice": self.site.banner.notice,
            "notice_translations": dict(self.site.banner.notice_translations),
            "undeclared": self.site.undeclared,
            "categories": {
                key: {
                    # (third_parties only when declared: a policy without them keeps the
                    # revision it had before the setting existed)
                    **cat.model_dump(
                        mode="json",
                        exclude={"cookies", "order"}
                        | (set() if cat.third_parties else {"third_parties"}),
                    ),
                    "cookies": sorted(
                        (r.canonical() for r in cat.cookies),
                        key=lambda r: json.dumps(r, sort_keys=True),
                    ),
                }
                for key, cat in sorted(self.categories.items())
            },
        }

    @cached_property
    def revision(self) -> str:
        """A stable hash over everything the visitor is shown and every rule.

        Independent of file order, key order and whitespace inside texts; any change to a
        category's title, description, translations, flags or cookie rules, to the controller,
        the policy URL or the site's own notice changes it, and consent given under another
        revision no longer counts. The banner's bundled wording (button labels) does not.
        """
        return revision_of(self.revision_document())

    @cached_property
    def short_revision(self) -> str:
        """The first 16 hex digits of :attr:`revision` (what the consent cookie carries)."""
        return self.revision[:16]

    @cached_property
    def necessary(self) -> frozenset[str]:
        return frozenset(k for k, c in self.categories.items() if c.necessary)

    @cached_property
    def optional(self) -> tuple[str, ...]:
        """Non-necessary category keys in display order."""
        return tuple(k for k, c in self.ordered() if not c.necessary)

    @cached_property
    def sale_or_share(self) -> frozenset[str]:
        return frozenset(k for k, c in self.categories.items() if c.sale_or_share)

    @cached_property
    def languages(self) -> frozenset[str]:
        """The languages the policy has texts in: its own, its category translations and its
        notice translations."""
        return frozenset(
            {
                self.site.language.split("-")[0].lower(),
                *self.site.banner.notice_translations,
                *(lang for c in self.categories.values() for lang in c.translations),
                *(
                    lang
                    for c in self.categories.values()
                    for rule in c.cookies
                    for lang in rule.translations
                ),
            }
        )

    @cached_property
    def offered_languages(self) -> frozenset[str]:
        """The languages the banner offers: ``[banner] languages`` when set (with the site's
        own language), else every language there are words or texts for."""
        chosen = self.site.banner.languages
        if chosen is None:
            return available_languages() | frozenset(self.words) | self.languages
        return frozenset(chosen) | {self.site.language.split("-")[0].lower()}

    @cached_property
    def _strings(self) -> dict[str, dict[str, str]]:
        languages = self.offered_languages | available_languages()
        return {lang: merge_words(lang, self.words) for lang in languages}

    def ui_strings(self, language: str) -> dict[str, str]:
        """The interface words in ``language`` (see :func:`consent.i18n.merge_words`)."""
        found = self._strings.get(language)
        return found if found is not None else self._strings["en"]

    def ordered(self) -> list[tuple[str, Category]]:
        """Categories in display order: necessary first, then ``order``, then key."""
        return sorted(
            self.categories.items(), key=lambda kv: (not kv[1].necessary, kv[1].order, kv[0])
        )


def _fmt_loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(file)"


def _errors_of(file: str, exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[str]:
    msgs = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        msgs.append(f"{file}: {_fmt_loc(loc)}: {msg}")
    return msgs


def _read_toml(path: Path, errors: list[str]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        errors.append(f"{path.name}: (file): not valid TOML: {exc}")
    except OSError as exc:
        errors.append(f"{path.name}: (file): cannot be read: {exc.strerror}")
    return None


def load_policy(directory: str | Path) -> Policy:
    """Read and validate a policy directory; raise :class:`PolicyError` listing every problem."""
    root = Path(directory)
    if not root.is_dir():
        raise PolicyError(
            [f"{root}: not a directory (expected site.toml and one TOML file per category)"]
        )
    errors: list[str] = []

    site: SiteConfig | None = None
    site_path = root / "site.toml"
    if not site_path.is_file():
        errors.append(
            "site.toml: (file): missing; it holds the controller, policy_url and site settings"
        )
    else:
        data = _read_toml(site_path, errors)
        if data is not None:
            try:
                site = SiteConfig.model_validate(data)
            except ValidationError as exc:
                errors.extend(_errors_of("site.toml", exc))

    categories: dict[str, Category] = {}
    # The cookie rules of every category file, those of a file with errors included (each of
    # its rules that is valid on its own), so that the checks across files still see them.
    rules: dict[str, list[tuple[int, CookieRule]]] = {}
    necessary_declared = unreadable = False
    for path in sorted(root.glob("*.toml")):
        if path.name == "site.toml":
            continue
        key = path.stem
        if not CATEGORY_KEY.fullmatch(key):
            errors.append(
                f"{path.name}: (file name): {key!r} is not a valid category key "
                "(lower-case letter first, then a-z, 0-9, '_' or '-')"
            )
            continue
        data = _read_toml(path, errors)
        if data is None:
            unreadable = True  # it may be the one that declares necessary = true
            continue
        necessary_declared = necessary_declared or data.get("necessary") is True
        if "key" in data:
            errors.append(f"{path.name}: key: unknown key (the file name is the category key)")
            continue
        try:
            category = categories[key] = Category.model_validate({**data, "key": key})
            rules[key] = list(enumerate(category.cookies))
        except ValidationError as exc:
            errors.extend(_errors_of(path.name, exc))
            rules[key] = _valid_rules(data.get("cookies"))

    if not rules and not errors:
        errors.append(f"{root}: (directory): no category files (*.toml besides site.toml)")
    if rules and not necessary_declared and not unreadable:
        errors.append(
            "(policy): no category has necessary = true; declare the cookies the site cannot work "
            "without (sessions, CSRF, load balancing) in one"
        )
    errors.extend(_ambiguities(rules))
    words = _read_words(root / "banner", errors)
    if errors or site is None:
        raise PolicyError(errors)
    return Policy(site=site, categories=categories, source=root.resolve(), words=words)


def _read_words(directory: Path, errors: list[str]) -> dict[str, dict[str, str]]:
    """The site's interface words: ``banner/<lang>.json``, each an object of strings by key
    (the keys of the bundled ``en.json``)."""
    words: dict[str, dict[str, str]] = {}
    if not directory.is_dir():
        return words
    for path in sorted(directory.iterdir()):
        name = f"banner/{path.name}"
        if path.suffix != ".json":
            continue
        if not re.fullmatch(r"[a-z]{2,3}", path.stem):
            errors.append(
                f"{name}: (file name): {path.stem!r} is not a language code: name the file "
                "after a lower-case ISO 639 code, such as banner/es.json"
            )
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            errors.append(f"{name}: (file): not a readable JSON file: {exc}")
            continue
        if not isinstance(data, dict):
            errors.append(f"{name}: (file): must be a JSON object of words by key")
            continue
        bad = sorted(k for k, v in data.items() if not isinstance(v, str))
        if bad:
            errors.append(f"{name}: {', '.join(bad)}: must be text (a JSON string)")
            continue
        words[path.stem] = data
    return words


def _valid_rules(cookies: Any) -> list[tuple[int, CookieRule]]:
    """The entries of a category file's ``cookies`` that are valid rules, by position (the
    others' errors are already reported with the file's)."""
    valid = []
    for i, entry in enumerate(cookies if isinstance(cookies, list) else ()):
        try:
            valid.append((i, CookieRule.model_validate(entry)))
        except ValidationError:
            continue
    return valid


def _samples(rule: CookieRule) -> list[str]:
    """Concrete names a rule matches, used to detect rules of two categories overlapping."""
    if rule.name is not None:
        return [rule.name]
    if rule.pattern is not None:
        return [
            rule.pattern.replace("*", "").replace("?", "x"),
            rule.pattern.replace("*", "x").replace("?", "x"),
        ]
    return []


def _ambiguities(rules: Mapping[str, Sequence[tuple[int, CookieRule]]]) -> list[str]:
    """A cookie name matched by rules of two categories is an error.

    Exact names in two categories always conflict. A glob or regex of one category that
    matches an exact name or a sample name of a glob of another category conflicts too —
    except that an exact name takes precedence over another category's pattern when the
    pattern is a regex or glob that merely *includes* it (documented precedence: exact >
    pattern), so only pattern-vs-pattern overlaps are reported for globs and regexes.
    """
    errors: list[str] = []
    exact: dict[str, tuple[str, int]] = {}
    for key, numbered in sorted(rules.items()):
        for i, rule in numbered:
            if rule.name is None:
                continue
            if rule.name in exact and exact[rule.name][0] != key:
                other, j = exact[rule.name]
                errors.append(
                    f"{key}.toml: cookies[{i}].name: {rule.name!r} is also declared in "
                    f"{other}.toml cookies[{j}]; a cookie belongs to exactly one category"
                )
            else:
                exact.setdefault(rule.name, (key, i))
    patterns = [
        (key, i, rule, rule.compiled())
        for key, numbered in sorted(rules.items())
        for i, rule in numbered
        if rule.name is None
    ]
    reported: set[frozenset[tuple[str, int]]] = set()
    for key, i, rule, _rx in patterns:
        for sample in _samples(rule):
            for okey, j, orule, orx in patterns:
                pair = frozenset({(key, i), (okey, j)})
                if okey != key and pair not in reported and orx.fullmatch(sample):
                    reported.add(pair)
                    errors.append(
                        f"{key}.toml: cookies[{i}].{rule.kind}: {rule.label!r} overlaps "
                        f"{okey}.toml cookies[{j}].{orule.kind} {orule.label!r} (both match "
                        f"{sample!r}); a cookie belongs to exactly one category"
                    )
                    break
    return errors

"""The cookie policy: ``site.toml`` plus one TOML file per category.

The policy is read and validated once, at start-up. Every error names the file, the field
path and what is wrong, so an operator can fix a broken policy without reading code.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .cookies import deletion_variants
from .i18n import available_languages, merge_words

__all__ = [
    "CONSENT_MODE_TYPES",
    "Category",
    "ConsentCookieSettings",
    "Controller",
    "CookieRule",
    "Policy",
    "PolicyError",
    "SiteConfig",
    "load_policy",
    "revision_of",
]

CATEGORY_KEY = re.compile(r"[a-z][a-z0-9_-]*")
# Cookie names are RFC 6265 tokens; globs may add * and ?.
_TOKEN_CHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
COOKIE_NAME = re.compile(rf"[{_TOKEN_CHARS}]+")
COOKIE_GLOB = re.compile(rf"[{_TOKEN_CHARS}?]+")

CONSENT_MODE_TYPES = frozenset(
    {
        "ad_storage",
        "ad_user_data",
        "ad_personalization",
        "analytics_storage",
        "functionality_storage",
        "personalization_storage",
        "security_storage",
    }
)


class PolicyError(Exception):
    """The policy directory is invalid. ``errors`` lists one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("invalid cookie policy:\n" + "\n".join(f"  - {e}" for e in errors))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --------------------------------------------------------------------------- site.toml


def _language_code(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}", value):
        raise ValueError(
            f"{value!r} is not a language code: write it in lower case, such as 'de' "
            "(regional variants such as 'de-AT' are not told apart)"
        )
    return value


#: The key of a translation: a lower-case ISO 639 code (``de``), as visitors' languages are
#: matched (``de-AT`` in a browser picks ``de``).
LanguageCode = Annotated[str, AfterValidator(_language_code)]


class Controller(_Model):
    """The data controller named in the notice and on every receipt."""

    name: Annotated[str, Field(min_length=1)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    address: str = ""
    url: str = ""
    phone: str = ""


class ConsentCookieSettings(_Model):
    """How the signed consent cookie itself is set."""

    name: Annotated[str, Field(pattern=COOKIE_NAME.pattern)] = "consent"
    lifetime_days: Annotated[int, Field(ge=1, le=400)] = 182
    domain: str | None = None
    path: str = "/"
    secure: Literal["auto", True, False] = "auto"
    samesite: Literal["lax", "strict", "none"] = "lax"

    @model_validator(mode="after")
    def _samesite_none_needs_secure(self) -> ConsentCookieSettings:
        if self.samesite == "none" and self.secure is False:
            raise ValueError("samesite = 'none' requires secure = true or 'auto'")
        if self.name.startswith(("__Host-", "__Secure-")) and self.secure is not True:
            raise ValueError(
                f"a {self.name.split('-')[0]}- cookie is only kept by browsers when Secure: set "
                "secure = true (and serve the site over https)"
            )
        if self.name.startswith("__Host-") and (self.domain is not None or self.path != "/"):
            raise ValueError("a __Host- cookie cannot have a domain and needs path = '/'")
        return self

    @property
    def max_age(self) -> int:
        return self.lifetime_days * 86400


class GpcSettings(_Model):
    """Global Privacy Control (``Sec-GPC: 1``)."""

    honor: bool = True
    well_known: bool = True  # served only while the signal is honoured
    last_update: str = "2026-01-01"

    @field_validator("last_update")
    @classmethod
    def _a_date(cls, v: str) -> str:
        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError(
                f"{v!r} is not a date: write YYYY-MM-DD (the GPC file's lastUpdate)"
            ) from None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise ValueError(f"{v!r}: write the date as YYYY-MM-DD")
        return v


class ReceiptSettings(_Model):
    """Where receipts are stored and what personal data they hold."""

    store: str = "sqlite:///consent.db"
    ip: Literal["truncate", "omit"] = "truncate"
    user_agent: bool = False
    retention_days: Annotated[int, Field(ge=1)] = 1095
    #: Seconds a decision waits for the store (a lock, a connection, an unanswered server)
    #: before it is answered 503.
    timeout: Annotated[float, Field(gt=0, le=300)] = 5.0


class BannerSettings(_Model):
    """The visitor-facing banner."""

    inject: bool = True
    notice: str = ""
    notice_translations: dict[LanguageCode, str] = Field(default_factory=dict)
    # The languages the banner offers and picks from Accept-Language; None: every language
    # there are words for (bundled, the site's banner/<lang>.json files, the policy's texts).
    languages: list[LanguageCode] | None = None


def _link_target(value: str) -> str:
    """A URL the pages render as a link: an http(s) address with a host, or a path of the site
    (``/`` then anything but a second ``/`` or ``\\``). Anything else (``javascript:``,
    ``data:``, ``//other.host``, a relative path) is refused."""
    refused = ValueError(
        f"{value!r} is not an http(s) address or a path of this site: write "
        "'https://example.org/cookies' or '/cookie-policy' (it is shown to visitors as a link)"
    )
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f" for ch in value):
        raise refused
    if value.startswith("/"):
        if value.startswith("//"):
            raise refused
        return value
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        raise refused
    return value


class SiteConfig(_Model):
    """``site.toml``: site-wide settings."""

    controller: Controller
    policy_url: Annotated[str, Field(min_length=1), AfterValidator(_link_target)]
    jurisdiction: Annotated[str, Field(min_length=2)] = "EU"
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")] = "en"
    undeclared: Literal["block", "allow"] = "block"
    consent_cookie: ConsentCookieSettings = Field(default_factory=ConsentCookieSettings)
    gpc: GpcSettings = Field(default_factory=GpcSettings)
    receipts: ReceiptSettings = Field(default_factory=ReceiptSettings)
    banner: BannerSettings = Field(default_factory=BannerSettings)
    trusted_origins: list[str] = Field(default_factory=list)

    def notice_for(self, language: str) -> str:
        """The first-layer notice in ``language``: its translation, the notice itself when that is
        the site's language, else empty (the banner then shows its own translated default)."""
        banner = self.banner
        if language in banner.notice_translations:
            return banner.notice_translations[language]
        return banner.notice if language == self.language.split("-")[0] else ""


# --------------------------------------------------------------------------- categories


class CookieText(_Model):
    """A translation of a cookie's visible text (what it is for, how long it lives); a piece
    left out falls back to the rule's own."""

    purpose: str = ""
    duration: str = ""
    display: str = ""


class CookieRule(_Model):
    """One cookie (or family of cookies) that belongs to a category.

    Exactly one of ``name`` (exact, case-sensitive), ``pattern`` (glob with ``*`` and ``?``)
    or ``regex`` (Python regular expression, must match the whole name) is given.
    """

    name: str | None = None
    pattern: str | None = None
    regex: str | None = None
    vendor: str = ""
    purpose: str = ""
    duration: str = ""
    #: What visitors read instead of the name, glob or regex (``"Google Analytics cookies
    #: (_ga, _ga_<id>)"``); without it, a glob or simple regex is described for them.
    display: str = ""
    domain: str | list[str] | None = None
    path: str = "/"
    third_party: bool = False
    partitioned: bool = False
    translations: dict[LanguageCode, CookieText] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_token(cls, v: str | None) -> str | None:
        if v is not None and not COOKIE_NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid cookie name")
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern_is_glob(cls, v: str | None) -> str | None:
        if v is not None:
            if not COOKIE_GLOB.fullmatch(v):
                raise ValueError(
                    f"{v!r} is not a valid cookie-name glob (token characters, * and ?)"
                )
            if "*" not in v and "?" not in v:
                raise ValueError(f"{v!r} has no wildcard: use name = {v!r} instead")
        return v

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v

    @field_validator("path")
    @classmethod
    def _path_absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("path must start with '/'")
        return v

    @model_validator(mode="after")
    def _exactly_one_matcher(self) -> CookieRule:
        given = [k for k in ("name", "pattern", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a cookie rule needs exactly one of 'name', 'pattern' or 'regex'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        label = self.label
        if label.startswith("__Host-"):
            if self.domains:
                raise ValueError("a __Host- cookie cannot have a Domain (RFC 6265bis 4.1.3.2)")
            if self.path != "/":
                raise ValueError("a __Host- cookie must have path = '/'")
        return self

    @property
    def label(self) -> str:
        """The rule as written: the name, the glob or the regex."""
        return self.name or self.pattern or self.regex or ""

    @property
    def kind(self) -> Literal["name", "pattern", "regex"]:
        if self.name is not None:
            return "name"
        return "pattern" if self.pattern is not None else "regex"

    @property
    def domains(self) -> tuple[str, ...]:
        if self.domain is None:
            return ()
        if isinstance(self.domain, str):
            return (self.domain,)
        return tuple(self.domain)

    def deletions(self, name: str, *, secure: bool) -> list[bytes]:
        """``Set-Cookie`` values that expire ``name`` (a cookie this rule covers) everywhere
        the rule says it lives; none for third-party cookies, which this site cannot touch."""
        if self.third_party:
            return []
        return deletion_variants(
            name, path=self.path, domains=self.domains, secure=secure, partitioned=self.partitioned
        )

    def compiled(self) -> re.Pattern[str]:
        """A regex matching exactly the names this rule covers."""
        if self.name is not None:
            return re.compile(re.escape(self.name))
        if self.pattern is not None:
            return re.compile(glob_to_regex(self.pattern), re.DOTALL)
        assert self.regex is not None
        return re.compile(self.regex)

    def text(self, language: str | None) -> CookieText:
        """Purpose and duration in ``language``, each falling back to the rule's own."""
        found = self.translations.get(language) if language else None
        if found is None:
            return CookieText(purpose=self.purpose, duration=self.duration, display=self.display)
        return CookieText(
            purpose=found.purpose or self.purpose,
            duration=found.duration or self.duration,
            display=found.display or self.display,
        )

    def canonical(self) -> dict[str, Any]:
        # (translations and display texts only when given: a rule without them keeps the
        # revision it had before they existed)
        data = self.model_dump(
            mode="json", exclude=set() if self.translations else {"translations"}
        )
        if not self.display:
            del data["display"]
        for text in data.get("translations", {}).values():
            if not text["display"]:
                del text["display"]
        return data


class CategoryText(_Model):
    """A translation of a category's visible text."""

    title: Annotated[str, Field(min_length=1)]
    description: Annotated[str, Field(min_length=1)]


class Category(_Model):
    """One ``<category>.toml`` file. The file stem is the category key."""

    key: str
    title: Annotated[str, Field(min_length=1)]
    description: Annotated[str, Field(min_length=1)]
    necessary: bool = False
    sale_or_share: bool = False
    order: int = 100
    consent_mode: list[str] = Field(default_factory=list)
    # Who else receives data through this category's cookies (GDPR Art. 13(1)(e) recipients):
    # shown in the declaration, recorded on every receipt.
    third_parties: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list
    )
    translations: dict[LanguageCode, CategoryText] = Field(default_factory=dict)
    cookies: list[CookieRule] = Field(default_factory=list)

    @field_validator("consent_mode")
    @classmethod
    def _known_types(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - CONSENT_MODE_TYPES)
        if unknown:
            raise ValueError(
                f"unknown Google Consent Mode type(s) {unknown}; known: {sorted(CONSENT_MODE_TYPES)}"
            )
        return v

    @model_validator(mode="after")
    def _necessary_not_sold(self) -> Category:
        if self.necessary and self.sale_or_share:
            raise ValueError(
                "a necessary category cannot be sale_or_share (it could not be refused)"
            )
        return self

    def text(self, language: str | None) -> CategoryText:
        if language and language in self.translations:
            return self.translations[language]
        return CategoryText(title=self.title, description=self.description)


def glob_to_regex(glob: str) -> str:
    """Translate a cookie-name glob (``*`` any run, ``?`` one character) to a regex that
    matches in time linear in the name's length (compile it with ``re.DOTALL``).

    The parts between stars are found left to right, each at its first place after the one
    before, and never tried elsewhere (atomic groups): the first place is always the best one,
    as a part has a fixed length. Only the last star can move, to put the last part at the end.
    A plain translation (``.*_.*_id``) tries every way of splitting the name instead, which
    takes minutes on a long name with many ``_``.
    """

    def literal(part: str) -> str:
        return "".join("." if ch == "?" else re.escape(ch) for ch in part)

    parts = glob.split("*")
    if len(parts) == 1:
        return literal(glob)
    first, *middle, last = parts
    return (
        literal(first)
        + "".join(f"(?>.*?{literal(part)})" for part in middle if part)
        + ".*"
        + literal(last)
    )


# --------------------------------------------------------------------------- the policy


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

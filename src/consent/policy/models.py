"""What the policy files may hold: the pydantic models of ``site.toml``, of a category file and
of its cookie rules, each field checked with a message an operator can act on.

A cookie rule also knows the names it covers (:meth:`CookieRule.compiled`, with
:func:`glob_to_regex`) and how to delete them. :mod:`consent.policy.loader` reads a directory
into these models.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..cookies import deletion_variants

CATEGORY_KEY = re.compile(r"[a-z][a-z0-9_-]*")
# Cookie names are RFC 6265 tokens; globs may add * and ?.
_TOKEN_CHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
COOKIE_NAME = re.compile(rf"[{_TOKEN_CHARS}]+")
COOKIE_GLOB = re.compile(rf"[{_TOKEN_CHARS}?]+")

#: The Google Consent Mode v2 consent types, in the order the banner's snippet names them.
CONSENT_MODE_TYPES: Final = (
    "ad_storage",
    "ad_user_data",
    "ad_personalization",
    "analytics_storage",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
)


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
        unknown = sorted(set(v).difference(CONSENT_MODE_TYPES))
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

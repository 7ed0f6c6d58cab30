"""Loading and validating the policy directory; the policy revision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consent.policy import PolicyError, load_policy

from .helpers import EXAMPLE_POLICY, copy_policy


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(directory)
    return info.value.errors


def append(path: Path, text: str) -> None:
    """Add TOML: tables at the end, top-level keys at the start (before any table)."""
    if text.lstrip().startswith("["):
        path.write_text(path.read_text() + text)
    else:
        path.write_text(text.lstrip() + path.read_text())


def test_example_policy_loads() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    assert policy.site.controller.name == "Lindenhof Clinic gGmbH"
    assert list(policy.optional) == ["analytics", "marketing", "preferences", "embedded"]
    assert policy.necessary == {"necessary"}
    assert policy.sale_or_share == {"marketing"}
    assert policy.site.consent_cookie.max_age == 182 * 86400
    assert policy.categories["analytics"].text("de").title == "Statistik"
    assert policy.categories["analytics"].text("it").title == "Analytics"
    assert len(policy.revision) == 64


def test_defaults_when_site_settings_omitted(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(
        'policy_url = "/p"\n[controller]\nname = "A"\nemail = "a@b.example"\n'
    )
    (tmp_path / "necessary.toml").write_text('title = "N"\ndescription = "d"\nnecessary = true\n')
    policy = load_policy(tmp_path)
    assert policy.site.undeclared == "block"
    assert policy.site.consent_cookie.lifetime_days == 182
    assert policy.site.consent_cookie.secure == "auto"
    assert policy.site.receipts.store == "sqlite:///consent.db"
    assert policy.site.receipts.ip == "truncate"


@pytest.mark.parametrize(
    ("file", "addition", "expected"),
    [
        (
            "marketing.toml",
            '\n[[cookies]]\nname = "stats_vid"\n',
            ["marketing.toml: cookies[3].name: 'stats_vid' is also declared in analytics.toml"],
        ),
        (
            "preferences.toml",
            '\n[[cookies]]\npattern = "stats_s*"\n',
            ["overlaps", "'stats_s*'", "stats_ses*"],
        ),
        (
            "analytics.toml",
            '\n[[cookies]]\nregex = "(unclosed"\n',
            ["analytics.toml: cookies[3].regex: invalid regular expression '(unclosed'"],
        ),
        ("analytics.toml", '\ncolour = "blue"\n', ["analytics.toml: colour: unknown key"]),
        (
            "necessary.toml",
            '\n[[cookies]]\nname = "__Host-x"\ndomain = "example.org"\n',
            ["necessary.toml: cookies[5]", "__Host- cookie cannot have a Domain"],
        ),
        (
            "analytics.toml",
            '\n[[cookies]]\nname = "a"\npattern = "b*"\n',
            ["analytics.toml: cookies[3]", "exactly one of 'name', 'pattern' or 'regex'"],
        ),
        (
            "embedded.toml",
            '\nconsent_mode = ["tracking_storage"]\n',
            ["embedded.toml: consent_mode:", "unknown"],
        ),
        ("site.toml", '\n[receipts]\nip = "full"\n', ["site.toml"]),
    ],
)
def test_broken_copies_fail_naming_file_and_field(
    tmp_path: Path, file: str, addition: str, expected: list[str]
) -> None:
    policy_dir = copy_policy(tmp_path)
    append(policy_dir / file, addition)
    joined = "\n".join(errors_of(policy_dir))
    for fragment in expected:
        assert fragment in joined


def test_bad_site_value(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / "site.toml"
    path.write_text(path.read_text().replace('undeclared = "block"', 'undeclared = "maybe"'))
    (error,) = errors_of(policy_dir)
    assert error.startswith("site.toml: undeclared: Input should be 'block' or 'allow'")


@pytest.mark.parametrize("value", ["0", "-1", "301", '"soon"'])
def test_bad_store_timeout(tmp_path: Path, value: str) -> None:
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / "site.toml"
    text = path.read_text()
    path.write_text(
        text.replace("retention_days = 1095", f"retention_days = 1095\ntimeout = {value}")
    )
    (error,) = errors_of(policy_dir)
    assert error.startswith("site.toml: receipts.timeout: "), error


def test_store_timeout_default_and_fractions(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    assert load_policy(policy_dir).site.receipts.timeout == 5.0
    path = policy_dir / "site.toml"
    path.write_text(
        path.read_text().replace("retention_days = 1095", "retention_days = 1095\ntimeout = 2.5")
    )
    assert load_policy(policy_dir).site.receipts.timeout == 2.5


def test_missing_title(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / "preferences.toml"
    path.write_text(path.read_text().replace('title = "Preferences"\n', ""))
    assert errors_of(policy_dir) == ["preferences.toml: title: Field required"]


def test_bad_category_file_name(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "Ad Tracking.toml").write_text('title = "x"\ndescription = "y"\n')
    errors = errors_of(policy_dir)
    assert len(errors) == 1
    assert errors[0].startswith(
        "Ad Tracking.toml: (file name): 'Ad Tracking' is not a valid category key"
    )


def test_invalid_toml_and_missing_site(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "site.toml").unlink()
    (policy_dir / "analytics.toml").write_text("title = \n")
    errors = errors_of(policy_dir)
    assert any(e.startswith("site.toml: (file): missing") for e in errors)
    assert any(e.startswith("analytics.toml: (file): not valid TOML") for e in errors)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    append(policy_dir / "analytics.toml", "\nfoo = 1\n")
    append(policy_dir / "marketing.toml", "\nbar = 2\n")
    errors = errors_of(policy_dir)
    assert any(e.startswith("analytics.toml: foo") for e in errors)
    assert any(e.startswith("marketing.toml: bar") for e in errors)


def test_errors_in_one_file_do_not_hide_or_invent_errors_across_files(tmp_path: Path) -> None:
    """The example of docs/policy.md: a file with an error still takes part in the checks
    across files (its valid rules, its necessary flag)."""
    policy_dir = copy_policy(tmp_path)
    append(policy_dir / "analytics.toml", '\n[[cookies]]\nregex = "(unclosed"\n')
    append(
        policy_dir / "necessary.toml",
        '\n[[cookies]]\nname = "__Host-x"\ndomain = "example.org"\n',
    )
    append(policy_dir / "marketing.toml", '\n[[cookies]]\nname = "stats_vid"\n')
    append(policy_dir / "embedded.toml", 'colour = "red"\n')
    assert errors_of(policy_dir) == [
        "analytics.toml: cookies[3].regex: invalid regular expression '(unclosed': "
        "missing ), unterminated subpattern at position 0",
        "embedded.toml: colour: unknown key (not allowed here)",
        "necessary.toml: cookies[5]: a __Host- cookie cannot have a Domain (RFC 6265bis 4.1.3.2)",
        "marketing.toml: cookies[3].name: 'stats_vid' is also declared in analytics.toml "
        "cookies[0]; a cookie belongs to exactly one category",
    ]


def test_an_unreadable_file_is_not_also_said_to_lack_a_necessary_category(
    tmp_path: Path,
) -> None:
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "necessary.toml").write_text("necessary = \n")
    errors = errors_of(policy_dir)
    assert [e.split(":")[0] for e in errors] == ["necessary.toml"]


def set_consent_cookie(policy_dir: Path, settings: str) -> None:
    """Replace the example's [consent_cookie] table with ``settings``."""
    site = policy_dir / "site.toml"
    head, _, rest = site.read_text().partition("[consent_cookie]\n")
    site.write_text(f"{head}[consent_cookie]\n{settings}\n\n[gpc]{rest.partition('[gpc]')[2]}")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ('name = "__Host-consent"', "only kept by browsers when Secure"),
        ('name = "__Secure-consent"\nsecure = "auto"', "only kept by browsers when Secure"),
        ('name = "__Host-consent"\nsecure = true\npath = "/shop"', "needs path = '/'"),
        (
            'name = "__Host-consent"\nsecure = true\ndomain = "example.org"',
            "cannot have a domain",
        ),
    ],
)
def test_a_prefixed_consent_cookie_name_needs_its_attributes(
    tmp_path: Path, settings: str, fragment: str
) -> None:
    policy_dir = copy_policy(tmp_path)
    set_consent_cookie(policy_dir, settings)
    assert any(
        e.startswith("site.toml: consent_cookie") and fragment in e for e in errors_of(policy_dir)
    ), errors_of(policy_dir)


def test_a_host_prefixed_consent_cookie_loads(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    set_consent_cookie(policy_dir, 'name = "__Host-consent"\nsecure = true')
    assert load_policy(policy_dir).site.consent_cookie.name == "__Host-consent"


def test_a_policy_without_the_newer_settings_keeps_the_revision_it_had(tmp_path: Path) -> None:
    """Declaring third parties and translating cookie texts are new; a policy that uses
    neither must keep its revision, or every visitor of a site that upgrades would be asked
    again. The value is the example policy's revision before the settings existed."""
    policy_dir = copy_policy(tmp_path)
    for path in policy_dir.glob("*.toml"):
        kept, skipping = [], False
        for line in path.read_text().splitlines(keepends=True):
            # cookie translations came later too: drop each [cookies.translations.xx] table
            skipping = line.startswith("[cookies.translations.") or (skipping and line.strip())
            if not skipping and not line.startswith("third_parties"):
                kept.append(line)
        path.write_text("".join(kept))
    # ... and the consent cookie's purpose as it was then
    necessary = policy_dir / "necessary.toml"
    text = necessary.read_text()
    now = text.split('name = "consent"\npurpose = "', 1)[1].split('"', 1)[0]
    text = text.replace(now, "Remembers your cookie choices (signed, no personal data).")
    # ... and the purposes that named frameworks and "cross-site request forgery" then
    session = "Keeps your form input between pages."
    assert text.count(session) == 2
    text = text.replace(
        session, "Keeps your form input between pages (Starlette, FastAPI, Litestar, Quart).", 1
    ).replace(session, "Keeps your form input between pages (Django).")
    text = text.replace(
        "forms against forged submissions from other sites.",
        "forms against cross-site request forgery.",
    )
    necessary.write_text(text)
    assert (
        load_policy(policy_dir).revision
        == "d8e8b89ee1e32fc1c2ad749f2bf436f51e9f2aaf6e5971c5d4f82cefbdda0df5"
    )
    assert load_policy(EXAMPLE_POLICY).revision != load_policy(policy_dir).revision


def test_a_display_text_changes_the_revision_only_where_it_is_given(tmp_path: Path) -> None:
    """``display`` is what visitors read for a rule: giving one changes the revision (like any
    visible text); a policy without it keeps its own, ``display = ""`` included."""
    before = load_policy(EXAMPLE_POLICY).revision
    policy_dir = copy_policy(tmp_path)
    analytics = policy_dir / "analytics.toml"
    text = analytics.read_text()
    rule = 'regex = "_ga(_[A-Z0-9]+)?"\n'
    assert rule in text
    analytics.write_text(text.replace(rule, rule + 'display = ""\n'))
    assert load_policy(policy_dir).revision == before
    analytics.write_text(text.replace(rule, rule + 'display = "Google Analytics cookies"\n'))
    with_display = load_policy(policy_dir).revision
    assert with_display != before
    ga = next(r for r in load_policy(policy_dir).categories["analytics"].cookies if r.regex)
    assert ga.text("de").display == "Google Analytics cookies"  # (no German one: the rule's own)
    translated = text.replace(
        '[cookies.translations.de]\npurpose = "Unterscheidet',
        '[cookies.translations.de]\ndisplay = "Cookies von Google Analytics"\npurpose = "Unterscheidet',
    )
    assert translated != text
    analytics.write_text(translated.replace(rule, rule + 'display = "Google Analytics cookies"\n'))
    assert load_policy(policy_dir).revision not in (before, with_display)
    ga = next(r for r in load_policy(policy_dir).categories["analytics"].cookies if r.regex)
    assert ga.text("de").display == "Cookies von Google Analytics"
    assert ga.text("fr").display == "Google Analytics cookies"


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45", "", "2026-1-5"])
def test_the_gpc_files_last_update_is_a_date(tmp_path: Path, value: str) -> None:
    policy_dir = copy_policy(tmp_path)
    site = policy_dir / "site.toml"
    text = site.read_text()
    start = text.index("last_update = ")
    end = text.index("\n", start)
    site.write_text(text[:start] + f'last_update = "{value}"' + text[end:])
    assert any(e.startswith("site.toml: gpc.last_update: ") for e in errors_of(policy_dir))


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("analytics.toml", "[translations.de]", "[translations.DE]"),
        ("analytics.toml", "[translations.de]", "[translations.de-AT]"),
        ("analytics.toml", "[cookies.translations.de]", "[cookies.translations.German]"),
    ],
)
def test_a_translation_is_keyed_by_a_lower_case_language_code(
    tmp_path: Path, file: str, old: str, new: str
) -> None:
    """Visitors' languages are matched by lower-case code: "DE" or "de-AT" would never be
    used, so they are errors, not silently ignored texts."""
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / file
    path.write_text(path.read_text().replace(old, new, 1))
    assert any("is not a language code" in e for e in errors_of(policy_dir)), errors_of(policy_dir)


def test_a_necessary_category_is_required(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "necessary.toml").unlink()
    assert any("no category has necessary = true" in e for e in errors_of(policy_dir))


# --------------------------------------------------------------------------- revision


def test_revision_stable_across_copies_and_whitespace(tmp_path: Path) -> None:
    base = load_policy(EXAMPLE_POLICY).revision
    policy_dir = copy_policy(tmp_path)
    # Reformat a file: other key order, extra blank lines and reflowed text.
    path = policy_dir / "preferences.toml"
    text = path.read_text()
    text = text.replace("order = 30\n", "").replace(
        'title = "Preferences"', 'order = 30\n\n\ntitle   =   "Preferences"'
    )
    text = text.replace("such as a larger font \\\nsize", "such as a larger font\n   size")
    path.write_text(text)
    assert load_policy(policy_dir).revision == base


def test_revision_stable_across_rule_order(tmp_path: Path) -> None:
    base = load_policy(EXAMPLE_POLICY).revision
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / "preferences.toml"
    text = path.read_text()
    head, _, rules = text.partition("[[cookies]]")
    first, second = rules.split("[[cookies]]")
    path.write_text(head + "[[cookies]]" + second + "\n[[cookies]]" + first)
    assert load_policy(policy_dir).revision == base


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("analytics.toml", "deleted after 13 months", "deleted after 14 months"),
        ("analytics.toml", 'title = "Statistik"', 'title = "Statistiken"'),
        ("marketing.toml", 'name = "px_uid"', 'name = "px_id"'),
        ("marketing.toml", 'duration = "90 days"', 'duration = "91 days"'),
        ("marketing.toml", "sale_or_share = true", "sale_or_share = false"),
        ("embedded.toml", 'pattern = "yt-remote-*"', 'pattern = "yt-remote*"'),
        ("site.toml", 'policy_url = "/cookie-policy"', 'policy_url = "/privacy"'),
        ("site.toml", 'name = "Lindenhof Clinic gGmbH"', 'name = "Lindenhof GmbH"'),
    ],
)
def test_revision_changes_with_any_text_or_rule(
    tmp_path: Path, file: str, old: str, new: str
) -> None:
    base = load_policy(EXAMPLE_POLICY).revision
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    assert load_policy(policy_dir).revision != base


def test_revision_changes_when_a_category_is_added(tmp_path: Path) -> None:
    base = load_policy(EXAMPLE_POLICY).revision
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "social.toml").write_text('title = "Social"\ndescription = "Share buttons."\n')
    assert load_policy(policy_dir).revision != base


def test_revision_ignores_operational_settings(tmp_path: Path) -> None:
    base = load_policy(EXAMPLE_POLICY).revision
    policy_dir = copy_policy(tmp_path)
    path = policy_dir / "site.toml"
    path.write_text(
        path.read_text().replace('store = "sqlite:///consent.db"', 'store = "memory://"')
    )
    assert load_policy(policy_dir).revision == base


def _with_policy_url(tmp_path: Path, value: str) -> Path:
    policy_dir = copy_policy(tmp_path)
    site = policy_dir / "site.toml"
    text = site.read_text()
    start = text.index("policy_url = ")
    end = text.index("\n", start)
    site.write_text(text[:start] + f"policy_url = {json.dumps(value)}" + text[end:])
    return policy_dir


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/cookies",
        "/\\evil.example/cookies",
        "\\\\evil.example",
        "https:evil.example",
        "https:///cookies",
        "cookie-policy",
        "ftp://example.org/cookies",
        "https://example.org/a b",
    ],
)
def test_the_policy_url_is_a_web_address_or_a_path_of_the_site(tmp_path: Path, value: str) -> None:
    """It is rendered as a link on the declaration page and in the form for visitors
    without JavaScript: nothing but an http(s) address or a path of the site may stand there."""
    (error,) = errors_of(_with_policy_url(tmp_path, value))
    assert error.startswith("site.toml: policy_url: "), error
    assert "http(s)" in error


@pytest.mark.parametrize(
    "value",
    [
        "/cookie-policy",
        "/",
        "/privacy?section=cookies#top",
        "https://example.org/cookies",
        "http://example.org",
    ],
)
def test_web_addresses_and_site_paths_are_policy_urls(tmp_path: Path, value: str) -> None:
    assert load_policy(_with_policy_url(tmp_path, value)).site.policy_url == value

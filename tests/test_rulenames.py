"""The human form of cookie rules (``consent.rulenames``): what visitors read for globs and
regexes, and where the rule as written stays for operators."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.policy import CookieRule, load_policy
from consent.rulenames import describe, rule_segments, segments_text

from .helpers import EXAMPLE_POLICY, copy_policy


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("pattern", "_ga*", ("rule_starting", {"prefix": "_ga"})),
        ("pattern", "*_id", ("rule_ending", {"suffix": "_id"})),
        ("pattern", "wp_*_login", ("rule_starting_ending", {"prefix": "wp_", "suffix": "_login"})),
        ("pattern", "*track*", ("rule_containing", {"part": "track"})),
        ("pattern", "ab?", ("rule_starting", {"prefix": "ab"})),
        (
            "regex",
            "_ga(_[A-Z0-9]+)?",
            ("rule_name_and_starting", {"name": "_ga", "prefix": "_ga_"}),
        ),
        ("regex", "_gac_(?:gb_)?[0-9]+", ("rule_starting", {"prefix": "_gac_"})),
        ("regex", r"_pk_id\.[0-9]+\.[a-f0-9]+", ("rule_starting", {"prefix": "_pk_id."})),
        ("regex", "^_hj[A-Za-z]+$", ("rule_starting", {"prefix": "_hj"})),
        ("regex", r"[a-z]{2}\d+_session", ("rule_ending", {"suffix": "_session"})),
        ("regex", r"_gid", ("rule_name", {"name": "_gid"})),
        ("regex", r"AMP_TOKEN{1}", ("rule_name", {"name": "AMP_TOKEN"})),
        ("regex", r"x[]\]]+y", ("rule_starting_ending", {"prefix": "x", "suffix": "y"})),
        # not one of the simple forms: described by nothing (the regex is shown)
        ("regex", "_ga|_gid", None),
        ("regex", "(?i)_ga", None),
        ("regex", r"_ga\b.*", None),
        ("regex", "(?=_ga).*", None),
        ("regex", "[a-z]+", None),
        ("regex", "(_ga", None),
    ],
)
def test_describe(kind: str, text: str, expected: object) -> None:
    assert describe(kind, text) == expected


@pytest.mark.parametrize(
    ("text", "covered", "not_covered"),
    [
        ("_ga(_[A-Z0-9]+)?", ["_ga", "_ga_ABC1"], ["_gax"]),
        (r"_pk_id\.[0-9]+\.[a-f0-9]+", ["_pk_id.1.ab"], ["_pk_ses.1.ab"]),
    ],
)
def test_every_name_a_regex_covers_fits_its_description(
    text: str, covered: list[str], not_covered: list[str]
) -> None:
    """A description may say more than the regex covers, never less: each covered name starts
    with the prefix it names (and the bare name is listed when the regex covers it)."""
    found = describe("regex", text)
    assert found is not None
    _, parts = found
    for name in covered:
        assert re.fullmatch(text, name)
        assert name.startswith(parts["prefix"]) or name == parts.get("name")
    for name in not_covered:
        assert not re.fullmatch(text, name)


def rule(**fields: object) -> CookieRule:
    return CookieRule.model_validate(fields)


def test_rule_segments_quote_the_name_parts() -> None:
    assert rule_segments(rule(name="_fbp"), "en") == [("_fbp", True)]
    assert rule_segments(rule(regex="_ga(_[A-Z0-9]+)?"), "fr") == [
        ("_ga", True),
        (" et les noms commençant par ", False),
        ("_ga_", True),
    ]
    # a regex without a description: shown as written, marked as a pattern
    assert rule_segments(rule(regex="_ga|_gid"), "de") == [("_ga|_gid", True), (" (Muster)", False)]
    given = rule(
        regex="_ga|_gid", display="Google Analytics", translations={"de": {"display": "GA"}}
    )
    assert segments_text(rule_segments(given, "en")) == "Google Analytics"
    assert segments_text(rule_segments(given, "de")) == "GA"
    # braces in a display text are text, not placeholders
    assert rule_segments(rule(pattern="x_*", display="{prefix}"), "en") == [("{prefix}", False)]


def test_the_declaration_page_shows_the_display_text_escaped(tmp_path: Path) -> None:
    policy = copy_policy(tmp_path)
    analytics = policy / "analytics.toml"
    text = analytics.read_text()
    analytics.write_text(
        text.replace(
            'regex = "_ga(_[A-Z0-9]+)?"\n', 'regex = "_ga(_[A-Z0-9]+)?"\ndisplay = "GA <b>"\n'
        )
    )
    assert load_policy(policy).revision != load_policy(EXAMPLE_POLICY).revision
    app = ConsentMiddleware(Starlette(), policy=policy, secret_key="k" * 32, store="memory://")
    with TestClient(app) as client:
        page = client.get("/_consent/declaration", headers={"Accept": "text/html"}).text
        data = client.get("/_consent/declaration?format=json").json()
        state = client.get("/_consent").json()
    assert "<td>GA &lt;b&gt;</td>" in page
    assert "_ga(_[A-Z0-9]+)?" not in page
    ga = [c for cat in data["categories"] for c in cat["cookies"] if c["match"] == "regex"]
    # operators still read the regex in the JSON declaration, next to what visitors read
    assert ga == [{**ga[0], "name": "_ga(_[A-Z0-9]+)?", "display": "GA <b>"}]
    banner = [c for cat in state["categories"] for c in cat["cookies"] if c["display"] == "GA <b>"]
    assert len(banner) == 1

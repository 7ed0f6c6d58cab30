"""The scanner's parts that need no browser: the policy rebuilt from a site's declaration, what
counts as the same site, the decisions planned, and draft rules."""

from __future__ import annotations

import tomllib

import pytest

from consent.catalog import lookup
from consent.classify import Classifier
from consent.declaration import declaration_data
from consent.policy import CookieRule, load_policy
from consent.scanner.model import plan
from consent.scanner.report import UNSORTED, Item, draft
from consent.scanner.site import DeclarationError, policy_from_declaration, same_site

from ..helpers import EXAMPLE_POLICY


def test_the_declaration_rebuilds_a_policy_that_classifies_as_the_sites() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    rebuilt = policy_from_declaration(declaration_data(policy))
    assert [k for k, _ in rebuilt.ordered()] == [k for k, _ in policy.ordered()]
    assert rebuilt.necessary == policy.necessary
    assert rebuilt.sale_or_share == policy.sale_or_share
    ours, theirs = Classifier(policy), Classifier(rebuilt)
    names = ["consent", "stats_ses_1", "_ga", "_ga_X1", "_gcl_aw", "yt-remote-x", "nope", "lang"]
    assert [theirs.classify(n) for n in names] == [ours.classify(n) for n in names]
    assert theirs.classify("_ga_X1") == "analytics"  # a regex rule survives the trip
    assert rebuilt.categories["embedded"].cookies[0].third_party is True


def test_a_declaration_that_is_not_one_is_named() -> None:
    data = declaration_data(load_policy(EXAMPLE_POLICY))
    del data["controller"]
    with pytest.raises(DeclarationError, match="controller"):
        policy_from_declaration(data)
    data = declaration_data(load_policy(EXAMPLE_POLICY))
    data["categories"][0]["cookies"][0]["match"] = "fuzzy"
    with pytest.raises(DeclarationError, match="unknown match 'fuzzy'"):
        policy_from_declaration(data)


@pytest.mark.parametrize(
    ("host", "site", "same"),
    [
        ("www.example.com", "www.example.com", True),
        ("example.com", "www.example.com", True),
        (".example.com", "www.example.com", True),  # a cookie's domain
        ("cdn.example.com", "www.example.com", True),
        ("cdn.example.com", "example.com", True),
        ("example.com", "shop.example.com", True),  # a parent domain of the site
        ("cdn.example.com", "shop.example.com", False),  # without the public-suffix list
        ("example.org", "example.com", False),
        ("badexample.com", "example.com", False),
        ("localhost", "127.0.0.1", False),
        ("0.0.1", "127.0.0.1", False),  # an address is only itself
    ],
)
def test_same_site(host: str, site: str, same: bool) -> None:
    assert same_site(host, site) is same


def test_the_decisions_planned() -> None:
    decisions = plan(["analytics", "marketing"], {"marketing"})
    assert [(d.name, sorted(d.granted), d.accept, d.gpc) for d in decisions] == [
        ("none", [], None, False),
        ("reject", [], [], False),
        ("analytics", ["analytics"], ["analytics"], False),
        ("marketing", ["marketing"], ["marketing"], False),
        ("all", ["analytics", "marketing"], "all", False),
        ("gpc", ["analytics"], "all", True),
    ]


def _rule(toml: str) -> CookieRule:
    (rule,) = tomllib.loads(toml)["cookies"]
    return CookieRule.model_validate(rule)


def test_draft_rules_are_valid_and_go_to_the_sites_own_category() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    item = Item("cookie", "_ga_4F2A", "shop.example", False, "script", {"none": "/"})
    made = draft(item, lookup(item.name), policy)
    assert (made.file, made.category) == ("analytics.toml", "analytics")
    rule = _rule(made.toml)
    assert rule.pattern == "_ga_*"
    assert rule.vendor == "Google Analytics"

    # a third-party cookie keeps its domain; an ambiguous name is not guessed
    item = Item("cookie", "token", ".adform.net", True, "server", {"none": "/"})
    made = draft(item, lookup("token"), policy)
    assert (made.file, made.category) == (UNSORTED, None)
    assert "# ambiguous:" in made.toml
    rule = _rule(made.toml)
    assert (rule.name, rule.domain, rule.third_party, rule.vendor) == (
        "token",
        ".adform.net",
        True,
        "",
    )


def test_a_storage_key_that_is_no_cookie_name_is_drafted_as_a_regex() -> None:
    item = Item("localStorage", "Site History", "https://shop.example", False, None, {"all": "/"})
    made = draft(item, lookup("Site History"), None)
    rule = _rule(made.toml)
    assert rule.regex == r"Site\ History"
    assert rule.compiled().fullmatch("Site History")
    assert made.file == "necessary.toml"  # Qualtrics, Functional
    assert "ePrivacy Art. 5(3)" in made.toml
    assert "not strictly necessary: check it" in made.toml

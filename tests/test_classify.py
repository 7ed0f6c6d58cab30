"""Cookie name -> category."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent.classify import Classifier
from consent.policy import load_policy

from .helpers import EXAMPLE_POLICY


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_policy(EXAMPLE_POLICY))


@pytest.mark.parametrize(
    ("name", "category"),
    [
        # exact names
        ("consent", "necessary"),
        ("sessionid", "necessary"),
        ("px_uid", "marketing"),
        ("VISITOR_INFO1_LIVE", "embedded"),
        # globs
        ("stats_ses", "analytics"),
        ("stats_ses_8f2a", "analytics"),
        ("_gcl_au", "marketing"),
        ("yt-remote-device-id", "embedded"),
        # regex, full match only
        ("_ga", "analytics"),
        ("_ga_Q2W3E4", "analytics"),
        ("_ga_lower", None),
        ("x_ga", None),
        # cookie prefixes: own rule first, then the unprefixed name
        ("__Host-lb", "necessary"),
        ("__Secure-lang", "preferences"),
        ("__Host-px_uid", "marketing"),
        ("__host-lang", None),
        # names are case-sensitive
        ("LANG", None),
        ("Consent", None),
        ("visitor_info1_live", None),
        # undeclared
        ("tracking", None),
        ("", None),
    ],
)
def test_classify(classifier: Classifier, name: str, category: str | None) -> None:
    assert classifier.classify(name) == category


def test_match_returns_the_rule(classifier: Classifier) -> None:
    found = classifier.match("_fbp")
    assert found is not None
    category, rule = found
    assert category == "marketing"
    assert rule.domains == (".lindenhof-clinic.example", "lindenhof-clinic.example")


def write_policy(tmp_path: Path, categories: dict[str, str]) -> Path:
    (tmp_path / "site.toml").write_text(
        'policy_url = "/p"\n[controller]\nname = "A"\nemail = "a@b.example"\n'
    )
    (tmp_path / "necessary.toml").write_text('title = "N"\ndescription = "d"\nnecessary = true\n')
    for key, body in categories.items():
        (tmp_path / f"{key}.toml").write_text(f'title = "{key}"\ndescription = "d"\n{body}')
    return tmp_path


def test_exact_name_beats_another_categorys_pattern(tmp_path: Path) -> None:
    policy = load_policy(
        write_policy(
            tmp_path,
            {
                "analytics": '[[cookies]]\npattern = "track_*"\n',
                "preferences": '[[cookies]]\nname = "track_theme"\n',
            },
        )
    )
    c = Classifier(policy)
    assert c.classify("track_theme") == "preferences"
    assert c.classify("track_id") == "analytics"


def test_user_regex_with_named_groups_still_classifies(tmp_path: Path) -> None:
    policy = load_policy(
        write_policy(
            tmp_path,
            {
                "analytics": '[[cookies]]\nregex = "(?P<p>ab)[0-9]+"\n',
                "marketing": '[[cookies]]\nregex = "(?P<p>cd)[0-9]+"\n',
            },
        )
    )
    c = Classifier(policy)
    assert c.classify("ab12") == "analytics"
    assert c.classify("cd12") == "marketing"
    assert c.classify("ab") is None


def test_many_distinct_names_stay_correct_beyond_the_cache(classifier: Classifier) -> None:
    for i in range(10_000):
        assert classifier.classify(f"stats_ses{i}") == "analytics"
        assert classifier.classify(f"junk{i}") is None
    assert classifier.classify("px_uid") == "marketing"

"""Cookie name -> category."""

from __future__ import annotations

import re
import warnings
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.classify import REGEX_NAME_LIMIT, Classifier, backtracking_risk
from consent.policy import glob_to_regex, load_policy

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


# --------------------------------------------------------------------------- hostile names


def test_a_regex_rule_with_a_backreference_matches_on_its_own_terms(tmp_path: Path) -> None:
    """Numbered groups are the rule's own: another rule before it does not shift them."""
    policy = load_policy(
        write_policy(
            tmp_path,
            {
                "analytics": '[[cookies]]\nregex = "(st)(at)s_[0-9]+"\n',
                "necessary": 'necessary = true\n[[cookies]]\nregex = "(sess)_([a-z]+)_\\\\2"\n',
            },
        )
    )
    c = Classifier(policy)
    assert c.classify("sess_eu_eu") == "necessary"
    assert c.classify("sess_eu_sess") is None
    assert c.classify("sess_eu_st") is None
    assert c.classify("stats_12") == "analytics"


def test_rules_keep_their_order_across_globs_and_regexes(tmp_path: Path) -> None:
    """The first rule that matches wins, in category order then file order, whether it is a
    glob or a regex."""
    policy = load_policy(
        write_policy(
            tmp_path,
            {
                "analytics": (
                    '[[cookies]]\nregex = "ab_[0-9]+"\n[[cookies]]\npattern = "ab_*"\n'
                    '[[cookies]]\nregex = "ab_x.*"\n'
                ),
            },
        )
    )
    rules = policy.categories["analytics"].cookies
    c = Classifier(policy)
    assert c.match("ab_12") == ("analytics", rules[0])
    assert c.match("ab_xy") == ("analytics", rules[1])


GLOBS = ["*_*_id", "*_*_*_*_id", "a*?*b*a", "*?_*", "x*y*z", "*", "?*", "*a", "a*", "**b**"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("glob", GLOBS)
def test_globs_match_long_hostile_names_like_fnmatch(tmp_path: Path, glob: str) -> None:
    """A glob with several ``*`` is matched in linear time: a name of 40 KB (or 1 MB) built to
    make a backtracking matcher try every way to split it is answered, and correctly."""
    policy = load_policy(
        write_policy(tmp_path, {"analytics": f'[[cookies]]\npattern = "{glob}"\n'})
    )
    c = Classifier(policy)
    for size in (40_000, 1_000_000) if glob == "*_*_*_*_id" else (40_000,):
        for name in (
            "_" * size,
            "_" * size + "id",
            "_" * size + "i",
            "ab" * (size // 2),
            "ab" * (size // 2) + "a",
            "x" + "y" * size + "z",
            "x" + "y" * size,
        ):
            # (fnmatch itself backtracks: it judges a short name of the same shape)
            expected = "analytics" if _short_match(name, glob) else None
            assert c.classify(name) == expected, (glob, name[:20], len(name))


def _short_match(name: str, glob: str) -> bool:
    """fnmatch on a name of the same shape, shortened: the same runs, each at most 8 long."""
    short = re.sub(r"(.)\1{8,}", lambda m: m.group(1) * 8, name)
    short = re.sub(r"(ab){8,}", "ab" * 8, short)
    return fnmatchcase(short, glob)


@given(
    glob=st.text(alphabet="ab_*?", min_size=1, max_size=8),
    name=st.text(alphabet="ab_", max_size=12),
)
def test_globs_match_what_fnmatch_matches(glob: str, name: str) -> None:
    assert (re.fullmatch(glob_to_regex(glob), name, re.DOTALL) is not None) == fnmatchcase(
        name, glob
    )


def test_names_longer_than_the_limit_are_not_matched_against_regexes(tmp_path: Path) -> None:
    """Past REGEX_NAME_LIMIT characters a name is not given to regex rules: undeclared (and
    blocked, by default) unless an exact name or a glob declares it."""
    policy = load_policy(
        write_policy(
            tmp_path,
            {
                "analytics": '[[cookies]]\nregex = "sess_[a-z]+"\n',
                "preferences": '[[cookies]]\npattern = "pref_*"\n',
            },
        )
    )
    c = Classifier(policy)
    longest = "sess_" + "a" * (REGEX_NAME_LIMIT - 5)
    assert c.classify(longest) == "analytics"
    assert c.classify(longest + "a") is None
    assert c.classify("pref_" + "a" * 100_000) == "preferences"


@pytest.mark.parametrize(
    ("regex", "risky"),
    [
        ("(a+)+b", True),
        ("(?:[a-z]+_?)*x", True),
        ("(a|ab)*c", True),
        (".*_.*_.*_id", True),
        ("(x.*){3}", True),
        ("_ga(_[A-Z0-9]+)?", False),
        ("[a-z]+_[0-9]+", False),
        (".*_id", False),
        ("sess_[a-f0-9]{32}", False),
        ("(sess)_([a-z]+)_\\2", False),
        ("[(+*]+", False),
        ("a\\(+b", False),
    ],
)
def test_regexes_that_can_backtrack_badly_are_found(regex: str, risky: bool) -> None:
    assert (backtracking_risk(regex) is not None) is risky


@given(st.text(alphabet="ab.*+?|(){}[]^\\,:P<>=!0123", max_size=16))
def test_the_backtracking_check_reads_any_regex(pattern: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ("possible set union" and the like)
            re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return
    risk = backtracking_risk(pattern)
    assert risk is None or "repet" in risk

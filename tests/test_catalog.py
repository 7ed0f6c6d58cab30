"""The known-cookie catalog: the shipped Open Cookie Database, its lookups, its category mapping,
``consent catalog``, ``consent check``'s warnings and the middleware's log line."""

from __future__ import annotations

import json
import logging
import string
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from consent import ConsentMiddleware
from consent.catalog import CATEGORY_KEYS, default_catalog, lookup
from consent.catalog.checks import necessary_warnings
from consent.catalog.mapping import site_category
from consent.policy import load_policy

from .helpers import EXAMPLE_POLICY, ROOT, copy_policy

KEY = "catalog-test-key-0123456789abcdefghij"


def consent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consent.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# --------------------------------------------------------------------------- the shipped data


def test_the_package_ships_the_database_its_license_and_a_notice() -> None:
    files = resources.files("consent.catalog")
    assert "Apache License" in (files / "LICENSE").read_text(encoding="utf-8")
    notice = (files / "NOTICE").read_text(encoding="utf-8")
    assert "Open Cookie Database" in notice
    assert "github.com/jkwakman/Open-Cookie-Database" in notice
    package_data = (ROOT / "pyproject.toml").read_text()
    for pattern in ("catalog/*.csv", "catalog/LICENSE", "catalog/NOTICE"):
        assert f'"{pattern}"' in package_data  # installed with the package, not only in a checkout


def test_every_row_is_read_with_its_category_mapped() -> None:
    catalog = default_catalog()
    # 2,264 rows, of which one repeats another with the same platform and category
    assert len(catalog.entries) == 2263
    assert {e.category for e in catalog.entries} == set(CATEGORY_KEYS)
    assert all(e.key == CATEGORY_KEYS[e.category] for e in catalog.entries)


@pytest.mark.parametrize(
    ("name", "word", "key", "platform"),
    [
        ("_ga", "Analytics", "analytics", "Google Analytics"),
        ("_fbp", "Marketing", "marketing", "Facebook"),
        ("PHPSESSID", "Functional", "necessary", "PHP.net"),
        ("XSRF-TOKEN", "Security", "necessary", ""),
        ("_rails_session", "Necessary", "necessary", "Ruby on Rails"),
        ("sidebarPinned", "Personalization", "preferences", "Salesforce"),
    ],
)
def test_categories_map_onto_the_policy_keys(name: str, word: str, key: str, platform: str) -> None:
    found = lookup(name)
    assert found is not None
    assert (found.catalog_category, found.category, found.vendor) == (word, key, platform)
    assert found.match == "exact"
    assert found.to_json()["source"] == "Open Cookie Database"


# --------------------------------------------------------------------------- lookups


def test_a_prefix_row_answers_names_that_begin_with_it() -> None:
    found = lookup("_ga_ABC123")
    assert found is not None
    assert (found.match, found.pattern, found.category) == ("prefix", "_ga_", "analytics")
    assert found.retention == "2 years"


def test_the_longest_prefix_row_wins() -> None:
    # AMP_ and AMP_MKTG_ are both prefix rows (Amplitude)
    assert lookup("AMP_MKTG_4f2a").pattern == "AMP_MKTG_"  # type: ignore[union-attr]
    assert lookup("AMP_4f2a").pattern == "AMP_"  # type: ignore[union-attr]


def test_an_exact_row_beats_a_prefix_row_of_the_same_name() -> None:
    # euconsent: an exact row (LiveRamp, Marketing) and a prefix row (ShareThis, Functional)
    exact = lookup("euconsent")
    assert exact is not None
    assert (exact.match, exact.vendor, exact.category) == ("exact", "LiveRamp", "marketing")
    longer = lookup("euconsent-x1")
    assert longer is not None
    assert (longer.match, longer.vendor, longer.category) == ("prefix", "ShareThis", "necessary")


@pytest.mark.parametrize(
    ("name", "platforms"),
    [
        ("token", {"Adform", "Xandr"}),
        ("chk", {"PubMatic", "Mediarithmics"}),
        ("dc", {"BetweenDigital", "Tailtarget"}),
    ],
)
def test_names_under_conflicting_categories_are_ambiguous(name: str, platforms: set[str]) -> None:
    found = lookup(name)
    assert found is not None
    assert found.ambiguous
    assert found.category is None  # not guessed
    assert {e.platform for e in found.entries} == platforms
    assert found.catalog_category in ("Marketing / Functional", "Functional / Marketing")
    assert found.summary().startswith("ambiguous:")
    assert found.to_json()["category"] is None


def test_rows_that_agree_are_not_ambiguous() -> None:
    found = lookup("u")  # three advertisers, all Marketing
    assert found is not None
    assert not found.ambiguous
    assert found.category == "marketing"
    assert found.vendor == "Totvs, Tailtarget, CreativeCDN"


def test_the_databases_quirks() -> None:
    # a name with a trailing tab, one with a soft hyphen, a "*" name marked exact
    assert lookup("ce_need_secure_cookie").vendor == "Crazy Egg"  # type: ignore[union-attr]
    assert lookup("logglytrackingsession").vendor == "Loggly"  # type: ignore[union-attr]
    sspr = lookup("SSPR_9f8e")
    assert sspr is not None
    assert (sspr.match, sspr.pattern) == ("prefix", "SSPR_")
    # names are case-sensitive, as browsers treat them
    assert lookup("_GA") is None
    assert lookup("no-such-cookie-anywhere") is None


def test_host_and_secure_prefixes_fall_back_to_the_bare_name() -> None:
    plain = lookup("_ga")
    assert lookup("__Secure-_ga") == plain
    assert lookup("__Host-_ga") == plain


def test_the_index_gives_the_answer_of_reading_every_row() -> None:
    """The bucketed index (a speed shortcut, benchmarks/catalog.py) agrees with the plain way."""
    catalog = default_catalog()
    names = set()
    for entry in catalog.entries:
        names |= {entry.name, entry.name + "x", entry.name[:-1], "__Host-" + entry.name}
        names |= {entry.name + c for c in string.digits[:3]}
    names |= {"", "a", "_", "zzzz", "__Secure-", "__Host-"}
    different = [n for n in sorted(names) if catalog.lookup(n) != catalog.lookup_by_scan(n)]
    assert different == []
    assert sum(catalog.lookup(n) is not None for n in names) > 4000  # the test looks at answers


def test_importing_the_middleware_does_not_load_the_catalog() -> None:
    code = (
        "import sys, consent, consent.middleware, consent.endpoints, consent.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('consent.catalog.database')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    # the CLI registers ``consent catalog`` (the module) but reads no data until a lookup
    assert done.stdout.strip() in ("[]", "['consent.catalog.database']")
    code = (
        "import sys, consent.middleware\n"
        "print(any(m.startswith('consent.catalog') for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------- a site's categories


def test_the_catalogs_keys_as_the_example_sites_categories() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    for key in ("necessary", "analytics", "marketing", "preferences"):
        assert site_category(policy, key) == key


def test_a_sites_own_category_names_by_synonym_and_by_consent_mode(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "analytics.toml").rename(policy_dir / "statistics.toml")
    (policy_dir / "necessary.toml").rename(policy_dir / "essential.toml")
    (policy_dir / "marketing.toml").rename(policy_dir / "campaigns.toml")  # ad_storage
    (policy_dir / "preferences.toml").unlink()
    policy = load_policy(policy_dir)
    assert site_category(policy, "analytics") == "statistics"
    assert site_category(policy, "necessary") == "essential"
    assert site_category(policy, "marketing") == "campaigns"
    assert site_category(policy, "preferences") is None


# --------------------------------------------------------------------------- consent catalog


def test_consent_catalog_prints_what_the_catalog_knows() -> None:
    done = consent("catalog", "_ga_X1Y2", "token", "PHPSESSID")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "_ga_X1Y2\n  Google Analytics: Analytics -> analytics (prefix '_ga_')" in out
    assert "token\n  ambiguous: the Open Cookie Database lists it under conflicting" in out
    assert "Adform: Marketing -> marketing" in out
    assert "Xandr: Functional -> necessary" in out
    # a Functional row says to check it before calling it necessary
    assert "PHPSESSID\n  PHP.net: Functional -> necessary (exact name)" in out
    assert "not strictly necessary: check it" in out


def test_consent_catalog_says_so_of_unknown_names_and_exits_1() -> None:
    done = consent("catalog", "_fbp", "our_own_cookie")
    assert done.returncode == 1
    assert "our_own_cookie\n  not in the Open Cookie Database" in done.stdout
    assert "_fbp\n  Facebook: Marketing -> marketing" in done.stdout


def test_consent_catalog_json() -> None:
    done = consent("catalog", "--format", "json", "_ga", "dc", "unknown_x")
    data = json.loads(done.stdout)
    assert list(data) == ["_ga", "dc", "unknown_x"]
    assert data["unknown_x"] is None
    ga = data["_ga"]
    assert {k: ga[k] for k in ("category", "catalog_category", "vendor", "retention")} == {
        "category": "analytics",
        "catalog_category": "Analytics",
        "vendor": "Google Analytics",
        "retention": "2 years",
    }
    assert ga["description"] == "ID used to identify users"
    assert data["dc"]["ambiguous"] is True
    assert data["dc"]["category"] is None
    assert len(data["dc"]["entries"]) == 2


def test_consent_catalog_needs_a_name() -> None:
    assert consent("catalog").returncode == 2


# --------------------------------------------------------------------------- consent check


def test_check_warns_of_a_necessary_rule_the_catalog_calls_marketing() -> None:
    done = consent("check", str(EXAMPLE_POLICY))
    assert done.returncode == 0
    assert (
        "warning: necessary.toml: cookies[2].name 'sessionid' is declared necessary, but the "
        "Open Cookie Database lists 'sessionid' as Marketing (Instagram)"
    ) in done.stdout
    assert "--ignore sessionid" in done.stdout
    assert done.stdout.rstrip().endswith("1 warning")


def test_check_strict_makes_warnings_exit_1_and_ignore_silences_one() -> None:
    assert consent("check", str(EXAMPLE_POLICY), "--strict").returncode == 1
    quiet = consent("check", str(EXAMPLE_POLICY), "--strict", "--ignore", "sessionid")
    assert quiet.returncode == 0, quiet.stdout
    assert "warning" not in quiet.stdout


def test_check_warns_of_a_necessary_glob_that_catches_analytics(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    analytics = policy_dir / "analytics.toml"
    analytics.write_text(
        analytics.read_text().replace('regex = "_ga(_[A-Z0-9]+)?"', 'name = "stats_x"')
    )
    necessary = policy_dir / "necessary.toml"
    necessary.write_text(
        necessary.read_text()
        + '\n[[cookies]]\npattern = "_ga*"\n\n[[cookies]]\nname = "token"\n'
        + '\n[[cookies]]\nname = "PHPSESSID"\n'
    )
    policy = load_policy(policy_dir)
    found = necessary_warnings(policy, ignore={"sessionid"})
    assert [(w.file, w.index, w.rule.label) for w in found] == [("necessary.toml", 5, "_ga*")]
    names = dict(found[0].matches)
    assert names["_ga"].vendor == "Google Analytics"
    assert names["_ga_"].match == "prefix"
    assert "'_ga' as Analytics (Google Analytics)" in found[0].message()
    # an ambiguous name (token) and a Functional one (PHPSESSID) are not held against the rule
    done = consent("check", str(policy_dir), "--strict", "--ignore", "sessionid")
    assert done.returncode == 1
    assert "necessary.toml: cookies[5].pattern '_ga*' is declared necessary" in done.stdout
    assert "token" not in done.stdout.split("cookie rules", 1)[1]


def test_a_starter_policy_has_no_warnings(tmp_path: Path) -> None:
    assert consent("init", str(tmp_path / "p")).returncode == 0
    done = consent("check", str(tmp_path / "p"), "--strict")
    assert done.returncode == 0, done.stdout
    assert "warning" not in done.stdout


# --------------------------------------------------------------------------- the middleware's log line


def _setting(*cookies: str) -> ConsentMiddleware:
    """The middleware on the example policy around an app that sets ``cookies``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"set-cookie", c.encode()) for c in cookies]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return ConsentMiddleware(app, policy=EXAMPLE_POLICY, secret_key=KEY, store="memory://")


def test_the_undeclared_cookie_log_line_names_the_catalogs_suggestion(
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = _setting("_hjid=1; Path=/", "_hjSessionUser_7=2", "token=3", "our_widget=4")
    client = TestClient(site)
    with caplog.at_level(logging.WARNING, logger="consent"):
        for _ in range(3):
            assert client.get("/").status_code == 200
    lines = sorted(r.getMessage() for r in caplog.records if "not declared" in r.getMessage())
    tail = "is not declared in the cookie policy; it is blocked (declare it in a category file); "
    assert lines == [
        f"cookie '_hjSessionUser_7' {tail}the Open Cookie Database knows it: Hotjar, "
        "Functional -> necessary, 365 days (prefix '_hjSessionUser_')",
        f"cookie '_hjid' {tail}the Open Cookie Database knows it: Hotjar, Analytics -> "
        "analytics, 365 days",
        f"cookie 'our_widget' {tail}the Open Cookie Database does not know it",
        f"cookie 'token' {tail}the Open Cookie Database lists it under conflicting "
        "categories: Adform (Marketing), Xandr (Functional)",
    ]


def test_the_request_path_reads_the_catalog_only_to_write_a_log_line() -> None:
    code = f"""
import asyncio, sys
from consent import ConsentMiddleware

async def app(scope, receive, send):
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b""}})

site = ConsentMiddleware(app, policy={str(EXAMPLE_POLICY)!r}, secret_key={KEY!r}, store="memory://")

async def receive():
    return {{"type": "http.request", "body": b""}}

async def send(message):
    pass

def get(cookie):
    headers = [(b"host", b"testserver"), (b"cookie", cookie)]
    scope = {{"type": "http", "method": "GET", "scheme": "http", "path": "/", "root_path": "",
              "query_string": b"", "headers": headers}}
    asyncio.run(site(scope, receive, send))

get(b"stats_vid=1; csrftoken=2")
print(any(m.startswith("consent.catalog") for m in sys.modules))
get(b"_hjid=1")
get(b"_hjid=2")
from consent.catalog import default_catalog
print(default_catalog.cache_info().currsize)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    # declared cookies only: the catalog was not even imported; an undeclared one: read once,
    # for the one line written (no logging configured: Python prints it to stderr)
    assert done.stdout.split() == ["False", "1"]
    assert done.stderr.count("not declared") == 1
    assert "'_hjid'" in done.stderr
    assert "Hotjar, Analytics -> analytics" in done.stderr

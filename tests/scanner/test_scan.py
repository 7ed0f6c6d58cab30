"""``consent scan`` against real sites served by uvicorn, in Debian's Chromium.

The shop (``site.py``) runs ConsentMiddleware with the policy beside it; the scanner decides
through the shop's own banner. Its two leaks are scripts the middleware cannot see: an
undeclared cookie set before any decision, and a marketing cookie set on any decision.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consent.classify import Classifier
from consent.policy import load_policy

from ..browser.conftest import require_chromium
from .site import POLICY

require_chromium()
pytestmark = pytest.mark.browser

DECISIONS = ["none", "reject", "analytics", "marketing", "all", "gpc"]
# Two pages per decision, the six decisions at once: enough to see what each does.
FAST = ("--pages", "2", "--jobs", "6")


def consent(*args: str, stderr: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consent.cli", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        check=False,
        timeout=180,
    )


def runs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["decision"]: d for d in report["decisions"]}


def cookies(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in run["cookies"]}


@pytest.fixture(scope="module")
def leaky(leaky_shop: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The leaking shop scanned once: exit status, JSON report, the drafts directory."""
    out = tmp_path_factory.mktemp("scan")
    done = consent(
        "scan",
        leaky_shop + "/",
        *FAST,
        "--format",
        "json",
        "--output",
        str(out / "report.json"),
        "--draft",
        str(out / "drafts"),
    )
    return {
        "code": done.returncode,
        "stderr": done.stderr,
        "stdout": done.stdout,
        "report": json.loads((out / "report.json").read_text()),
        "drafts": out / "drafts",
        "base": leaky_shop,
    }


# --------------------------------------------------------------------------- the leaking shop


def test_every_decision_is_made_through_the_sites_banner(leaky: dict[str, Any]) -> None:
    report = leaky["report"]
    assert leaky["code"] == 1, leaky["stderr"]
    assert "1 undeclared; report in" in leaky["stderr"]
    assert leaky["stdout"] == ""  # the report went to --output
    assert set(report) >= {"url", "decisions", "violations", "undeclared", "stale"}
    assert report["url"] == leaky["base"] + "/"
    assert report["consent"] == {"prefix": "/_consent", "banner": True}
    assert report["policy"]["source"] == "declaration"
    assert [d["decision"] for d in report["decisions"]] == DECISIONS
    made = {d["decision"]: (d["via"], d["granted"], d["gpc"]) for d in report["decisions"]}
    assert made["none"] == (None, [], False)
    assert made["reject"] == ("banner", [], False)
    assert made["analytics"] == ("banner", ["analytics"], False)
    assert made["all"] == ("banner", ["analytics", "marketing"], False)
    # Global Privacy Control refuses the sale-or-share category whatever is accepted
    assert made["gpc"] == ("banner", ["analytics"], True)
    for run in report["decisions"]:
        assert [p["url"] for p in run["pages"]] == [
            leaky["base"] + path for path in ("/", "/about")
        ]
        assert all(p["status"] == 200 for p in run["pages"])
        if run["decision"] != "none":  # the consent cookie the banner's decision brought
            assert cookies(run)["consent"]["http_only"] is True


def test_an_ungated_script_cookie_is_an_undeclared_violation_before_consent(
    leaky: dict[str, Any],
) -> None:
    report = leaky["report"]
    violations = {v["name"]: v for v in report["violations"]}
    hjid = violations["_hjid"]
    assert hjid["category"] is None
    assert hjid["domain"] == "127.0.0.1"
    assert hjid["set_by"] == "script"
    assert {"none", "reject"} <= set(hjid["decisions"])
    seen = {s["decision"]: s["page"] for s in hjid["seen"]}
    assert seen["none"] == seen["reject"] == leaky["base"] + "/"

    (undeclared,) = report["undeclared"]
    assert (undeclared["name"], undeclared["domain"]) == ("_hjid", "127.0.0.1")
    assert {"none", "reject"} <= set(undeclared["decisions"])
    suggestion = undeclared["suggestion"]
    assert {k: suggestion[k] for k in ("category", "vendor", "retention", "source")} == {
        "category": "analytics",
        "vendor": "Hotjar",
        "retention": "365 days",
        "source": "Open Cookie Database",
    }
    assert "Hotjar" in suggestion["description"]
    assert undeclared["draft"]["file"] == "analytics.toml"
    assert 'name = "_hjid"' in undeclared["draft"]["toml"]


def test_the_draft_rule_makes_the_policy_declare_the_cookie(
    leaky: dict[str, Any], tmp_path: Path
) -> None:
    drafts = sorted(p.name for p in leaky["drafts"].iterdir())
    assert drafts == ["analytics.toml"]
    policy_dir = tmp_path / "policy"
    shutil.copytree(POLICY, policy_dir)
    analytics = policy_dir / "analytics.toml"
    draft = (leaky["drafts"] / "analytics.toml").read_text()
    analytics.write_text(analytics.read_text() + "\n" + draft)
    policy = load_policy(policy_dir)
    assert Classifier(policy).classify("_hjid") == "analytics"
    assert policy.categories["analytics"].cookies[-1].vendor == "Hotjar"


def test_a_gated_analytics_script_is_no_violation_under_analytics_or_all(
    leaky: dict[str, Any],
) -> None:
    report = leaky["report"]
    by = runs(report)
    for decision in ("analytics", "all", "gpc"):
        found = cookies(by[decision])
        assert found["stats_ses"]["set_by"] == "script"
        assert found["stats_ses"]["category"] == "analytics"
        assert found["visit_id"]["set_by"] == "server"  # let through by the middleware
        keys = {(s["kind"], s["key"], s["category"]) for s in by[decision]["storage"]}
        assert keys == {("localStorage", "stats_last", "analytics")}
    for decision in ("none", "reject", "marketing"):
        assert not {"stats_ses", "visit_id"} & set(cookies(by[decision]))
        assert by[decision]["storage"] == []
    assert {"stats_ses", "visit_id", "stats_last", "basket"}.isdisjoint(
        v["name"] for v in report["violations"]
    )
    basket = cookies(by["none"])["basket"]
    assert (basket["category"], basket["set_by"], basket["http_only"]) == (
        "necessary",
        "server",
        True,
    )
    assert basket["expires"] is None  # a session cookie


def test_a_marketing_cookie_under_global_privacy_control_is_a_violation(
    leaky: dict[str, Any],
) -> None:
    violations = {v["name"]: v for v in leaky["report"]["violations"]}
    fbp = violations["_fbp"]
    assert fbp["category"] == "marketing"
    # set on any decision: allowed only where marketing was granted without the signal
    assert fbp["decisions"] == ["reject", "analytics", "gpc"]


def test_stale_rules_and_third_party_hosts_before_consent(leaky: dict[str, Any]) -> None:
    report = leaky["report"]
    assert [(s["file"], s["kind"], s["rule"]) for s in report["stale"]] == [
        ("analytics.toml", "pattern", "_pk_id*")
    ]
    before = [(t["decision"], t["host"]) for t in report["third_party_before_consent"]]
    assert before == [("none", "localhost"), ("reject", "localhost")]
    assert runs(report)["none"]["third_party_hosts"] == ["localhost"]


# --------------------------------------------------------------------------- the shop, fixed


def test_with_the_leaks_removed_the_scan_exits_0(shop: str) -> None:
    done = consent("scan", shop + "/", *FAST, "--policy", str(POLICY))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.startswith(f"Scan of {shop}/\n  policy     {POLICY} (revision ")
    assert "  consent    banner and endpoint at /_consent\n" in out
    assert "Violations: none\n" in out
    assert "Undeclared: none\n" in out
    assert "analytics.toml  pattern  _pk_id*" in out
    # reported, but not failing the scan without --strict
    assert "Third-party hosts before consent: 2\n  localhost (under none, from /)" in out
    assert out.endswith("Result: 0 violations, 0 undeclared -> exit 0\n")
    assert "scan: none: page" not in done.stderr  # no progress lines when not on a terminal


def test_strict_fails_on_third_party_hosts_before_consent(shop: str) -> None:
    done = consent(
        "scan", shop + "/", "--pages", "1", "--jobs", "6", "--strict", "--format", "json"
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["violations"] == report["undeclared"] == []
    assert {t["host"] for t in report["third_party_before_consent"]} == {"localhost"}


# --------------------------------------------------------------------------- a site without us


def test_a_site_without_the_banner_is_scanned_without_a_decision(
    plain_site: str, tmp_path: Path
) -> None:
    done = consent("scan", plain_site + "/", "--draft", str(tmp_path / "drafts"))
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "no banner or consent endpoint found: only 'none' was scanned" in out
    assert "Violations: none" in out  # without a policy nothing can be judged...
    assert "Undeclared: 5" in out  # ...but everything is listed, with the catalog's word
    assert "_ga on 127.0.0.1, seen under none\n    catalog: Google Analytics, Analytics" in out
    assert "shop_cart on 127.0.0.1, seen under none\n    catalog: not known" in out
    assert "ab_variant (localStorage) on " in out
    assert 'pattern = "_hjSessionUser_*"' in out
    drafts = {p.name: p.read_text() for p in (tmp_path / "drafts").iterdir()}
    assert sorted(drafts) == ["analytics.toml", "necessary.toml", "unsorted.toml"]
    # a Functional row drafted into necessary says to check it
    assert "not strictly necessary: check it" in drafts["necessary.toml"]
    assert 'name = "PHPSESSID"' in drafts["necessary.toml"]
    assert 'name = "shop_cart"' in drafts["unsorted.toml"]


def test_a_site_without_the_banner_as_json_with_progress_on_a_terminal(plain_site: str) -> None:
    leader, follower = pty.openpty()
    try:
        done = consent("scan", plain_site + "/", "--format", "json", stderr=follower)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: everything is read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 1
    lines = shown.decode().splitlines()
    assert "scan: decisions: none" in lines
    assert f"scan: none: page 1/10 {plain_site}/" in lines
    assert f"scan: none: page 2/10 {plain_site}/help" in lines

    report = json.loads(done.stdout)
    assert [d["decision"] for d in report["decisions"]] == ["none"]
    assert report["consent"] == {"prefix": None, "banner": False}
    assert report["policy"]["source"] is None
    found = cookies(report["decisions"][0])
    assert found["PHPSESSID"]["set_by"] == "server"
    assert found["_ga"]["set_by"] == "script"
    suggestions = {u["name"]: u["suggestion"] for u in report["undeclared"]}
    assert suggestions["shop_cart"] is None
    assert suggestions["_hjSessionUser_4711"]["match"] == "prefix"
    assert suggestions["_hjSessionUser_4711"]["catalog_category"] == "Functional"


# --------------------------------------------------------------------------- what stops a scan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_an_unreachable_site_exits_2_naming_the_url_and_why() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    done = consent("scan", url)
    assert done.returncode == 2
    assert done.stderr == f"consent scan: cannot scan {url}: net::ERR_CONNECTION_REFUSED\n"
    assert done.stdout == ""


def test_a_start_page_that_answers_an_error_exits_2(shop: str) -> None:
    done = consent("scan", shop + "/nowhere")
    assert done.returncode == 2
    assert f"cannot scan {shop}/nowhere: the site answered 404 Not Found" in done.stderr


def test_no_browser_exits_2_saying_how_to_install_one(tmp_path: Path) -> None:
    done = consent("scan", "http://127.0.0.1:9/", "--browser", str(tmp_path / "chromium"))
    assert done.returncode == 2
    assert f"no browser at {tmp_path / 'chromium'}" in done.stderr
    assert "apt-get install chromium" in done.stderr


def test_a_browser_that_does_not_start_exits_2() -> None:
    done = consent("scan", "http://127.0.0.1:9/", "--browser", shutil.which("true") or "/bin/true")
    assert done.returncode == 2
    assert "cannot start the browser" in done.stderr


def test_without_playwright_the_scan_says_how_to_install_it() -> None:
    # An interpreter in which ``import playwright`` fails, as where the [scan] extra is missing.
    code = (
        "import sys; sys.modules['playwright'] = None\n"
        "from consent.cli import main\n"
        "sys.exit(main(['scan', 'http://127.0.0.1:9/']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 2
    assert "consent scan needs Playwright: pip install 'asgi-consent[scan]'" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("ftp://example.org/",),
        ("example.org",),
        ("http://127.0.0.1:9/", "--pages", "0"),
        ("http://127.0.0.1:9/", "--format", "pdf"),
        ("http://127.0.0.1:9/", "--policy", "/nonexistent/policy"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    done = consent("scan", *args)
    assert done.returncode == 2
    assert done.stderr

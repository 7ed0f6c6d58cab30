"""The ``consent`` command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from consent.policy import load_policy

from .helpers import EXAMPLE_POLICY, consent_with_reader_gone, copy_policy


def consent(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consent.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=60,
    )


def test_help_lists_every_command() -> None:
    result = consent("--help")
    assert result.returncode == 0
    for command in ("init", "check", "declaration"):
        assert command in result.stdout


def test_no_command_is_usage_error() -> None:
    assert consent().returncode == 2
    assert consent("frobnicate").returncode == 2
    assert consent("declaration", str(EXAMPLE_POLICY), "--format", "pdf").returncode == 2


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """``consent check DIR | head -1``: the pipe is closed before the command writes."""
    assert consent_with_reader_gone("check", str(EXAMPLE_POLICY)) == (141, b"")


def test_a_declaration_in_a_language_the_policy_lacks_says_so(tmp_path: Path) -> None:
    target = tmp_path / "policy"
    assert consent("init", str(target)).returncode == 0
    done = consent("declaration", str(target), "--language", "fr")
    assert done.returncode == 0
    assert done.stdout.startswith("# Déclaration relative aux cookies")  # the page's own words
    assert "the policy has no 'fr' texts" in done.stderr  # ...around the policy's English


def test_init_writes_a_valid_policy(tmp_path: Path) -> None:
    target = tmp_path / "policy"
    result = consent("init", str(target))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in target.iterdir())
    assert names == [
        "analytics.toml",
        "embedded.toml",
        "marketing.toml",
        "necessary.toml",
        "preferences.toml",
        "site.toml",
    ]
    policy = load_policy(target)
    assert "basic functions" in policy.categories["necessary"].description
    assert "consent" in policy.categories["analytics"].description
    assert consent("check", str(target)).returncode == 0
    # A second init into the now non-empty directory refuses without --force.
    assert consent("init", str(target)).returncode == 2
    assert consent("init", str(target), "--force").returncode == 0


def test_check_prints_the_table() -> None:
    result = consent("check", str(EXAMPLE_POLICY))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "stats_ses*" in result.stdout
    assert "5 categories, 15 cookie rules" in result.stdout
    assert "shared with: Google (YouTube)" in result.stdout  # embedded's third parties


def test_check_invalid_names_file_and_field(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "marketing.toml").write_text(
        (policy_dir / "marketing.toml").read_text() + '\n[[cookies]]\nregex = "[oops"\n'
    )
    result = consent("check", str(policy_dir))
    assert result.returncode == 1
    assert "marketing.toml: cookies[3].regex: invalid regular expression" in result.stderr
    assert consent("check", str(tmp_path / "nowhere")).returncode == 1


def test_check_warns_about_regexes_that_can_backtrack_badly(tmp_path: Path) -> None:
    policy_dir = copy_policy(tmp_path)
    (policy_dir / "marketing.toml").write_text(
        (policy_dir / "marketing.toml").read_text() + '\n[[cookies]]\nregex = "(ad_[a-z]+)+"\n'
    )
    result = consent("check", str(policy_dir))
    assert result.returncode == 0, result.stderr  # a warning, not a finding
    assert "valid" in result.stdout
    (warning,) = [
        line for line in result.stdout.splitlines() if line.startswith("warning: marketing")
    ]
    assert "marketing.toml: cookies[3].regex: '(ad_[a-z]+)+'" in warning
    assert "nested quantifiers" in warning
    assert "256 characters" in warning
    assert ".regex:" not in consent("check", str(EXAMPLE_POLICY)).stdout


def test_declaration_formats(tmp_path: Path) -> None:
    md = consent("declaration", str(EXAMPLE_POLICY))
    assert md.returncode == 0
    assert "## Analytics (only with your consent)" in md.stdout
    assert "| `px_uid` | AdPixel Networks |" in md.stdout

    german = consent("declaration", str(EXAMPLE_POLICY), "--language", "de").stdout
    assert german.startswith("# Cookie-Erklärung\n")
    assert "| Name | Anbieter | Zweck | Speicherdauer |" in german
    assert "## Statistik (nur mit Ihrer Einwilligung)" in german
    assert "Weitergegeben an: AdPixel Networks, Meta Platforms, Google Ads." in german

    french = consent("declaration", str(EXAMPLE_POLICY), "--language", "fr")
    assert "Version de la politique\u00a0: `" in french.stdout  # French puts a space before ":"
    # operators read the rule as written, and what visitors read for it
    assert "`stats_ses*` (motif: noms commençant par `stats_ses`)" in french.stdout
    assert "`_ga(_[A-Z0-9]+)?` (motif: `_ga` et les noms commençant par `_ga_`)" in french.stdout
    assert french.stderr == ""

    html = consent("declaration", str(EXAMPLE_POLICY), "--format", "html")
    assert '<h2 id="category-marketing">Marketing' in html.stdout
    assert "<td><code>stats_vid</code></td>" in html.stdout

    out = tmp_path / "decl.json"
    js = consent(
        "declaration", str(EXAMPLE_POLICY), "--format", "json", "--language", "de", "-o", str(out)
    )
    assert js.returncode == 0
    data = json.loads(out.read_text())
    assert [c["key"] for c in data["categories"]] == [
        "necessary",
        "analytics",
        "marketing",
        "preferences",
        "embedded",
    ]
    assert data["categories"][1]["title"] == "Statistik"
    assert data["categories"][1]["cookies"][1] == {
        "name": "stats_ses*",
        "match": "pattern",
        "display": "Namen, die mit stats_ses beginnen",
        "vendor": "Lindenhof Clinic (first party)",
        "purpose": "Fasst die Seitenaufrufe eines Besuchs zusammen (vom Statistik-Skript gesetzt).",
        "duration": "30 Minuten",
        "domain": [],
        "path": "/",
        "third_party": False,
    }
    assert data["revision"] == load_policy(EXAMPLE_POLICY).revision


def test_demo_with_a_store_url_no_backend_understands_is_a_usage_error() -> None:
    result = consent("demo", "--store", "bogus://x", "--port", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "asgi-consent cannot start: unsupported receipt store URL 'bogus://x'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "demo: http://" not in result.stdout  # never served

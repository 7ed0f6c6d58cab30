"""Every benchmark script still runs: ``--quick`` mode, as a subprocess.

Only that it completes and prints its table; speed is measured on demand with the scripts
themselves (docs/performance.md), never asserted in a test.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys

import pytest

from .helpers import ROOT
from .pg import find_bindir

# (script, extra arguments) -> a word its table must show
SCRIPTS = {
    ("append.py", ()): "uuid7",
    ("archive_check.py", ()): "2,000",
    ("hot_path.py", ()): "consent-noinject",
    ("hot_path.py", ("--context",)): "replay + other work",
    ("hot_path.py", ("--bytecodes",)): "scan_start",
    ("hot_path.py", ("--visitors", "1,50")): "50",
    ("html_path.py", ()): "2 MB",
    ("memory_burst.py", ()): "consent-value",
    ("classify_hostile.py", ()): "*_*_*_*_id",
    ("decisions.py", ()): "sqlite x1 workers",
    ("decisions.py", ("--only", "postgres-2")): "postgres x2 workers",
    ("audit.py", ()): "verify-store",
    ("catalog.py", ()): "indexed",
}


@pytest.mark.parametrize(
    ("script", "extra"), sorted(SCRIPTS), ids=[" ".join((s, *a)) for s, a in sorted(SCRIPTS)]
)
def test_benchmark_runs_quick(script: str, extra: tuple[str, ...]) -> None:
    if script == "decisions.py" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    if "postgres-2" in extra and find_bindir() is None:
        pytest.skip("no PostgreSQL server binaries")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("|--") for line in lines), result.stdout
    word = SCRIPTS[script, extra]
    assert any(line.startswith("|") and word in line for line in lines), result.stdout


def test_decisions_ratio_skips_a_round_without_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy machine a one-second wrk round can end before any request is answered
    (0 requests/s, and no error): that round has no decisions/echo ratio, instead of a
    division by zero that ends the benchmark."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    decisions = importlib.import_module("decisions")
    assert decisions.throughput_ratios([500.0, 600.0], [0.0, 400.0]) == "1.50 / 1.50 / 1.50"
    assert decisions.throughput_ratios([500.0], [0.0]) == "-"

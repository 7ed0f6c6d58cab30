"""Shared test helpers (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "examples" / "policy"


def copy_policy(tmp_path: Path, name: str = "policy") -> Path:
    """A private, editable copy of the example policy."""
    target = tmp_path / name
    shutil.copytree(EXAMPLE_POLICY, target)
    return target

"""Shared fixtures; framework tests skip with a reason only outside CI (in CI they must run)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lrscope.lab.linreg import make_data

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def needs(module: str) -> pytest.MarkDecorator:
    """Skip when ``module`` is missing, except in CI, where a missing framework is a failure."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing and not IN_CI, reason=f"{module} is not installed")


def run_benchmark_smoke(script: str, out: Path) -> str:
    """Run ``benchmarks/<script> --smoke --out <out>`` from the repo root; return the table."""
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--smoke", "--out", str(out)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out.read_text()


@pytest.fixture
def lesson_data():
    return make_data()

"""Shared fixtures; framework tests skip with a reason only outside CI (in CI they must run)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from lrscope.lab.linreg import make_data

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def needs(module: str) -> pytest.MarkDecorator:
    """Skip when ``module`` is missing, except in CI, where a missing framework is a failure."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing and not IN_CI, reason=f"{module} is not installed")


@pytest.fixture
def lesson_data():
    return make_data()

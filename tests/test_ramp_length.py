"""The range-test-length benchmark: its regret arithmetic by hand, and its smoke run's table."""

import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import run_benchmark_smoke

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ramp_length import (  # noqa: E402
    DEFAULT_VARIANT,
    FACTORS,
    LENGTHS,
    LONG_DEFAULT,
    RULES,
    summarize,
    variant,
)


def test_summarize_regrets_spread_and_ratio_by_hand():
    # Grid LRs 0.1 and 1.0; budget 10. Seed 0's best is 1.0 (score 2), seed 1's 0.1 (score 4);
    # mean scores per grid LR: (5, 3) -> the best fixed LR is 1.0 with mean score 3.
    task = SimpleNamespace(budgets=(10,), grid=np.array([0.1, 1.0]))
    seeds = [
        {"grid": {10: np.array([6.0, 2.0])}, "lr": {"v": 0.5}, "score": {"v": {10: 3.0}}},
        {"grid": {10: np.array([4.0, 4.0])}, "lr": {"v": 5.0}, "score": {"v": {10: 6.0}}},
    ]
    out = summarize(task, seeds)["v"]
    assert out["spread"] == pytest.approx(1.0)  # log10(5.0 / 0.5)
    cell = out["budgets"][10]
    assert cell["worst"] == pytest.approx(max(3.0 / 2.0, 6.0 / 4.0))
    assert cell["mean"] == pytest.approx(((3.0 + 6.0) / 2) / 3.0)
    # geometric median of (0.5, 5.0) = sqrt(2.5); grid-best of the mean scores = 1.0
    assert cell["log_ratio"] == pytest.approx(math.log10(math.sqrt(2.5)))


def test_summarize_a_seed_without_an_answer_is_an_infinite_spread_and_regret():
    task = SimpleNamespace(budgets=(10,), grid=np.array([0.1, 1.0]))
    seeds = [
        {"grid": {10: np.array([6.0, 2.0])}, "lr": {"v": 0.5}, "score": {"v": {10: 3.0}}},
        {"grid": {10: np.array([4.0, 4.0])}, "lr": {"v": None}, "score": {"v": {10: math.inf}}},
    ]
    out = summarize(task, seeds)["v"]
    assert math.isinf(out["spread"])
    assert math.isinf(out["budgets"][10]["worst"]) and math.isinf(out["budgets"][10]["mean"])


@pytest.mark.slow
def test_smoke_run_writes_every_variant_once(tmp_path):
    text = run_benchmark_smoke("bench_ramp_length.py", tmp_path / "ramp_length.md")
    assert "- machine:" in text and "- command:" in text and "- date:" in text
    table = text.split("## Every variant", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    names = [re.sub(r"\*\*(.*)\*\* \(the default\)", r"\1", r.split("|")[1].strip()) for r in rows]
    expected = {variant(s, r, f) for s in LENGTHS for r in RULES for f in FACTORS}
    assert sorted(names) == sorted(expected)
    assert f"**{DEFAULT_VARIANT}** (the default)" in table
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        for cell in cells[1:3]:
            assert cell == "diverged" or float(cell) > 0
        ok, total = (int(v) for v in cells[3].split("/"))
        assert 0 <= ok <= total == 2  # the lesson's two budgets
    # sorted by worst mean-score regret, diverged last
    means = [
        float(r.split("|")[2]) if "diverged" not in r.split("|")[2] else math.inf for r in rows
    ]
    assert means == sorted(means)
    # the per-task table: the five best variants, plus the default and the default rule on the
    # longest test when they are not among them
    detail = text.split("## Per task and budget", 1)[1]
    lines = [ln for ln in detail.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert 5 <= len(lines) <= 7
    for name in (DEFAULT_VARIANT, LONG_DEFAULT):
        assert sum(ln.startswith(f"| {name} |") for ln in lines) == 1

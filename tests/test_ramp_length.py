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
    FIT_FACTORS,
    LENGTHS,
    LONG_DEFAULT,
    RULES,
    fit_multiplier,
    interpolated_score,
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


def test_interpolated_score_is_log_log_linear_between_grid_points():
    grid = np.array([0.01, 0.1, 1.0])
    scores = np.array([8.0, 2.0, math.inf])
    # half-way in log LR between 0.01 (8) and 0.1 (2): the geometric mean, 4
    assert interpolated_score(grid, scores, 10**-1.5) == pytest.approx(4.0)
    # a quarter of the way: 8 * (2/8)**0.25
    assert interpolated_score(grid, scores, 10**-1.75) == pytest.approx(8.0 * 0.25**0.25)
    assert interpolated_score(grid, scores, 0.1) == pytest.approx(2.0)  # on a grid point
    assert math.isinf(interpolated_score(grid, scores, 0.2))  # next to a diverged point
    assert interpolated_score(grid, scores, 1e-4) == 8.0  # below the grid: its first score
    assert math.isinf(interpolated_score(grid, scores, 10.0))  # above: its last


def test_fit_multiplier_finds_the_factor_that_lands_on_each_seeds_best():
    # One task, one budget, two seeds whose score is (log10 LR - log10 0.1)^2 + 1 on a fine
    # grid: the best fixed LR is 0.1. Seed 0's rule read 0.05, seed 1's 0.05 too: the fitted
    # multiplier must be 2 (on FIT_FACTORS' 20-per-decade grid: 10**(6/20) = 1.995).
    grid = 10.0 ** np.linspace(-3, 0, 61)
    scores = (np.log10(grid) + 1.0) ** 2 + 1.0
    task = SimpleNamespace(name="t", budgets=(10,), grid=grid)
    base = variant(LENGTHS[0], "blend", 1.0)
    runs = {"t": [{"grid": {10: scores}, "lr": {base: 0.05}} for _ in range(2)]}
    factor, regret = fit_multiplier([task], runs, LENGTHS[0], "blend")
    assert factor == pytest.approx(10 ** (6 / 20))
    assert factor in FIT_FACTORS
    # the fitted LR 0.0998 sits within 0.001 decades of the best: regret 1 up to the
    # interpolation between grid points 0.05 decades apart
    assert regret == pytest.approx(1.0, abs=1e-3)
    # a seed without an answer makes every multiplier infinitely bad: no fit
    runs["t"][1]["lr"][base] = None
    factor, regret = fit_multiplier([task], runs, LENGTHS[0], "blend")
    assert math.isnan(factor) and math.isinf(regret)


@pytest.mark.slow
def test_smoke_run_writes_every_variant_once(tmp_path):
    text = run_benchmark_smoke("bench_ramp_length.py", tmp_path / "ramp_length.md")
    assert "- machine:" in text and "- command:" in text and "- date:" in text
    # the lesson's 100-step curve blows up (it never breaks down): 0 of its 2 seeds flagged
    assert "flags `broke_down`: linreg 0/2" in text
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
    # longest test when they are not among them, and last the best fitted multiplier
    detail = text.split("## Per task and budget", 1)[1]
    detail = detail.split("\n## ", 1)[0]
    lines = [ln for ln in detail.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert 6 <= len(lines) <= 8
    for name in (DEFAULT_VARIANT, LONG_DEFAULT):
        assert sum(ln.startswith(f"| {name} |") for ln in lines) == 1
    assert lines[-1].split("|")[1].strip().endswith("(fitted)")
    # the ceiling: one fitted row per test length and rule, with a multiplier from the grid
    ceiling = text.split("## Ceiling", 1)[1]
    fitted = [ln for ln in ceiling.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    found = set()
    for row in fitted:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        m = re.fullmatch(r"(\d+) steps, (\w+) x([0-9.]+) \(fitted\)", cells[0])
        assert m, cells[0]
        found.add((int(m[1]), m[2]))
        assert min(abs(float(m[3]) / f - 1) for f in FIT_FACTORS) < 5e-3  # 3 digits shown
        for cell in cells[1:4]:
            assert cell == "diverged" or float(cell) > 0
    assert found == {(s, r) for s in LENGTHS for r in RULES}
    predicted = [
        math.inf if "diverged" in r.split("|")[2] else float(r.split("|")[2]) for r in fitted
    ]
    assert predicted == sorted(predicted)  # sorted by the fit's own (interpolated) regret

"""The quality benchmark's regret arithmetic, on score tables small enough to check by hand."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality.harness import BEST_FIXED, GRID_BY_VAL, Row, SeedRun, rows_for  # noqa: E402
from quality.tasks import Task  # noqa: E402


def seed_run(seed, scores, suggestion, val):
    """A SeedRun whose grid (LRs 0.1, 1.0) scores ``scores`` at budget 10 (and 20)."""
    table = {0.1: scores[0], 1.0: scores[1]}
    if suggestion not in table:
        table[suggestion] = np.inf  # an LR off the grid that diverged
    runner = SimpleNamespace(
        scores=lambda lr: {10: table[lr], 20: table[lr]},
        val_cache={0.1: {10: val[0], 20: val[0]}, 1.0: {10: val[1], 20: val[1]}},
    )
    run = SeedRun(seed, None, {}, {10: np.array(scores), 20: np.array(scores)})
    run.suggestions["rule"] = suggestion
    run.runner = runner
    return run


def test_per_seed_and_mean_score_regret_by_hand():
    task = Task("toy", "toy", make=None, grid=np.array([0.1, 1.0]), budgets=(10, 20))
    # Seed 0 is best at 0.1 (1.0 vs 2.0), seed 1 at 1.0 (2.0 vs 3.0); both LRs average 2.0.
    runs = [
        seed_run(0, [1.0, 2.0], 1.0, val=[5.0, 4.0]),
        seed_run(1, [3.0, 2.0], 1.0, val=[5.0, 4.0]),
    ]
    rows = {row.rule: row for row in rows_for(task, runs, ["rule"]) if row.budget == 10}
    rule = rows["rule"]
    assert rule.regrets == [2.0, 1.0]  # 2.0 / 1.0 on seed 0, 2.0 / 2.0 on seed 1
    assert rule.mean_regret == pytest.approx(1.0)  # mean 2.0 / best mean 2.0
    grid = rows[GRID_BY_VAL]  # validation prefers 1.0 on both seeds
    assert grid.lrs == [1.0, 1.0] and grid.mean_regret == pytest.approx(1.0)
    # The best fixed LR: both average 2.0, the first (0.1) is taken; per seed it costs 1.0 / 1.0
    # on seed 0 and 3.0 / 2.0 on seed 1, against the best fixed LR nothing (1 by definition).
    fixed = rows[BEST_FIXED]
    assert fixed.lrs == [0.1, 0.1] and fixed.regrets == [1.0, 1.5]
    assert fixed.mean_regret == 1.0
    # Every row carries that LR; the grid-best (lowest median score, here a tie) is 0.1 too.
    assert {row.fixed_lr for row in rows.values()} == {0.1}
    assert {row.best_lr for row in rows.values()} == {0.1}
    # One seed diverging at the rule's LR makes its mean-score regret inf.
    runs[1] = seed_run(1, [3.0, 2.0], 0.5, val=[5.0, 4.0])
    rule = next(r for r in rows_for(task, runs, ["rule"]) if r.rule == "rule")
    assert rule.regrets[1] == np.inf and rule.mean_regret == np.inf
    # When every grid LR diverged on some seed there is no best fixed LR: no answer, inf.
    runs = [
        seed_run(0, [1.0, np.inf], 0.1, val=[5.0, 4.0]),
        seed_run(1, [np.inf, 2.0], 0.1, val=[5.0, 4.0]),
    ]
    fixed = next(r for r in rows_for(task, runs, ["rule"]) if r.rule == BEST_FIXED)
    assert fixed.lrs == [None, None] and fixed.regrets == [np.inf, np.inf]
    assert np.isnan(fixed.fixed_lr)


def test_the_best_fixed_lr_is_picked_by_mean_score_the_grid_best_by_median():
    # Three seeds on a flat bottom: 0.1 has the lowest median score (1.0), but one seed fails
    # there (4.0), so 1.0 has the lowest mean (1.2 against 2.0): the two yardsticks differ.
    task = Task("toy", "toy", make=None, grid=np.array([0.1, 1.0]), budgets=(10, 20))
    scores = [[1.0, 1.1], [1.0, 1.1], [4.0, 1.4]]
    runs = [seed_run(seed, s, 1.0, val=[5.0, 4.0]) for seed, s in enumerate(scores)]
    rule = next(r for r in rows_for(task, runs, ["rule"]) if r.rule == "rule")
    assert rule.best_lr == 0.1 and rule.fixed_lr == 1.0
    assert rule.mean_regret == pytest.approx(1.0)  # the rule sits on the best fixed LR


def test_where_the_grid_best_lies_around_the_default_by_hand():
    from quality.harness import best_vs_default, coverage_counts

    task = Task("toy", "toy", make=None, grid=np.array([0.01, 0.1, 1.0]), budgets=(10, 20))
    quality = SimpleNamespace(lr=0.3, interval=(0.2, 0.5))
    run = SimpleNamespace(
        default_result=SimpleNamespace(quality=lambda: quality),
        # budget 10: best at 0.1 (3x below the default); budget 20: best at 1.0 (3.3x above)
        grid_scores={10: np.array([2.0, 1.0, 3.0]), 20: np.array([3.0, 2.0, 1.0])},
    )
    cases = best_vs_default(task, [run])
    assert cases == [(0.3, (0.2, 0.5), 0.1), (0.3, (0.2, 0.5), 1.0)]
    counts = coverage_counts([*cases, (None, None, 0.1)])  # a seed with no default counts nowhere
    # 0.1 is outside the interval, not within x2 (0.15..0.6), within x3 (0.1..0.9) and inside
    # verify's span (0.03..0.9); 1.0 is beyond all of them.
    assert counts == {"total": 3, "interval": 0, "verify_span": 1, "x2": 0, "x3": 1}


def _other(result):
    """``result`` with its losses changed: a test the default call does not repeat."""
    import dataclasses

    return dataclasses.replace(result, loss=result.loss + 1.0)


def test_the_default_row_is_range_tests_default_call_checked_against_the_rules_tests():
    """default_test runs lrscope.range_test as users do and insists that it repeats, bit for
    bit, the 100-step test the rules read, or the 400-step test when that one broke down."""
    from quality.harness import LONG_STEPS, default_test
    from sweep_targets import BreakingDown

    import lrscope
    from lrscope.lab.linreg import linreg_trainer, make_data

    options = {"start_lr": 1e-7, "end_lr": 10.0, "steps": 100}
    trainer = BreakingDown()
    single = lrscope.range_test(trainer, **options, retest=False)
    long = lrscope.range_test(trainer, **{**options, "steps": LONG_STEPS}, retest=False)
    result = default_test(trainer, options, single, long)
    assert result.metadata["first_test_steps"] == 100
    np.testing.assert_array_equal(result.loss, long.loss)
    lesson = linreg_trainer(make_data(seed=0))
    single = lrscope.range_test(lesson, **options, retest=False)
    assert default_test(lesson, options, single, long).metadata == {}  # not retested
    with pytest.raises(RuntimeError, match="differs from the 400-step test it should repeat"):
        default_test(BreakingDown(), options, single, _other(long))


def test_the_packages_are_compared_with_the_default_on_their_own_task_budgets_only():
    from bench_quality import DEFAULT_NAME, head_to_head_lines

    def row(task, budget, rule, regrets):
        return Row(task, budget, rule, 0.1, [0.1] * len(regrets), regrets, max(regrets), 0.1)

    rows = []
    for rule, a10, a20, b10 in (
        ("default", [1.0, 1.2], [1.0, 1.1], [3.0, 5.0]),
        ("verify", [1.0, 1.0], [1.0, 1.3], [2.0, 2.0]),
        ("edge", [9.0, 9.0], [9.0, 9.0], [9.0, 9.0]),  # not in the head-to-head table
    ):
        rows += [row("a", 10, rule, a10), row("a", 20, rule, a20), row("b", 10, rule, b10)]
    for rule in ("pkg:p", "pkg:q"):  # the packages ran task a only (torch tasks)
        rows += [row("a", 10, rule, [1.5, 2.0]), row("a", 20, rule, [1.3, 1.4])]
    assert head_to_head_lines([r for r in rows if not r.rule.startswith("pkg:")]) == []
    lines = head_to_head_lines(rows)
    assert lines[0].startswith("## Head to head") and "a @10, a @20" in lines[2]
    table = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in lines
        if line.startswith("| ") and not line.startswith("| rule")
    }
    assert set(table) == {DEFAULT_NAME, "verify", "pkg:p", "pkg:q"}
    # Over task a alone: median of 1.0, 1.2, 1.0, 1.1 and worst 1.2 (task b's 5.0 left out).
    assert table[DEFAULT_NAME][:3] == ["1.050", "1.200", "1/2"]
    assert table["verify"][:3] == ["1.000", "1.300", "1/2"]
    assert table["pkg:p"][:3] == ["1.450", "2.000", "0/2"]


def test_where_the_default_loses_lists_every_rule_that_beats_it_on_a_task_budget():
    from bench_quality import default_losses_lines

    def row(budget, rule, regrets):
        return Row("a", budget, rule, 0.1, [0.1] * len(regrets), regrets, max(regrets), 0.1)

    rows = [
        row(10, "default", [1.0, 1.2]),
        row(10, "edge", [1.1, 1.1]),  # lower worst, higher median
        row(10, "min_div10", [2.0, 3.0]),  # worse on both: not listed
        row(10, "pkg:p", [0.9, 1.1]),  # lower on both
        row(10, "verify", [0.9, 0.9]),  # a reference, not a rule: not listed
        row(10, GRID_BY_VAL, [0.9, 0.9]),
        row(20, "default", [1.0, 1.0]),
        row(20, "edge", [1.0, 1.5]),  # a tie is no loss
    ]
    listed = [line for line in default_losses_lines(rows) if line.startswith("- ")]
    assert listed == [
        "- a @10: `edge` has the lower worst: median / worst 1.100 / 1.100 (1.100) against the "
        "default's 1.100 / 1.200 (1.200)",
        "- a @10: `pkg:p` has the lower median and worst: median / worst 1.000 / 1.100 (1.100) "
        "against the default's 1.100 / 1.200 (1.200)",
    ]
    nowhere = default_losses_lines([r for r in rows if r.rule in ("default", "min_div10")])
    assert any(line.startswith("- nowhere") for line in nowhere)
    # A difference below the printed precision is no loss (it would read 1.000 against 1.000).
    close = [row(10, "default", [1.0, 1.0]), row(10, "edge", [0.9999, 0.9999])]
    assert any(line.startswith("- nowhere") for line in default_losses_lines(close))

"""Result objects print as one line at a REPL: what ran, how it ended and the answer, read
from the object itself (the dataclass default printed every array: thousands of numbers)."""

from __future__ import annotations

import numpy as np

import lrscope
from lrscope import RangeTestResult, range_test, run_lesson, sweep, verify
from lrscope.lab.linreg import linreg_trainer
from lrscope.landscape import ArrayLoss, plane_slice


def one_line(obj: object, name: str) -> str:
    text = repr(obj)
    assert str(obj) == text
    assert text.startswith(f"{name}(") and text.endswith(")")
    assert "\n" not in text and "array(" not in text
    return text


def test_range_test_result(lesson_data):
    result = range_test(linreg_trainer(lesson_data), start_lr=1e-4, end_lr=10.0, steps=100)
    text = one_line(result, "RangeTestResult")
    assert len(text) < 160
    found = result.suggest()
    assert f"{result.n_steps} of 100 steps" in text
    assert f"lr 0.0001 -> {result.lr[-1]:.3g} (exp)" in text
    assert f"diverged at step {result.stop_step}" in text
    assert f"suggest(): {found.rule} {found.lr:.3g}" in text


def test_a_retested_range_test_says_so():
    from sweep_targets import BreakingDown

    result = range_test(BreakingDown())
    text = one_line(result, "RangeTestResult")
    assert "of 400 steps" in text and "retested: the 100-step test broke down" in text
    assert "retested" not in repr(range_test(BreakingDown(), retest=False))


def test_range_test_result_without_steps_or_answer():
    empty = RangeTestResult(
        lr=np.zeros(0),
        loss=np.zeros(0),
        smooth_loss=np.zeros(0),
        stop_reason="interrupted",
        stop_step=0,
        start_lr=1e-5,
        end_lr=1.0,
        steps=50,
    )
    text = one_line(empty, "RangeTestResult")
    assert "0 of 50 steps, lr 1e-05 -> 1 (exp), no step ran, interrupted at step 0" in text
    assert "suggest(): blend none" in text
    lrs = np.geomspace(1e-4, 1.0, 5)
    loss = np.array([2.0, 1.5, 1.0, np.nan, np.nan])
    blown = RangeTestResult(lrs, loss, loss.copy(), "non_finite", 3, 1e-4, 1.0, 8)
    assert "5 of 8 steps" in repr(blown)
    assert "non-finite loss at step 3" in one_line(blown, "RangeTestResult")


def test_sweep_result_counts_the_runs_and_gives_the_best_lr(lesson_data):
    lrs = [0.01, 0.1, 0.5, 1.0, 3.0]  # the lesson's GD overflows above 2/lambda_max = 0.76
    result = sweep(linreg_trainer(lesson_data), lrs, steps=40)
    text = one_line(result, "SweepResult")
    ok = int(np.sum(result.status == "ok"))
    diverged = int(np.sum(result.status == "diverged"))
    assert ok + diverged == len(lrs) and diverged >= 1
    assert f"5 LRs 0.01..3 x 40 steps x 1 seed, runs: {ok} ok, {diverged} diverged" in text
    assert f"best_lr(40): {result.best_lr():.3g}" in text


def test_verify_result_names_the_winner_and_an_edge_winner(lesson_data):
    trainer = linreg_trainer(lesson_data)
    checked = verify(trainer, [0.1, 0.3, 0.5], steps=20, refine=False)
    text = one_line(checked, "VerifyResult")
    assert checked.score_kind in text and "3 candidates 0.1..0.5, 20 steps each" in text
    assert f"best_lr {checked.best_lr:.3g}" in text
    assert ("at the edge of the candidates" in text) == checked.at_boundary
    low = verify(trainer, [1e-4, 2e-4], steps=5, refine=False)  # the higher one wins: an edge
    assert low.at_boundary and "best_lr 0.0002 (at the edge of the candidates)" in repr(low)


def test_landscape_result_gives_the_grid_and_the_loss_range(lesson_data):
    x, y = lesson_data.x.astype(np.float64), lesson_data.y.astype(np.float64)

    def loss_at(p):
        return float(np.mean((p["w"][0] * x + p["b"][0] - y) ** 2))

    centre = {"w": np.array([0.0]), "b": np.array([-1.0])}
    model = ArrayLoss(loss_at, centre)
    result = plane_slice(
        model,
        {"w": np.array([1.0]), "b": np.array([0.0])},
        {"w": np.array([0.0]), "b": np.array([1.0])},
        span=1.0,
        points=7,
    )
    text = one_line(result, "LandscapeResult")
    assert text.startswith(
        f"LandscapeResult({result.method}, 7 x 7 grid, "
        f"loss {result.loss.min():.4g}..{result.loss.max():.4g}"
    )


def test_lesson_result_lists_the_regimes_and_the_range_test():
    lesson = run_lesson()
    text = one_line(lesson, "LessonResult")
    for run in lesson.runs:
        assert f"{run.lr:g} {run.regime}" in text
    assert f"best fixed LR {lesson.stability.lr_best:.3g}" in text
    assert f"range test: {lesson.range_test!r}" in text
    assert lrscope.LessonResult is type(lesson)

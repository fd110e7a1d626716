import json

import numpy as np
import pytest

import lrscope
from lrscope.adapters.stepfn import FunctionTrainer
from lrscope.core.verify import DEFAULT_FACTORS, VerifyResult, verify
from lrscope.errors import InvalidParameterError, ResultFormatError
from lrscope.lab.linreg import Moments, exact_gd, linreg_trainer


def lesson_trainer(data, with_evaluate=True):
    """The lesson's float32 GD, optionally scored by its exact loss (closed form)."""
    trainer = linreg_trainer(data)
    if with_evaluate:
        moments = Moments.of(data)
        state = trainer.state

        def evaluate():
            return float(moments.loss(float(state["w"]), float(state["b"])))

        trainer.evaluate = evaluate
    return trainer


def test_picks_the_closed_form_best_candidate_on_the_lesson(lesson_data):
    moments = Moments.of(lesson_data)
    candidates = [0.01, 0.05, 0.2, 0.5, 0.7, 0.9]
    steps = 30
    exact = [exact_gd(moments, lr, steps)[1][-1] for lr in candidates]
    check = verify(lesson_trainer(lesson_data), candidates, steps=steps, refine=False)
    assert check.score_kind == "evaluate"
    assert check.best_lr == candidates[int(np.argmin(exact))]
    # The scores are the float32 run's exact losses: close to the float64 closed form.
    finite = np.isfinite(exact)
    np.testing.assert_allclose(check.scores[finite], np.array(exact)[finite], rtol=1e-3)
    # 0.9 > 2/lambda_max: the loss grows above where it started.
    assert check.scores[-1] > check.losses[-1, 0]


def _closed_form_best_lr(moments, steps):
    """The LR with the lowest exact loss after ``steps`` GD steps, on a fine log grid.

    The loss after N steps of GD on a quadratic is a sum of (1 - lr * lambda_i)^(2N) terms:
    convex in lr, so a search that brackets and bisects must close in on this one minimum."""
    grid = np.logspace(-3, 0.5, 1401)
    losses = np.array([exact_gd(moments, lr, steps)[1][-1] for lr in grid])
    return float(grid[int(np.nanargmin(losses))])


@pytest.mark.parametrize(
    ("candidates", "steps"),
    [
        ([0.01, 0.03], 15),  # best at the top end: the bracket must climb
        ([0.9, 2.0], 20),  # every candidate diverges: the bracket must step down
        ([0.03, 0.1, 0.3, 0.9], 200),
    ],
)
def test_refine_brackets_and_bisects_to_the_closed_form_best(lesson_data, candidates, steps):
    moments = Moments.of(lesson_data)
    check = verify(lesson_trainer(lesson_data), candidates, steps=steps)
    best = _closed_form_best_lr(moments, steps)
    assert not check.at_boundary
    index = check.best_index
    below, above = check.lrs[index - 1], check.lrs[index + 1]
    # The neighbours of the pick are within `resolution` of it and bracket the true best.
    assert check.lrs[index] / below <= 1.2 + 1e-9 and above / check.lrs[index] <= 1.2 + 1e-9
    assert below <= best <= above
    assert check.lrs.size <= 14
    # Every tried LR's score is the float32 run's loss: close to the closed form.
    exact = np.array([exact_gd(moments, lr, steps)[1][-1] for lr in check.lrs])
    finite = np.isfinite(check.scores)
    np.testing.assert_allclose(check.scores[finite], exact[finite], rtol=1e-3)


def test_max_runs_caps_the_search(lesson_data):
    check = verify(lesson_trainer(lesson_data), [0.001], steps=15, max_runs=3)
    # One candidate, then two bracket steps up (x3 each): the best is still the top end.
    np.testing.assert_allclose(check.lrs, [0.001, 0.003, 0.009])
    assert check.best_lr == check.lrs[-1] and check.at_boundary


def test_restores_the_trainer_bitwise(lesson_data):
    trainer = lesson_trainer(lesson_data)
    trainer.run(np.full(3, 0.1))  # start somewhere that is not the default init
    before = dict(trainer.state)
    verify(trainer, [0.1, 0.5, 5.0], steps=20)
    assert {k: v.tobytes() for k, v in trainer.state.items()} == {
        k: v.tobytes() for k, v in before.items()
    }


def test_restores_when_a_run_raises(lesson_data):
    inner = linreg_trainer(lesson_data)
    calls = {"n": 0}

    def step(lr):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("boom")
        return inner.run(np.array([lr]))[0]

    trainer = FunctionTrainer(step, inner.snapshot, inner.restore)
    before = inner.snapshot()
    with pytest.raises(RuntimeError, match="boom"):
        verify(trainer, [0.1, 0.2], steps=5)
    assert inner.snapshot() == before


def test_default_candidates_surround_the_default_suggestion(lesson_data):
    trainer = lesson_trainer(lesson_data)
    result = lrscope.range_test(trainer, steps=100)
    check = verify(trainer, around=result, steps=10, refine=False)
    centre = result.suggest().lr
    assert check.around == centre
    np.testing.assert_allclose(check.lrs, np.sort([centre * f for f in DEFAULT_FACTORS]))
    assert check.best_lr in check.lrs


def test_without_evaluate_scores_the_tail_of_the_training_loss(lesson_data):
    check = verify(lesson_trainer(lesson_data, with_evaluate=False), [0.1], steps=20)
    assert check.score_kind == "train_tail"
    assert check.scores[0] == pytest.approx(np.mean(check.losses[0, -2:]))


def test_all_diverged_gives_no_best_without_refine(lesson_data):
    check = verify(lesson_trainer(lesson_data), [5.0, 50.0], steps=40, refine=False)
    assert check.best_lr is None and check.best_index is None
    assert np.all(np.isinf(check.scores))


def test_at_boundary_says_when_the_best_is_an_end_candidate(lesson_data):
    low = verify(lesson_trainer(lesson_data), [0.1, 0.2, 0.4], steps=30, refine=False)
    assert low.best_lr == 0.4 and low.at_boundary
    inside = verify(lesson_trainer(lesson_data), [0.1, 0.5, 5.0], steps=30, refine=False)
    assert inside.best_lr == 0.5 and not inside.at_boundary


def test_json_round_trip(lesson_data):
    check = verify(lesson_trainer(lesson_data), [0.1, 0.5, 5.0], steps=12)
    back = VerifyResult.from_json(check.to_json())
    assert back.best_lr == check.best_lr and back.steps == 12
    np.testing.assert_array_equal(back.lrs, check.lrs)
    np.testing.assert_array_equal(back.scores, check.scores)
    np.testing.assert_array_equal(back.losses, check.losses)
    data = json.loads(check.to_json())
    data["best_lr"] = 0.3
    with pytest.raises(ResultFormatError, match="best_lr"):
        VerifyResult.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": [0.1, -1.0]}, r"Argument `candidates` must be"),
        ({"candidates": []}, r"Argument `candidates` must be"),
        ({"candidates": [0.1], "steps": 0}, r"Argument `steps` must be an integer >= 1"),
        ({"candidates": [0.1], "around": 0.1}, r"Argument `around` must be None"),
        ({"around": -2.0}, r"Argument `around` must be a positive LR"),
        ({"around": 0.1, "factors": []}, r"Argument `factors` must be"),
        ({"candidates": [0.1], "resolution": 1.0}, r"Argument `resolution` must be a finite"),
        ({"candidates": [0.1], "max_runs": 0}, r"Argument `max_runs` must be an integer >= 1"),
        ({"candidates": [0.1, 0.2], "max_runs": 1}, r"Argument `max_runs` must be at least"),
    ],
)
def test_bad_arguments_are_named(lesson_data, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        verify(lesson_trainer(lesson_data), **kwargs)


def test_is_exported():
    assert lrscope.verify is verify and lrscope.VerifyResult is VerifyResult

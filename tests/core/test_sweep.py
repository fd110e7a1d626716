"""The LR x steps sweep: the map against the closed-form GD iteration, best LR per budget,
resumable results file, errors recorded, strict JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sweep_targets
from hypothesis import given, settings
from hypothesis import strategies as st

import lrscope
from lrscope.core.sweep import RunRecord, SweepResult, lr_grid, lr_grid_around
from lrscope.errors import InvalidParameterError, ResultFormatError
from lrscope.lab.linreg import Moments, Stability, exact_gd, make_data
from lrscope.testing import state_differences

TARGETS = Path(sweep_targets.__file__)
STEPS = 120
# Both sides of every landmark: crawling, monotone, oscillating, the ceiling 2/lambda_max = 0.756.
LRS = [0.01, 0.03, 0.1, 0.2, 0.3, 0.38, 0.5, 0.6, 0.7, 0.74, 0.8, 1.0, 3.0]


@pytest.fixture(scope="module")
def lesson_map():
    data = make_data()
    moments = Moments.of(data)
    exact = np.array([exact_gd(moments, lr, STEPS)[1] for lr in LRS])  # (R, STEPS + 1)
    result = lrscope.sweep(sweep_targets.lesson(), LRS, steps=STEPS, eval_every=1)
    return result, exact, Stability.of(moments)


def test_map_agrees_with_closed_form_gd_iteration(lesson_map):
    result, exact, stability = lesson_map
    assert result.loss.shape == (1, len(LRS), STEPS)
    for r, lr in enumerate(LRS):
        ran = np.isfinite(result.loss[0, r])
        # the trainer reports the loss of step t+1 before its update: the loss after t steps
        np.testing.assert_allclose(result.loss[0, r, ran], exact[r, :STEPS][ran], rtol=1e-4)
        measured = np.isfinite(result.val_loss[0, r])
        np.testing.assert_allclose(
            result.val_loss[0, r, measured], exact[r, 1:][measured], rtol=1e-4
        )
        if lr < stability.lr_diverge:
            assert result.status[0, r] == "ok" and ran.all() and measured.all()
        else:  # diverging runs stop early (NaN after), with the step recorded
            assert result.status[0, r] == "diverged"
            assert 0 < result.diverged_at[0, r] < STEPS and not ran.all()
    assert np.array_equal(result.eval_step, np.arange(1, STEPS + 1))
    assert np.all(result.wall_s > 0) and result.complete


def test_best_lr_per_budget_is_the_closed_form_argmin_and_stays_below_the_ceiling(lesson_map):
    result, exact, stability = lesson_map
    budgets, best, low, high = result.best_lr_curve()  # held-out loss: after `budget` steps
    assert np.array_equal(budgets, np.arange(1, STEPS + 1))
    checked = 0
    for i, budget in enumerate(budgets):
        after = exact[:, budget].copy()
        after[~np.isfinite(after)] = np.inf
        order = np.argsort(after)
        # compare where float32 round-off cannot swap the winner (late budgets tie at L*)
        if after[order[1]] - after[order[0]] > 1e-3 * after[order[0]]:
            assert best[i] == LRS[order[0]], budget
            checked += 1
        # (the band may hold 0.8 at small budgets: it has not blown up yet by then)
        assert best[i] < stability.lr_diverge
        assert low[i] <= best[i] <= high[i]
    assert checked > 60
    # the lesson's map: one step wants ~1/lambda_max (the line-search step); the best LR
    # then rises toward 2/(lambda_min + lambda_max) as the budget grows, never above 2/lambda_max
    assert result.best_lr(1) == 0.38 and result.best_lr(60) == 0.7


def test_best_lr_on_training_loss_averages_a_trailing_window(lesson_map):
    result, exact, _ = lesson_map
    for budget, window in ((10, 5), (3, 5), (40, 1), (90, 8)):
        mean = exact[:, budget - min(window, budget) : budget].mean(axis=1)
        mean[np.array(LRS) > 0.76] = np.inf  # diverged runs never win
        got = result.best_lr(budget, metric="train", window=window)
        assert got == LRS[int(np.argmin(mean))]
    score = result.score(50, metric="train")
    assert np.isnan(score[-1]) and np.all(np.isfinite(score[:-3]))


def test_band_holds_the_lrs_within_tolerance(lesson_map):
    result, _, _ = lesson_map
    score = result.score(30)
    for tol in (0.0, 0.1, 1.0):
        band = result.band(30, tol=tol)
        best = np.nanmin(score)
        assert np.array_equal(band, np.isfinite(score) & (score <= best * (1 + tol) + 1e-300))
    assert result.band(30, tol=0.0).sum() == 1


def test_sweep_restores_a_live_trainer_exactly():
    trainer = sweep_targets.lesson()
    trainer.run(np.full(7, 0.05))  # start somewhere that is not the initial point
    before = trainer.snapshot()
    lrscope.sweep(trainer, [0.1, 2.0, 50.0], steps=40)
    assert state_differences(before, trainer.snapshot()) == []


class CountingTrainer:
    """The lesson trainer, counting steps taken at each LR; raises KeyboardInterrupt in the
    second chunk at `interrupt_lr` (a user's Ctrl-C in the middle of that run)."""

    def __init__(self, interrupt_lr=None):
        self.inner = sweep_targets.lesson()
        self.steps_at: dict[float, int] = {}
        self.interrupt_lr = interrupt_lr

    def run(self, lrs):
        lr = float(lrs[0])
        if lr == self.interrupt_lr and self.steps_at.get(lr):
            raise KeyboardInterrupt
        self.steps_at[lr] = self.steps_at.get(lr, 0) + len(lrs)
        return self.inner.run(lrs)

    def snapshot(self):
        return self.inner.snapshot()

    def restore(self, state):
        self.inner.restore(state)


def test_resume_skips_finished_runs_after_an_interrupt(tmp_path):
    lrs = [0.05, 0.1, 0.3, 0.5, 0.7]
    file = tmp_path / "runs.jsonl"
    first = CountingTrainer(interrupt_lr=0.3)
    before = first.snapshot()
    partial = lrscope.sweep(first, lrs, steps=30, results_file=file, trainer_id="lesson")
    assert not partial.complete and partial.metadata["interrupted"] is True
    assert list(partial.status[0]) == ["ok", "ok", "missing", "missing", "missing"]
    assert first.steps_at == {0.05: 30, 0.1: 30, 0.3: 2}  # one chunk of 0.3 ran, then Ctrl-C
    assert state_differences(before, first.snapshot()) == []  # restored mid-run
    assert len(file.read_text().splitlines()) == 1 + 2  # header + the finished runs

    second = CountingTrainer()
    resumed = lrscope.sweep(second, lrs, steps=30, results_file=file, trainer_id="lesson")
    assert second.steps_at == {0.3: 30, 0.5: 30, 0.7: 30}  # finished runs were not re-run
    assert resumed.complete and resumed.metadata["runs_reused"] == 2
    third = CountingTrainer()
    again = lrscope.sweep(third, lrs, steps=30, results_file=file, trainer_id="lesson")
    assert third.steps_at == {}
    fresh = lrscope.sweep(sweep_targets.lesson(), lrs, steps=30)
    assert np.array_equal(again.loss, fresh.loss, equal_nan=True)
    assert np.array_equal(resumed.loss, fresh.loss, equal_nan=True)


def test_a_torn_last_line_is_ignored_and_cut_before_appending(tmp_path):
    file = tmp_path / "runs.jsonl"
    lrs = [0.1, 0.2]
    lrscope.sweep(CountingTrainer(interrupt_lr=0.2), lrs, steps=10, results_file=file)
    with open(file, "a") as handle:
        handle.write('{"lr_index": 1, "seed_ind')  # the process died mid-write
    counting = CountingTrainer()
    result = lrscope.sweep(counting, lrs, steps=10, results_file=file)
    assert counting.steps_at == {0.2: 10} and result.complete
    lines = file.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)


def test_a_raising_run_is_recorded_and_the_rest_complete(tmp_path):
    trainer = sweep_targets.raising()
    before = trainer.snapshot()
    lrs = [0.1, sweep_targets.RAISE_LR, 0.3]
    options = {"steps": 20, "chunk_size": 1, "results_file": tmp_path / "r", "trainer_id": "t"}
    result = lrscope.sweep(trainer, lrs, **options)
    assert list(result.status[0]) == ["ok", "error", "ok"]
    assert result.errors[0][1].startswith("ValueError: boom at lr=0.2")
    assert result.errors[0][0] is None and result.errors[0][2] is None
    assert np.isfinite(result.loss[0, 1, :3]).all() and np.isnan(result.loss[0, 1, 3:]).all()
    assert np.isnan(result.score(20)[1]) and result.best_lr(20) == 0.3
    assert state_differences(before, trainer.snapshot()) == []
    # the error is in the file: a rerun does not repeat it unless asked to
    lines = (tmp_path / "r").read_text().splitlines()
    assert "boom" in lines[2]
    counting = CountingTrainer()
    lrscope.sweep(counting, lrs, **options)
    assert counting.steps_at == {}
    # trainer identity is part of the fingerprint: give the same one to retry
    retried = lrscope.sweep(counting, lrs, **options, retry_errors=True)
    assert counting.steps_at == {0.2: 20} and list(retried.status[0]) == ["ok"] * 3


def test_a_results_file_of_another_sweep_is_refused_and_left_untouched(tmp_path):
    file = tmp_path / "runs.jsonl"
    lrscope.sweep(sweep_targets.lesson(), [0.1, 0.2], steps=10, results_file=file)
    before = file.read_bytes()
    with pytest.raises(InvalidParameterError, match=r"different sweep \(differs in steps"):
        lrscope.sweep(sweep_targets.lesson(), [0.1, 0.2], steps=11, results_file=file)
    with pytest.raises(InvalidParameterError, match="differs in lrs"):
        lrscope.sweep(sweep_targets.lesson(), [0.1, 0.3], steps=10, results_file=file)
    with pytest.raises(InvalidParameterError, match="differs in trainer"):
        lrscope.sweep(
            sweep_targets.lesson(), [0.1, 0.2], steps=10, results_file=file, trainer_id="other"
        )
    assert file.read_bytes() == before
    other = tmp_path / "other.jsonl"
    other.write_text('{"kind": "range_test", "schema_version": 1}\n')
    with pytest.raises(ResultFormatError, match="expected kind='sweep_runs'"):
        lrscope.sweep(sweep_targets.lesson(), [0.1], steps=5, results_file=other)


def test_factory_seeds_give_one_map_per_seed_and_take_the_median(tmp_path):
    result = lrscope.sweep(sweep_targets.lesson, [0.1, 0.5, 0.9], steps=25, seeds=3, eval_every=1)
    assert result.seeds == (0, 1, 2) and result.loss.shape == (3, 3, 25)
    # seed = the data seed: three different problems, each matching its own closed form
    for s in range(3):
        moments = Moments.of(make_data(seed=s))
        np.testing.assert_allclose(
            result.val_loss[s, 1], exact_gd(moments, 0.5, 25)[1][1:], rtol=1e-4
        )
    expected = np.median(result.val_loss[:, :, 9], axis=0)
    np.testing.assert_array_equal(result.score(10)[:2], expected[:2])
    for budget in (10, 20):  # lr=0.9 is unsafe for a budget once any seed has diverged
        failed = np.any((result.diverged_at[:, 2] >= 0) & (result.diverged_at[:, 2] < budget))
        assert np.isnan(result.score(budget)[2]) == failed
    assert np.isnan(result.score(20)[2])
    same = lrscope.sweep(
        str(TARGETS) + ":lesson", [0.1, 0.5, 0.9], steps=25, seeds=[0, 1, 2], eval_every=1
    )
    assert np.array_equal(same.loss, result.loss, equal_nan=True)


def test_default_grid_centres_on_a_range_test_suggestion():
    trainer = sweep_targets.lesson()
    found = lrscope.range_test(trainer, start_lr=1e-4, end_lr=10.0, steps=100)
    center = found.suggest().lr
    grid = lr_grid_around(found, decades=1.0, points=5)
    np.testing.assert_allclose(grid, center * np.array([0.1, 10**-0.5, 1, 10**0.5, 10]))
    result = lrscope.sweep(trainer, around=found, points=5, steps=10)
    np.testing.assert_array_equal(result.lrs, grid)
    np.testing.assert_allclose(
        lrscope.sweep(trainer, around=0.1, points=3, steps=5).lrs, [0.01, 0.1, 1.0]
    )
    np.testing.assert_allclose(lr_grid(1e-4, 1.0, 5), [1e-4, 1e-3, 1e-2, 1e-1, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lrs": None}, "Argument `lrs` must be given, or `around`"),
        ({"lrs": [0.1, -1.0]}, "Argument `lrs` must hold positive finite"),
        ({"lrs": [0.1, 0.1]}, "must not repeat a learning rate"),
        (
            {"lrs": [0.1], "steps": 0},
            r"Argument `steps` must be an integer >= 1. Received: steps=0",
        ),
        ({"lrs": [0.1], "engine": "dask"}, "Argument `engine` must be one of"),
        ({"lrs": [0.1], "workers": 2}, "Argument `trainer` must be a factory"),
        ({"lrs": [0.1], "engine": "ray"}, "Argument `trainer` must be a factory"),
        ({"lrs": [0.1], "seeds": 2}, "Argument `seeds` can differ from 1 only"),
        ({"lrs": [0.1], "seeds": 0}, "Argument `seeds` must be an integer >= 1"),
        ({"lrs": [0.1], "around": 0.1}, "Argument `around` must be None when `lrs`"),
        ({"lrs": None, "around": -1.0}, "Argument `around` must be a positive finite LR"),
        ({"lrs": [0.1], "eval_every": 0}, "Argument `eval_every` must be None or an integer"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    kwargs.setdefault("steps", 5)
    with pytest.raises(InvalidParameterError, match=message):
        lrscope.sweep(sweep_targets.lesson(), **kwargs)


def test_eval_every_needs_evaluate_and_budget_must_be_an_eval_step():
    from lrscope.lab.linreg import linreg_trainer

    with pytest.raises(InvalidParameterError, match="needs a trainer with an evaluate"):
        lrscope.sweep(linreg_trainer(make_data()), [0.1], steps=5, eval_every=1)
    result = lrscope.sweep(sweep_targets.lesson(), [0.1, 0.2], steps=10, eval_every=5)
    assert result.eval_step.tolist() == [5, 10]
    with pytest.raises(InvalidParameterError, match="must be one of the evaluation steps"):
        result.best_lr(7)
    assert result.best_lr(7, metric="train") == 0.2
    with pytest.raises(InvalidParameterError, match=r"Argument `budget` must be in \[1, 10\]"):
        result.best_lr(11)


def test_a_sweep_that_fails_before_its_first_run_leaves_no_results_file(tmp_path):
    """eval_every on a factory whose trainers cannot evaluate fails only once the first
    trainer is built, after the results file was opened: the file it created goes, so the
    corrected call is not refused as another sweep's; a file that was there stays."""
    from lrscope.lab.linreg import linreg_trainer

    def factory(seed=None):
        return linreg_trainer(make_data(seed=0))  # no evaluate()

    path = tmp_path / "runs.jsonl"
    with pytest.raises(InvalidParameterError, match="needs a trainer with an evaluate"):
        lrscope.sweep(factory, [0.1, 0.2], steps=5, eval_every=1, results_file=path)
    assert not path.exists()
    result = lrscope.sweep(factory, [0.1, 0.2], steps=5, results_file=path)
    assert result.complete and len(path.read_text().splitlines()) == 3  # header + 2 runs
    before = path.read_bytes()
    other = tmp_path / "other.jsonl"
    other.write_bytes(before)
    with pytest.raises(InvalidParameterError):  # another sweep's file: refused, untouched
        lrscope.sweep(factory, [0.1, 0.2], steps=5, eval_every=1, results_file=other)
    assert other.read_bytes() == before


def test_json_round_trip_is_exact(tmp_path, lesson_map):
    result = lesson_map[0]
    again = SweepResult.load(result.save(tmp_path / "sweep.json"))
    assert again == result
    assert again.best_lr_curve()[1].tolist() == result.best_lr_curve()[1].tolist()
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["kind"] == "sweep" and data["schema_version"] == 1
    assert data["best_lr_curve"]["budget"][:3] == [1, 2, 3]
    seeded = lrscope.sweep(sweep_targets.raising, [0.1, 0.2], steps=8, seeds=2, chunk_size=1)
    assert SweepResult.from_json(seeded.to_json()) == seeded


def _mutate(text, **changes):
    data = json.loads(text)
    data.update(changes)
    return json.dumps(data)


def test_malformed_json_is_refused_with_a_clear_error(lesson_map):
    text = lesson_map[0].to_json()
    cases = [
        ("{", "not valid JSON"),
        (_mutate(text, kind="range_test"), "expected kind='sweep'"),
        (_mutate(text, schema_version=2), "unsupported schema_version=2"),
        (_mutate(text, loss=[1.0, 2.0]), r"`loss` must have \d+ values"),
        (_mutate(text, status=["ok"] * 12 + ["exploded"]), "`status` must have 13 entries"),
        (_mutate(text, seeds=[]), "`seeds` must be a non-empty list"),
        (_mutate(text, steps="120"), "field `steps` has the wrong type"),
        (_mutate(text, errors=[[1] * 13]), "`errors` must be 1 lists of 13"),
        (text.replace('"nan"', "NaN", 1), "bare NaN is not JSON"),
    ]
    for bad, message in cases:
        with pytest.raises(ResultFormatError, match=message):
            SweepResult.from_json(bad)


@pytest.mark.parametrize("module", ["lrscope.core.sweep", "lrscope.viz.sweep_text"])
def test_sweep_docstring_examples_run(module):
    import doctest
    import importlib

    failures, _ = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert failures == 0


curves = st.lists(
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(np.nan), st.just(np.inf)),
    min_size=0,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(st.tuples(curves, st.booleans(), st.integers(-1, 12)), min_size=1, max_size=5),
    budget=st.integers(1, 12),
    window=st.integers(1, 6),
)
def test_any_map_round_trips_and_best_lr_is_the_argmin_of_finite_scores(runs, budget, window):
    records = []
    for r, (loss, raised, diverged) in enumerate(runs):
        records.append(
            RunRecord(
                lr_index=r,
                seed_index=0,
                lr=0.1 * (r + 1),
                seed=None,
                loss=np.array(loss, dtype=np.float64),
                eval_step=np.zeros(0, dtype=np.int64),
                val_loss=np.zeros(0),
                diverged_at=diverged if diverged >= 0 else None,
                wall_s=0.5,
                error="ValueError: x" if raised else None,
            )
        )
    result = SweepResult.from_records(
        records, [0.1 * (r + 1) for r in range(len(runs))], 12, [None]
    )
    assert SweepResult.from_json(result.to_json()) == result
    score = result.score(budget, metric="train", window=window)
    for r, (loss, raised, diverged) in enumerate(runs):
        part = np.array(loss + [np.nan] * 12)[budget - min(window, budget) : budget]
        failed = raised or 0 <= diverged < budget or not np.all(np.isfinite(part))
        assert np.isnan(score[r]) == failed
        if not failed:
            assert score[r] == part.mean()
    best = result.best_lr(budget, metric="train", window=window)
    if np.all(np.isnan(score)):
        assert best is None and not result.band(budget, metric="train", window=window).any()
    else:
        assert best == result.lrs[int(np.nanargmin(score))]
        assert result.band(budget, metric="train", window=window)[int(np.nanargmin(score))]

"""``lrscope demo --framework``: the lesson in TensorFlow, PyTorch and JAX agrees with NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

import lrscope
from lrscope.cli import main
from lrscope.lab.frameworks import check_framework, lesson_gd, lesson_trainer
from lrscope.lab.linreg import LESSON_LRS, gradient_descent
from lrscope.testing import check_trainer, state_differences

FRAMEWORKS = [
    pytest.param("tensorflow", marks=[pytest.mark.tensorflow, needs("tensorflow")]),
    pytest.param("torch", marks=[pytest.mark.torch, needs("torch")]),
    pytest.param("jax", marks=[pytest.mark.jax, needs("jax")]),
]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_runs_agree_with_numpy_to_float32_round_off(lesson_data, framework):
    for lr in LESSON_LRS:
        got = lesson_gd(lesson_data, lr, 200, framework)
        want = gradient_descent(lesson_data, lr, 200)
        assert got.regime == want.regime, lr
        assert got.steps == want.steps and got.path.shape == want.path.shape
        if want.diverged_at_step is None:
            assert got.diverged_at_step is None
            np.testing.assert_allclose(got.path, want.path, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(got.loss, want.loss, rtol=1e-3, atol=1e-7)
        else:  # overflow: the same step (give or take one of round-off), NaN after it
            assert abs(got.diverged_at_step - want.diverged_at_step) <= 1, lr
            k = min(got.diverged_at_step, want.diverged_at_step)
            np.testing.assert_allclose(got.path[:k], want.path[:k], rtol=1e-3)
            assert np.isnan(got.loss[got.diverged_at_step + 1 :]).all()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_range_test_in_each_framework_matches_numpy_and_restores(lesson_data, framework):
    trainer = lesson_trainer(lesson_data, framework)
    before = trainer.snapshot()
    got = lrscope.range_test(trainer, start_lr=1e-4, end_lr=10.0, steps=100)
    want = lrscope.range_test(
        lesson_trainer(lesson_data, "numpy"), start_lr=1e-4, end_lr=10.0, steps=100
    )
    assert (got.stop_reason, got.n_steps) == (want.stop_reason, want.n_steps)
    finite = np.isfinite(want.loss) & (want.lr < 1.0)
    np.testing.assert_allclose(got.loss[finite], want.loss[finite], rtol=1e-4)
    check_trainer(trainer)
    assert not state_differences(before, trainer.snapshot())


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_demo_cli_with_framework_prints_the_same_table(tmp_path, capsys, framework):
    args = ["demo", "--no-plots", "--lr", "0.1", "--lr", "0.5", "--lr", "10", "--steps", "50"]
    assert main([*args, "--out", str(tmp_path / "numpy")]) == 0
    numpy_out = capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / framework), "--framework", framework]) == 0
    out = capsys.readouterr().out
    name = {"tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX"}[framework]
    assert f"({name}, float32," in out.splitlines()[0]

    def table(text):
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("lr  steps"))
        return [line.split()[:2] + line.split()[-1:] for line in lines[start : start + 4]]

    assert table(out) == table(numpy_out)  # same LRs, steps and regimes, row by row
    saved = lrscope.LessonResult.load(tmp_path / framework / "demo.json")
    assert saved.range_test.metadata["framework"] == framework


def test_numpy_framework_is_the_reference_and_unknown_names_are_refused(lesson_data):
    run = lesson_gd(lesson_data, 0.1, 20, "numpy")
    want = gradient_descent(lesson_data, 0.1, 20)
    assert np.array_equal(run.path, want.path) and np.array_equal(run.loss, want.loss)
    with pytest.raises(lrscope.InvalidParameterError, match="`framework` must be one of"):
        check_framework("mxnet")
    with pytest.raises(lrscope.InvalidParameterError, match="`framework`"):
        lrscope.run_lesson(framework="caffe")


def test_demo_cli_refuses_an_unknown_framework(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--framework", "mxnet"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'mxnet'" in capsys.readouterr().err

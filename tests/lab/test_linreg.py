import numpy as np
import pytest

from lrscope.lab.lesson import LessonResult, run_lesson
from lrscope.lab.linreg import (
    LESSON_LRS,
    Moments,
    Stability,
    analytic_regime,
    exact_gd,
    gradient,
    gradient_descent,
    make_data,
    mse,
)


def test_data_is_float32_and_follows_the_line(lesson_data):
    assert lesson_data.x.dtype == np.float32 and lesson_data.y.dtype == np.float32
    assert 0 <= lesson_data.x.min() and lesson_data.x.max() <= 1
    residual = lesson_data.y - (0.1 * lesson_data.x + 0.5)
    assert abs(residual.std() - 0.01) < 0.003


def test_lambda_max_matches_eigvalsh(lesson_data):
    x = lesson_data.x.astype(np.float64)
    hessian = 2 * np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])
    expected = np.linalg.eigvalsh(hessian)
    s = Stability.of(Moments.of(lesson_data))
    assert s.lambda_max == pytest.approx(expected[1], rel=1e-6)
    assert s.lambda_min == pytest.approx(expected[0], rel=1e-6)
    assert s.lr_diverge == pytest.approx(2 / expected[1], rel=1e-6)
    assert s.lr_best == pytest.approx(2 / expected.sum(), rel=1e-6)


def test_closed_form_matches_lstsq(lesson_data):
    design = np.stack([lesson_data.x, np.ones_like(lesson_data.x)], axis=1).astype(np.float64)
    (w, b), *_ = np.linalg.lstsq(design, lesson_data.y.astype(np.float64), rcond=None)
    assert Moments.of(lesson_data).solution() == pytest.approx((w, b), rel=1e-9)


def test_moments_give_the_exact_loss(lesson_data):
    m = Moments.of(lesson_data)
    x, y = lesson_data.x.astype(np.float64), lesson_data.y.astype(np.float64)
    for w, b in [(0.0, -1.0), (0.3, 0.2), (-2.0, 5.0)]:
        assert m.loss(w, b) == pytest.approx(np.mean((w * x + b - y) ** 2), rel=1e-9)


def test_one_step_at_lr_0_9_is_the_hand_computed_gradient_step(lesson_data):
    x, y = lesson_data.x.astype(np.float64), lesson_data.y.astype(np.float64)
    err = 0 * x + (-1) - y
    dw, db = 2 * np.mean(err * x), 2 * np.mean(err)
    run = gradient_descent(lesson_data, 0.9, steps=1)
    assert run.path[1] == pytest.approx([0 - 0.9 * dw, -1 - 0.9 * db], rel=1e-6)
    gw, gb = gradient(np.float32(0), np.float32(-1), lesson_data.x, lesson_data.y)
    assert (gw, gb) == pytest.approx((dw, db), rel=1e-6)
    assert run.loss[0] == pytest.approx(np.mean(err**2), rel=1e-6)


@pytest.mark.parametrize("lr", [1e-3, 3e-3, 0.03, 0.1, 0.2, 0.3, 0.45, 0.5, 0.6, 0.7, 0.9, 1, 10])
def test_observed_regime_agrees_with_the_analytic_bound(lesson_data, lr):
    m = Moments.of(lesson_data)
    s = Stability.of(m)
    run = gradient_descent(lesson_data, lr, steps=200)
    expected = analytic_regime(s, m, lr, 200)
    observed = "diverging" if run.regime == "overflowed" else run.regime
    assert observed == expected


def test_float32_run_tracks_the_exact_iteration(lesson_data):
    m = Moments.of(lesson_data)
    run = gradient_descent(lesson_data, 0.5, steps=200)
    path, loss = exact_gd(m, 0.5, 200)
    np.testing.assert_allclose(run.path, path, atol=1e-5)
    np.testing.assert_allclose(run.loss, loss, rtol=1e-3, atol=1e-7)


def test_lr_10_overflows_and_reports_the_first_non_finite_step(lesson_data):
    run = gradient_descent(lesson_data, 10.0, steps=200)
    k = run.diverged_at_step
    assert run.regime == "overflowed" and k is not None
    assert np.isfinite(run.loss[:k]).all() and not np.isfinite(run.loss[k])
    assert run.describe_regime() == f"overflowed to NaN at step {k}"
    # the exact iteration says when float32 (max 3.4e38) must overflow: |e_k| ~ |1-lr*lmax|^k
    path, _ = exact_gd(Moments.of(lesson_data), 10.0, 200)
    with np.errstate(over="ignore"):
        first_huge = int(np.argmax(np.abs(path).max(axis=1) ** 2 > np.finfo(np.float32).max))
    assert abs(k - first_huge) <= 2


def test_lesson_defaults_reproduce_the_course(lesson_data):
    lesson = run_lesson()
    regimes = {run.lr: run.regime for run in lesson.runs}
    assert regimes == {
        0.001: "crawling",
        0.1: "converging",
        0.5: "oscillating-converging",
        0.9: "overflowed",
        1.0: "overflowed",
        10.0: "overflowed",
    }
    assert [r.lr for r in lesson.runs] == list(LESSON_LRS)


def test_lesson_json_round_trip():
    lesson = run_lesson(lrs=[0.1, 10.0], steps=50)
    back = LessonResult.from_dict(lesson.to_dict())
    assert back.to_dict() == lesson.to_dict()


def test_mse_is_float32(lesson_data):
    assert mse(np.float32(0), np.float32(-1), lesson_data.x, lesson_data.y).dtype == np.float32


def test_bad_lesson_arguments():
    with pytest.raises(ValueError, match="`lr` must be a positive finite number"):
        gradient_descent(make_data(), -1.0)
    with pytest.raises(ValueError, match="`steps` must be an integer >= 1"):
        gradient_descent(make_data(), 0.1, steps=0)
    with pytest.raises(ValueError, match="`n` must be an integer >= 2"):
        make_data(n=1)

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrscope.core.stopping import STOP_REASONS, check_stop, divergence_threshold


def test_threshold_measures_the_fall_not_the_absolute_value():
    # a noiseless regression: best ~ 0; rising 3 falls above the best is divergence
    assert divergence_threshold(2.0, 1e-9, 0.0, 3.0) == pytest.approx(1e-9 + 3 * 2.0)


def test_before_any_fall_the_noise_level_sets_the_scale():
    assert divergence_threshold(1.0, 1.0, 0.1, 3.0) == pytest.approx(1.3)


@pytest.mark.parametrize("shift", [0.0, -100.0, 1e6])
@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e4])
def test_stop_is_shift_and_scale_invariant(shift, scale):
    curve = np.array([3.0, 2.0, 1.0, 0.5, 0.6, 2.0, 6.0, 50.0]) * scale + shift
    assert check_stop(curve, curve, diverge_factor=3.0) == ("diverged", 7)


def test_non_finite_raw_loss_stops_at_its_index():
    raw = np.array([1.0, 0.9, np.inf, 0.5])
    assert check_stop(raw, raw, 3.0) == ("non_finite", 2)


def test_completed_curve():
    raw = np.linspace(1.0, 0.1, 20)
    assert check_stop(raw, raw, 3.0) == ("completed", 20)


def test_negative_losses_do_not_stop_falsely():
    raw = -np.linspace(1.0, 10.0, 30)  # falls steadily below zero
    assert check_stop(raw, raw, 3.0)[0] == "completed"


def test_noisy_flat_start_does_not_stop():
    rng = np.random.default_rng(0)
    raw = 2.3 + 0.2 * rng.standard_normal(200)
    from lrscope import smooth_loss

    assert check_stop(smooth_loss(raw), raw, 3.0)[0] == "completed"


def test_bad_factor_is_refused():
    with pytest.raises(ValueError, match="`diverge_factor` must be a positive finite number"):
        check_stop(np.ones(3), np.ones(3), 0.0)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=50), st.floats(0.01, 100))
def test_check_stop_never_raises_and_returns_an_index_in_range(values, factor):
    raw = np.array(values, dtype=np.float64)
    reason, index = check_stop(raw, raw, factor)
    assert reason in STOP_REASONS
    assert 0 <= index <= raw.size

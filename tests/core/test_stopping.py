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


# -- CurveMonitor.quiet_bound: losses under it can never stop the test -------------------------
@given(
    prefix=st.lists(st.floats(-50.0, 1e4), min_size=10, max_size=60),
    beta=st.sampled_from([0.0, 0.5, 0.9, 0.98, 0.999]),
    factor=st.floats(1.0, 10.0),
    data=st.data(),
)
def test_losses_inside_the_quiet_bound_never_stop_the_test(prefix, beta, factor, data):
    from lrscope.core.stopping import QUIET_LOW, CurveMonitor

    monitor = CurveMonitor(beta, factor)
    _, reason, _ = monitor.extend(prefix)
    bound = monitor.quiet_bound()
    if reason != "completed":
        assert bound == -np.inf  # nothing to vouch for after a stop
        return
    assert bound > -np.inf  # settled after NOISE_WINDOW points, factor >= 1: a bound exists
    low = max(QUIET_LOW, bound - 1e6)
    near = max(low, bound - 3.0 * (max(prefix) - min(prefix) + 1.0))  # the curve's own scale
    values = data.draw(
        st.lists(
            st.one_of(
                st.just(bound), st.floats(near, bound), st.floats(low, bound), st.just(QUIET_LOW)
            ),
            min_size=1,
            max_size=400,
        )
    )
    for part in range(0, len(values), 7):  # in chunks, as the engine hands them over
        assert monitor.extend(values[part : part + 7])[1] == "completed"


def test_the_quiet_bound_is_the_level_the_test_stops_above():
    """Not only safe but useful: a loss held at the bound never stops the test, one a tenth
    above it does (on this curve), and the bound is above the losses so far."""
    from lrscope.core.stopping import CurveMonitor

    def monitor_after(curve):
        monitor = CurveMonitor(0.9, 3.0)
        monitor.extend(curve)
        return monitor

    curve = [1.0 - 0.01 * i for i in range(40)]
    bound = monitor_after(curve).quiet_bound()
    assert bound > curve[0]
    at, above = monitor_after(curve), monitor_after(curve)
    assert at.extend([bound] * 500)[1] == "completed"
    assert above.extend([bound * 1.1] * 500)[1] == "diverged"


@pytest.mark.parametrize(
    ("curve", "factor"),
    [
        ([1.0] * 5, 3.0),  # the noise level is not fixed yet
        ([1.0 - 0.01 * i for i in range(20)], 0.5),  # a factor below 1: no bound is known
        ([1.0] * 10 + [float("nan")], 3.0),  # stopped
        ([1.0 - 0.01 * i for i in range(20)] + [100.0] * 5, 3.0),  # diverged
    ],
    ids=["unsettled", "factor_below_1", "non_finite", "diverged"],
)
def test_no_quiet_bound_where_none_can_be_vouched_for(curve, factor):
    from lrscope.core.stopping import CurveMonitor

    monitor = CurveMonitor(0.98, factor)
    monitor.extend(curve)
    assert monitor.quiet_bound() == -np.inf


def test_the_quiet_bound_allows_for_a_best_that_falls_first():
    """The threshold falls with the best loss while the curve is within the noise of its
    start: the bound is the threshold at the lowest best to come, not at today's best."""
    from lrscope.core.stopping import CurveMonitor

    monitor = CurveMonitor(0.0, 3.0)  # beta 0: the smoothed curve is the raw one
    _, reason, _ = monitor.extend([0.9, 0.95] * 5)  # never below its start
    assert reason == "completed"
    bound = monitor.quiet_bound()
    floor = monitor.scan._floor
    lower_best = 0.9 - floor  # as low as the best can go with the threshold still falling
    assert monitor.extend([lower_best, bound, bound, bound])[1] == "completed"
    assert bound < 0.9 + 3.0 * floor - 1e-6  # below the threshold at today's best

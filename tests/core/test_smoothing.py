import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrscope import smooth_loss


def test_debiased_ema_matches_closed_form():
    loss = np.array([4.0, 2.0, 1.0, 3.0])
    beta = 0.9
    expected = []
    for t in range(1, loss.size + 1):
        weights = (1 - beta) * beta ** np.arange(t - 1, -1, -1)
        expected.append(np.sum(weights * loss[:t]) / (1 - beta**t))
    np.testing.assert_allclose(smooth_loss(loss, beta), expected, rtol=1e-12)


def test_first_value_is_unbiased_and_constant_stays_constant():
    out = smooth_loss(np.full(50, 2.5), 0.98)
    np.testing.assert_allclose(out, 2.5, rtol=1e-12)


def test_beta_zero_is_the_raw_loss():
    loss = np.array([3.0, -1.0, 7.0])
    np.testing.assert_array_equal(smooth_loss(loss, 0.0), loss)


def test_non_finite_poisons_the_rest_only():
    out = smooth_loss(np.array([1.0, 2.0, np.nan, 1.0]), 0.5)
    assert np.isfinite(out[:2]).all() and np.isnan(out[2:]).all()


def test_bad_beta_is_refused():
    with pytest.raises(ValueError, match=r"`beta` must be in \[0, 1\)"):
        smooth_loss(np.ones(3), 1.0)


@given(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True)), max_size=60),
    st.floats(0, 0.999),
)
def test_smoothing_never_raises_and_is_finite_until_first_bad_value(values, beta):
    out = smooth_loss(np.array(values, dtype=np.float64), beta)
    assert out.shape == (len(values),)
    finite = np.isfinite(out)
    # once NaN, NaN for the rest
    if not finite.all():
        first = int(np.argmin(finite))
        assert not finite[first:].any()


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), st.floats(0, 0.999))
def test_smoothed_value_is_a_weighted_mean_within_the_seen_range(values, beta):
    loss = np.array(values)
    out = smooth_loss(loss, beta)
    running_min = np.minimum.accumulate(loss)
    running_max = np.maximum.accumulate(loss)
    tol = 1e-9 * (1 + np.abs(loss).max())
    assert np.all(out >= running_min - tol) and np.all(out <= running_max + tol)

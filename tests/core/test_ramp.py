import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrscope import InvalidParameterError, lr_ramp


def test_exp_ramp_is_even_in_log10_and_hits_both_ends_exactly():
    lrs = lr_ramp(1e-7, 10.0, 101)
    assert lrs[0] == 1e-7 and lrs[-1] == 10.0
    np.testing.assert_allclose(np.diff(np.log10(lrs)), 8 / 100, rtol=1e-9)


def test_linear_ramp_is_even_in_lr():
    lrs = lr_ramp(0.1, 1.0, 10, mode="linear")
    np.testing.assert_allclose(np.diff(lrs), 0.1, rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"start_lr": 1.0, "end_lr": 0.1, "steps": 10},
            r"`end_lr` must be greater than `start_lr`",
        ),
        ({"start_lr": -1.0, "end_lr": 0.1, "steps": 10}, r"`start_lr` must be a positive"),
        ({"start_lr": 1e-3, "end_lr": float("inf"), "steps": 10}, r"`end_lr` must be a positive"),
        ({"start_lr": 1e-3, "end_lr": 1.0, "steps": 1}, r"`steps` must be an integer >= 2"),
        ({"start_lr": 1e-3, "end_lr": 1.0, "steps": 2.5}, r"`steps` must be an integer"),
        ({"start_lr": 1e-3, "end_lr": 1.0, "steps": 5, "mode": "cos"}, r"`mode` must be one of"),
    ],
)
def test_bad_ramp_arguments_name_the_argument(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        lr_ramp(**kwargs)


def test_error_message_shows_received_values():
    with pytest.raises(ValueError, match=r"Received: start_lr=1.0, end_lr=0.1"):
        lr_ramp(1.0, 0.1, 10)


@given(
    start=st.floats(1e-12, 1e3),
    ratio=st.floats(1.001, 1e12),
    steps=st.integers(2, 500),
    mode=st.sampled_from(["exp", "linear"]),
)
def test_ramp_is_increasing_and_inside_range(start, ratio, steps, mode):
    end = start * ratio
    lrs = lr_ramp(start, end, steps, mode)
    assert lrs.shape == (steps,)
    assert lrs[0] == start and lrs[-1] == end
    assert np.all(np.diff(lrs) >= 0)
    assert np.all((lrs >= start) & (lrs <= end))


def _numpy_ramp(start: float, end: float, steps: int, mode: str) -> np.ndarray:
    """The ramp as np.logspace / np.linspace build it (what lr_ramp computed before it did the
    same arithmetic itself), both ends set exactly."""
    if mode == "exp":
        lrs = np.logspace(math.log10(start), math.log10(end), steps)
    else:
        lrs = np.linspace(start, end, steps)
    lrs[0], lrs[-1] = start, end
    return lrs


@given(
    start=st.floats(1e-300, 1e3) | st.floats(5e-324, 1e-300),
    ratio=st.floats(1.0, 1e12, exclude_min=True),
    steps=st.integers(2, 2000),
    mode=st.sampled_from(["exp", "linear"]),
)
def test_ramp_equals_numpy_logspace_and_linspace_bit_for_bit(start, ratio, steps, mode):
    end = start * ratio
    if not start < end:  # the ratio rounded away
        return
    expected = _numpy_ramp(start, end, steps, mode)
    assert lr_ramp(start, end, steps, mode).tobytes() == expected.tobytes()


def test_ramp_with_a_step_that_underflows_follows_numpy():
    # 5e-324 apart over 99 steps: the step is 0 in float64, NumPy divides then multiplies.
    start, end = 5e-324, 1e-323
    lrs = lr_ramp(start, end, 100, "linear")
    assert lrs.tobytes() == _numpy_ramp(start, end, 100, "linear").tobytes()

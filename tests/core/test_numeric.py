import functools
import math
import operator

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lrscope.core.numeric import pairwise_sum, std, std_of_floats


@given(
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.sampled_from([float("nan"), np.inf, -np.inf]),
        ),
        min_size=1,
        max_size=300,
    ),
    scale=st.floats(1e-300, 1e300),
)
def test_std_is_np_std_bit_for_bit(values, scale):
    """Sizes around NumPy's pairwise-sum blocks (8, 128, and the halves above), any
    magnitude, inf and NaN; the NumPy-free versions on the same values as Python floats."""
    with np.errstate(all="ignore"):
        x = np.array(values) * scale
        expected = float(np.std(x))
        got = std(x)
        total = float(np.add.reduce(x))
    floats = x.tolist()
    for value in (got, std_of_floats(floats)):
        assert value == expected or (math.isnan(value) and math.isnan(expected))
    summed = pairwise_sum(floats)
    assert summed == total or (math.isnan(summed) and math.isnan(total))
    if total == 0.0:  # and its sign
        assert math.copysign(1.0, summed) == math.copysign(1.0, total)


def test_std_of_nothing_is_nan_and_of_known_values_is_the_closed_form():
    assert math.isnan(std(np.zeros(0))) and math.isnan(std_of_floats([]))
    assert std(np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])) == 2.0
    assert std_of_floats([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == 2.0


def test_pairwise_sum_adds_in_numpys_order_not_left_to_right():
    """Nine values where the order shows: left to right, 1.0 is lost against 1e16 each time;
    NumPy's 8 accumulators add the 1.0s to each other first."""
    values = [1e16, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1e16]
    left_to_right = functools.reduce(operator.add, values)
    assert left_to_right != float(np.add.reduce(np.array(values)))  # the order matters here
    assert pairwise_sum(values) == float(np.add.reduce(np.array(values)))
    for zeros in ([-0.0], [-0.0] * 9):  # NumPy adds the sum to its initial 0.0: +0.0
        assert math.copysign(1.0, pairwise_sum(zeros)) == 1.0


def test_the_docstring_example_runs():
    import doctest

    import lrscope.core.numeric

    assert doctest.testmod(lrscope.core.numeric).failed == 0

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lrscope.core.numeric import std


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
    """Sizes around NumPy's pairwise-sum blocks (8, 128), any magnitude, inf and NaN."""
    with np.errstate(all="ignore"):
        x = np.array(values) * scale
        expected = float(np.std(x))
        got = std(x)
    assert got == expected or (math.isnan(got) and math.isnan(expected))


def test_std_of_nothing_is_nan_and_of_known_values_is_the_closed_form():
    assert math.isnan(std(np.zeros(0)))
    assert std(np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])) == 2.0


def test_the_docstring_example_runs():
    import doctest

    import lrscope.core.numeric

    assert doctest.testmod(lrscope.core.numeric).failed == 0

"""Small NumPy reductions without NumPy's Python-level dispatch, bit for bit the same values.

The range test and the rules call these on a handful of points between training steps, where
``np.std``'s own Python code (about 30 us alone, several times that between a small model's
steps) costs more than the arithmetic.
"""

from __future__ import annotations

import math

import numpy as np


def std(values: np.ndarray) -> float:
    """``float(np.std(values))`` of a 1-D float64 array, bit for bit: the same IEEE operations
    in the same order (NumPy's pairwise sum for the mean, the squared deviations, their
    pairwise sum, one division, a correctly rounded square root). NaN for an empty array.

    >>> std(np.array([1.0, 2.0, 3.0, 4.0]))
    1.118033988749895
    """
    n = values.size
    if n == 0:
        return math.nan
    deviation = values - np.add.reduce(values) / n
    return math.sqrt(float(np.add.reduce(deviation * deviation)) / n)


#: NumPy's pairwise summation adds blocks of up to this many values with 8 accumulators.
_PAIRWISE_BLOCK = 128


def pairwise_sum(values: list[float]) -> float:
    """``float(np.add.reduce(np.array(values)))`` for a list of Python floats, bit for bit:
    NumPy's pairwise summation (a plain loop below 8 values, 8 accumulators in blocks of up to
    128, halves above) added to the reduction's initial 0.0, in pure Python. Between a small
    model's training steps the first NumPy call costs tens of microseconds of cold caches; a
    handful of floats does not need it.

    >>> pairwise_sum([1e16, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1e16])  # left to right: 0.0
    6.0
    """
    return 0.0 + _pairwise(values)  # (and so -0.0 sums to 0.0, as in NumPy)


def _pairwise(values: list[float]) -> float:
    n = len(values)
    if n < 8:
        total = -0.0
        for value in values:
            total += value
        return total
    if n <= _PAIRWISE_BLOCK:
        r0, r1, r2, r3, r4, r5, r6, r7 = values[:8]
        i, whole = 8, n - n % 8
        while i < whole:
            r0 += values[i]
            r1 += values[i + 1]
            r2 += values[i + 2]
            r3 += values[i + 3]
            r4 += values[i + 4]
            r5 += values[i + 5]
            r6 += values[i + 6]
            r7 += values[i + 7]
            i += 8
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for value in values[whole:]:
            total += value
        return total
    half = n // 2
    half -= half % 8
    return _pairwise(values[:half]) + _pairwise(values[half:])


def std_of_floats(values: list[float]) -> float:
    """:func:`std` of a list of Python floats, bit for bit, without NumPy (see
    :func:`pairwise_sum`). NaN for an empty list.

    >>> std_of_floats([1.0, 2.0, 3.0, 4.0])
    1.118033988749895
    """
    n = len(values)
    if n == 0:
        return math.nan
    mean = pairwise_sum(values) / n
    squares = [(value - mean) * (value - mean) for value in values]
    variance = pairwise_sum(squares) / n
    return math.sqrt(variance)

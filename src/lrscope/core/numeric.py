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

"""Debiased exponential moving average of a loss curve."""

from __future__ import annotations

import numpy as np

from lrscope.errors import invalid


def smooth_loss(loss: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Debiased EMA ``v_t / (1 - beta**t)`` of ``loss`` (shape ``(n,)``), float64.

    The debiasing makes the first values equal to the mean of the losses seen so far instead
    of being pulled towards zero (Lightning's un-debiased EMA starts at ~0.5x the real loss).
    A non-finite loss makes every later smoothed value NaN: there is no meaningful average
    across an overflow. ``beta=0`` returns the raw loss.

    >>> smooth_loss(np.array([1.0, 3.0]), beta=0.5)
    array([1.        , 2.33333333])
    """
    if not 0.0 <= beta < 1.0:
        raise invalid("beta", "must be in [0, 1)", beta=beta)
    values = np.asarray(loss, dtype=np.float64).reshape(-1)
    out = np.full(values.shape, np.nan)
    average = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for t, value in enumerate(values, start=1):
            if not np.isfinite(value):
                break
            average = beta * average + (1.0 - beta) * value
            out[t - 1] = average / (1.0 - beta**t)
            if not np.isfinite(out[t - 1]):
                out[t - 1] = np.nan
                break
    return out

"""Debiased exponential moving average of a loss curve."""

from __future__ import annotations

import math

import numpy as np

from lrscope.errors import invalid


class RunningSmoother:
    """The debiased EMA kept across chunks, so a range test smooths each loss once (O(n) in
    all) instead of re-smoothing the whole curve after every chunk."""

    def __init__(self, beta: float = 0.98) -> None:
        if not 0.0 <= beta < 1.0:
            raise invalid("beta", "must be in [0, 1)", beta=beta)
        self.beta = beta
        self.average = 0.0
        self.count = 0
        self.broken = False

    def extend(self, values: np.ndarray) -> np.ndarray:
        """Smoothed values for the next raw ``values`` (shape ``(k,)``), float64."""
        raw = np.asarray(values, dtype=np.float64).reshape(-1).tolist()
        return np.array(self.extend_list(raw), dtype=np.float64)

    def extend_list(self, values: list[float]) -> list[float]:
        """:meth:`extend` on Python floats: what the range test calls after every chunk (a
        handful of values, where NumPy's per-call cost exceeds the arithmetic)."""
        beta = self.beta
        out: list[float] = []
        for value in values:
            if self.broken or not math.isfinite(value):
                self.broken = True
                out.append(math.nan)
                continue
            self.count += 1
            self.average = beta * self.average + (1.0 - beta) * value
            smoothed = self.average / (1.0 - beta**self.count)
            if not math.isfinite(smoothed):  # the running sum itself overflowed
                self.broken = True
                out.append(math.nan)
                continue
            out.append(smoothed)
        return out


def smooth_loss(loss: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Debiased EMA ``v_t / (1 - beta**t)`` of ``loss`` (shape ``(n,)``), float64.

    The debiasing makes the first values equal to the mean of the losses seen so far instead
    of being pulled towards zero (Lightning's un-debiased EMA starts at ~0.5x the real loss).
    A non-finite loss makes every later smoothed value NaN: there is no meaningful average
    across an overflow. ``beta=0`` returns the raw loss.

    >>> smooth_loss(np.array([1.0, 3.0]), beta=0.5)
    array([1.        , 2.33333333])
    """
    return RunningSmoother(beta).extend(np.asarray(loss, dtype=np.float64).reshape(-1))

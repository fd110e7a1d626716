"""Other libraries' LR finders, re-implemented from their documented behaviour.

None of these packages is a dependency, and none is imported: each function below is our own
code reproducing what the library does with a recorded range-test curve, as its docs and
defaults describe it (checked against the released behaviour, not copied). Each takes the
*raw* per-step losses of an un-stopped range test (``lrs``, ``raw``, shape ``(n,)``), applies
that library's own smoothing, its own early stop, its own trimming and its own suggestion,
and returns the LR (or None when that library would not answer).

- ``fastai_valley``: fastai's default (``lr_find()`` -> ``valley``). Debiased EMA (beta 0.98);
  stops when the smoothed loss exceeds 4x its best; drops the first ``n//10`` and last 5
  points; longest decreasing *subsequence* of the smoothed loss, and the point a bit before
  its middle (a third plus a sixth of its length from the start).
- ``fastai_minimum``: fastai's ``minimum`` suggestion: the LR at the lowest smoothed loss of
  the same trimmed curve, divided by 10 (the classic "minimum / 10").
- ``torch_lr_finder``: torch-lr-finder's ``plot(suggest_lr=True)``. Its history is an EMA
  started at the first loss (``smooth_f=0.05``, no debiasing); stops when the loss exceeds 5x
  its best; skips the first 10 and last 5 points and takes the most negative
  ``np.gradient`` of the loss *per step index*.
- ``lightning``: PyTorch Lightning's ``lr_find().suggestion()``. Its own range is 1e-8..1;
  its EMA (beta 0.98) is debiased with the global step + 1, one step late, so the first
  smoothed value is ~0.5x the real loss; stops when the smoothed loss exceeds 4x its best
  (from the third step); skips the first 10 points and the last one and takes the most
  negative gradient of the loss with respect to the *linear* LR.
"""

from __future__ import annotations

import math

import numpy as np

#: The ramp each library uses by default (start, end, steps); fastai's and torch-lr-finder's
#: common setup share lrscope's 1e-7..10 in 100 steps.
RAMPS = {"default": (1e-7, 10.0, 100), "lightning": (1e-8, 1.0, 100)}


def _debiased_ema(raw: np.ndarray, beta: float, lag: int = 0) -> np.ndarray:
    out = np.empty(raw.size)
    average = 0.0
    for t, value in enumerate(raw, start=1):
        average = beta * average + (1 - beta) * value
        out[t - 1] = average / (1 - beta ** (t + lag))
    return out


def _stop_at(curve: np.ndarray, factor: float, first_check: int = 0) -> int:
    """Number of points recorded when "loss > factor x best so far" first holds (inclusive)."""
    best = math.inf
    for i, value in enumerate(curve):
        if not math.isfinite(value):
            return i + 1
        if i >= first_check and value > factor * best:
            return i + 1
        best = min(best, value)
    return curve.size


def _finite(lrs: np.ndarray, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bad = ~np.isfinite(curve)
    stop = int(np.argmax(bad)) if bad.any() else curve.size
    return lrs[:stop], curve[:stop]


def _fastai_curve(lrs: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        smooth = _debiased_ema(raw, 0.98)
    n = _stop_at(smooth, 4.0)
    lrs, smooth = lrs[:n], smooth[:n]
    skip = RAMPS["default"][2] // 10
    return _finite(lrs[skip:-5], smooth[skip:-5])


def fastai_valley(lrs: np.ndarray, raw: np.ndarray) -> float | None:
    lrs, losses = _fastai_curve(lrs, raw)
    n = losses.size
    if n < 2:
        return None
    # lengths[i]: longest strictly decreasing subsequence ending at i.
    lengths = np.ones(n, dtype=int)
    for i in range(1, n):
        earlier = lengths[:i][losses[:i] > losses[i]]
        if earlier.size:
            lengths[i] = earlier.max() + 1
    end = int(np.argmax(lengths))
    start = end - int(lengths[end])
    third = (end - start) / 3
    index = start + int(third) + int(third / 2)
    return float(lrs[min(max(index, 0), n - 1)])


def fastai_minimum(lrs: np.ndarray, raw: np.ndarray) -> float | None:
    lrs, losses = _fastai_curve(lrs, raw)
    if losses.size == 0:
        return None
    return float(lrs[int(np.argmin(losses))] / 10)


def torch_lr_finder(lrs: np.ndarray, raw: np.ndarray) -> float | None:
    history = np.empty(raw.size)
    with np.errstate(all="ignore"):
        for i, value in enumerate(raw):
            history[i] = value if i == 0 else 0.05 * value + 0.95 * history[i - 1]
    n = _stop_at(history, 5.0)
    lrs, history = lrs[:n][10:-5], history[:n][10:-5]
    if history.size < 2 or not np.all(np.isfinite(history)):
        lrs, history = _finite(lrs, history)
        if history.size < 2:
            return None
    return float(lrs[int(np.argmin(np.gradient(history)))])


def lightning(lrs: np.ndarray, raw: np.ndarray) -> float | None:
    with np.errstate(all="ignore"):
        smooth = _debiased_ema(raw, 0.98, lag=1)
    n = _stop_at(smooth, 4.0, first_check=1)
    lrs, smooth = lrs[:n][10:-1], smooth[:n][10:-1]
    keep = np.isfinite(smooth)
    lrs, smooth = lrs[keep], smooth[keep]
    if smooth.size < 2:
        return None
    with np.errstate(all="ignore"):
        slope = np.gradient(smooth, lrs)
    slope = np.where(np.isfinite(slope), slope, np.inf)
    return float(lrs[int(np.argmin(slope))])


#: name -> (ramp, function)
PEERS = {
    "fastai_valley": ("default", fastai_valley),
    "fastai_minimum": ("default", fastai_minimum),
    "torch_lr_finder": ("default", torch_lr_finder),
    "lightning": ("lightning", lightning),
}

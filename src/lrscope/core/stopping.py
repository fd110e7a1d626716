"""When a range test stops: a non-finite loss, or a smoothed loss that has clearly blown up."""

from __future__ import annotations

import math

import numpy as np

from lrscope.errors import invalid

#: The ways a range test ends.
STOP_REASONS = ("completed", "non_finite", "diverged", "interrupted")

#: Raw losses of the first steps (tiny LRs, nothing learned yet) that measure the noise level.
NOISE_WINDOW = 10


def divergence_threshold(start: float, best: float, noise: float, diverge_factor: float) -> float:
    """The smoothed loss above which the test counts as diverged.

    ``best + diverge_factor * max(start - best, noise)``, where ``start`` is the first smoothed
    loss, ``best`` the lowest so far and ``noise`` the spread of the first raw losses. It is
    shift- and scale-free, so it works for negative losses, losses with an offset and losses
    whose minimum is ~0 (a noiseless regression), where "4 x the best loss" would trip on
    round-off. Once the loss has fallen, divergence means rising ``diverge_factor`` times the
    fall above the best; before it has fallen, rising that many noise levels.
    """
    scale = max(start - best, noise, np.finfo(np.float64).tiny)
    return best + diverge_factor * scale


def check_stop(smooth: np.ndarray, raw: np.ndarray, diverge_factor: float) -> tuple[str, int]:
    """Scan a curve and return ``(reason, index)`` of the first stop, or ``("completed", n)``.

    ``index`` is the step at which the stop condition first holds. ``smooth`` and ``raw`` are
    shape ``(n,)``.
    """
    if not diverge_factor > 0 or not math.isfinite(diverge_factor):
        raise invalid(
            "diverge_factor", "must be a positive finite number", diverge_factor=diverge_factor
        )
    raw = np.asarray(raw, dtype=np.float64)
    smooth = np.asarray(smooth, dtype=np.float64)
    if raw.size == 0:
        return "completed", 0
    bad = ~np.isfinite(raw) | ~np.isfinite(smooth)
    first_bad = int(np.argmax(bad)) if bad.any() else raw.size
    if first_bad == 0:
        return "non_finite", 0
    finite = smooth[:first_bad]
    best = np.minimum.accumulate(finite)
    with np.errstate(over="ignore", invalid="ignore"):
        noise = float(np.std(raw[: min(first_bad, NOISE_WINDOW)]))
        noise = noise if math.isfinite(noise) else 0.0
        scale = np.maximum(finite[0] - best, max(noise, np.finfo(np.float64).tiny))
        over = finite > best + diverge_factor * scale
    if over.any():
        return "diverged", int(np.argmax(over))
    if first_bad < raw.size:
        return "non_finite", first_bad
    return "completed", raw.size

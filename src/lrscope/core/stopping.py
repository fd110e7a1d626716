"""When a range test stops: a non-finite loss, or a smoothed loss that has clearly blown up."""

from __future__ import annotations

import math

import numpy as np

from lrscope.core.numeric import std, std_of_floats
from lrscope.errors import invalid

#: The ways a range test ends.
STOP_REASONS = ("completed", "non_finite", "diverged", "interrupted")

#: Raw losses of the first steps (tiny LRs, nothing learned yet) that measure the noise level.
NOISE_WINDOW = 10

#: The lowest raw loss :meth:`CurveMonitor.quiet_bound` vouches for: far from the overflow of
#: the running average (a loss of -1e300 cannot make it non-finite).
QUIET_LOW = -1e300


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
        noise = std(raw[: min(first_bad, NOISE_WINDOW)])
        noise = noise if math.isfinite(noise) else 0.0
        scale = np.maximum(finite[0] - best, max(noise, np.finfo(np.float64).tiny))
        over = finite > best + diverge_factor * scale
    if over.any():
        return "diverged", int(np.argmax(over))
    if first_bad < raw.size:
        return "non_finite", first_bad
    return "completed", raw.size


class StopScan:
    """:func:`check_stop` for a curve that grows chunk by chunk, at O(new points) per chunk.

    ``extend(smooth_part, raw_part)`` returns exactly what ``check_stop`` returns on the whole
    curve so far (all parts concatenated). A range test checks after every chunk; rescanning
    the whole curve each time (NumPy calls on ever longer arrays) cost more than the chunks of
    a small model. Exact because, once the first ``NOISE_WINDOW`` points are finite, the noise
    level is fixed and whether point ``i`` is over the threshold depends only on the points up
    to ``i``: earlier points never change their verdict. Before that it rescans the few points
    so far with ``check_stop``'s arithmetic on Python floats (bitwise the same answer), and once
    a non-finite point fixes the answer it repeats it.
    """

    def __init__(self, diverge_factor: float) -> None:
        if not diverge_factor > 0 or not math.isfinite(diverge_factor):
            raise invalid(
                "diverge_factor", "must be a positive finite number", diverge_factor=diverge_factor
            )
        self.diverge_factor = diverge_factor
        self._smooth: list[float] = []  # the curve, kept until the noise level is fixed
        self._raw: list[float] = []
        self._count = 0
        self._settled = False
        self._final: tuple[str, int] | None = None  # the answer once a non-finite point is seen
        self._diverged: int | None = None
        self._start = self._best = self._floor = 0.0

    def extend(
        self, smooth: np.ndarray | list[float], raw: np.ndarray | list[float]
    ) -> tuple[str, int]:
        """Add the next points (shape ``(k,)`` each, or lists of floats) and return
        ``(reason, index)``."""
        smooth_values = (
            smooth
            if type(smooth) is list
            else np.asarray(smooth, dtype=np.float64).reshape(-1).tolist()
        )
        raw_values = (
            raw if type(raw) is list else np.asarray(raw, dtype=np.float64).reshape(-1).tolist()
        )
        if len(smooth_values) != len(raw_values):
            raise invalid(
                "smooth",
                "must have as many points as raw",
                smooth_points=len(smooth_values),
                raw_points=len(raw_values),
            )
        if self._final is not None:  # the first non-finite point fixed check_stop's answer
            return self._final
        if not self._settled:
            return self._extend_unsettled(smooth_values, raw_values)
        isfinite, factor = math.isfinite, self.diverge_factor
        best, start, floor, diverged = self._best, self._start, self._floor, self._diverged
        index = self._count
        for s, r in zip(smooth_values, raw_values, strict=True):
            if not (isfinite(r) and isfinite(s)):
                self._final = (
                    ("diverged", diverged) if diverged is not None else ("non_finite", index)
                )
                return self._final
            if diverged is None:
                best = min(best, s)
                if s > best + factor * max(start - best, floor):
                    diverged = index
            index += 1
        self._best, self._diverged, self._count = best, diverged, index
        return ("diverged", diverged) if diverged is not None else ("completed", index)

    def _extend_unsettled(self, smooth: list[float], raw: list[float]) -> tuple[str, int]:
        self._smooth += smooth
        self._raw += raw
        self._count = len(self._raw)
        result, floor = _check_stop_lists(self._smooth, self._raw, self.diverge_factor)
        if not all(math.isfinite(v) for v in self._smooth + self._raw):
            self._final = result
        elif self._count >= NOISE_WINDOW:
            # From here on check_stop's noise is the spread of these first raw losses.
            self._floor = floor
            self._start, self._best = self._smooth[0], min(self._smooth)
            self._diverged = result[1] if result[0] == "diverged" else None
            self._settled = True
            self._smooth, self._raw = [], []
        return result


_TINY = float(np.finfo(np.float64).tiny)


def _check_stop_lists(
    smooth: list[float], raw: list[float], diverge_factor: float
) -> tuple[tuple[str, int], float]:
    """:func:`check_stop` on Python floats, and the noise floor it used: the same IEEE
    operations in the same order (:func:`~lrscope.core.numeric.std_of_floats`, the same value
    as its :func:`~lrscope.core.numeric.std`, for the noise), so the same answer bit for bit,
    without a NumPy call: this runs between the training steps."""
    n = len(raw)
    if n == 0:
        return ("completed", 0), _TINY
    isfinite = math.isfinite
    first_bad = next((i for i in range(n) if not (isfinite(raw[i]) and isfinite(smooth[i]))), n)
    if first_bad == 0:
        return ("non_finite", 0), _TINY
    noise = std_of_floats(raw[: min(first_bad, NOISE_WINDOW)])
    floor = max(noise if isfinite(noise) else 0.0, _TINY)
    start = best = smooth[0]
    for i in range(first_bad):
        value = smooth[i]
        best = min(best, value)
        if value > best + diverge_factor * max(start - best, floor):
            return ("diverged", i), floor
    if first_bad < n:
        return ("non_finite", first_bad), floor
    return ("completed", n), floor


class CurveMonitor:
    """What a range test does with each chunk of raw losses, in one pass over the chunk: the
    debiased EMA of :class:`~lrscope.core.smoothing.RunningSmoother` and the stop check of
    :class:`StopScan`, bit for bit (the same operations in the same order).

    One loop over local variables instead of two objects' loops: this runs between a small
    model's training steps, where every call and attribute lookup costs several times its
    microbenchmark. The rare cases (the first ``NOISE_WINDOW`` points, a non-finite loss, an
    overflowing average) go through the two objects' own methods.
    """

    def __init__(self, beta: float, diverge_factor: float) -> None:
        from lrscope.core.smoothing import RunningSmoother

        self.smoother = RunningSmoother(beta)
        self.scan = StopScan(diverge_factor)

    def quiet_bound(self) -> float:
        """The highest raw loss the next steps may have, any number of them, with the test
        certain not to stop: while every next loss is finite, at least :data:`QUIET_LOW` and
        at most this, no smoothed value can cross the divergence threshold. ``-inf`` where no
        such bound is known (the noise level not yet fixed, a stop already seen, a
        ``diverge_factor`` below 1).

        Why it holds: the debiased EMA after ``j`` more losses, each at most ``L``, is at most
        ``(beta**j * a + (1 - beta**j) * L) / (1 - beta**(n + j))`` (``a`` the running average,
        ``n`` the count), and the threshold ``best + f * max(start - best, floor)`` is, for
        ``f >= 1``, never below its value at ``best = min(best, start - floor)``, however low
        ``best`` goes. The largest ``L`` that keeps the first under the second for every ``j``
        is the smaller of its ``j = 1`` and ``j -> inf`` values (the bound is monotone in
        ``beta**j``); a relative margin of 1e-9 covers the rounding of many steps.
        """
        smoother, scan = self.smoother, self.scan
        factor = scan.diverge_factor
        if (
            smoother.broken
            or not scan._settled
            or scan._final is not None
            or scan._diverged is not None
            or factor < 1.0
        ):
            return -math.inf
        beta, average, count = smoother.beta, smoother.average, smoother.count
        start, floor = scan._start, scan._floor
        lowest = min(scan._best, start - floor)
        threshold = lowest + factor * max(start - lowest, floor)
        carried = threshold * beta**count + average
        bound = min(threshold, (threshold - beta * carried) / (1.0 - beta))
        scale = max(abs(threshold), abs(start), abs(lowest), abs(average), floor)
        bound = min(bound - 1e-9 * scale, -QUIET_LOW)
        return bound if math.isfinite(bound) else -math.inf

    def extend(self, raw: list[float]) -> tuple[list[float], str, int]:
        """Add the next raw losses (Python floats); return their smoothed values and what
        :func:`check_stop` answers on the whole curve so far, ``(smoothed, reason, index)``."""
        smoother, scan = self.smoother, self.scan
        if smoother.broken or not scan._settled or scan._final is not None:
            smooth = smoother.extend_list(raw)
            return (smooth, *scan.extend(smooth, raw))
        isfinite = math.isfinite
        beta = smoother.beta
        keep = 1.0 - beta
        average, count = smoother.average, smoother.count
        best, start, floor, factor = scan._best, scan._start, scan._floor, scan.diverge_factor
        diverged, index = scan._diverged, scan._count
        out: list[float] = []
        append = out.append
        rest = None  # from the first point the fast loop cannot take on, if any
        for value in raw:
            if not isfinite(value):
                rest = len(out)
                break
            next_average = beta * average + keep * value
            smoothed = next_average / (1.0 - beta ** (count + 1))
            if not isfinite(smoothed):
                rest = len(out)
                break
            average, count = next_average, count + 1
            append(smoothed)
            if diverged is None:
                if smoothed < best:
                    best = smoothed
                scale = start - best
                if scale < floor:
                    scale = floor
                if smoothed > best + factor * scale:
                    diverged = index
            index += 1
        smoother.average, smoother.count = average, count
        scan._best, scan._diverged, scan._count = best, diverged, index
        if rest is not None:  # a non-finite loss or average: the objects' own rules from here
            tail = smoother.extend_list(raw[rest:])
            reason, at = scan.extend(tail, raw[rest:])
            return out + tail, reason, at
        return (out, "diverged", diverged) if diverged is not None else (out, "completed", index)

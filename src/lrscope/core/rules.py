"""Suggestion rules: each turns a range-test curve into one learning rate and a reason.

A rule is a pure function ``rule(lrs, smooth) -> Suggestion`` over the finite part of the
curve, with ``lrs`` and ``smooth`` float64 arrays of equal shape ``(n,)``. Rules look at the
smoothed loss against log10(LR) (not against the step index or the linear LR, whose slopes
depend on the ramp). A rule never raises on a curve: when it cannot answer (too few points,
a loss that never fell) it returns ``lr=None`` and says why.

Rules:

- ``minimum``: the LR at the lowest smoothed loss. Usually too high to train with: it is where
  the loss is about to blow up.
- ``min_div10``: the lesson's rule, ``minimum / 10``.
- ``steepest``: the LR where the smoothed loss falls fastest per decade of LR, searched before
  the minimum.
- ``valley``: the idea of fastai's ``valley`` (implemented from its description): find the
  longest stretch over which the loss keeps decreasing, and take the point half-way along it.
- ``edge``: lrscope's rule. A third of the LR at the lowest point of the *raw* loss smoothed
  without lag (a centred running median). The debiased EMA lags the ramp by tens of steps, so
  its minimum sits well past the point where training became unstable (about 5x the
  divergence LR on the lesson at 100 steps); the centred median has no lag and ignores single
  spikes. The minimum of the raw curve is where the ramp has just crossed the stability edge;
  a third of it (half a decade) lands near the best fixed LR on the quality benchmark
  (``benchmarks/bench_quality.py``), where too high costs far more than too low. The loss must
  fall by more than twice its starting noise, so a flat noisy curve gives no answer instead of
  a noise dip.
- ``blend``: lrscope's default. The geometric mean of ``edge`` and ``min_div10``: two readings
  of the same stability edge that err in opposite ways (``edge`` reads the raw curve without
  lag but with its noise; ``min_div10`` reads the smoothed curve, steady but late), so their
  mean in log LR cancels part of each one's error. It has no parameter of its own. On the
  quality benchmark it beat both on worst-case regret and seed spread (see DEFAULT_RULE).

A rule takes an optional third argument ``loss``, the raw per-step losses; rules that do not
use it ignore it, and ``edge`` falls back to the smoothed curve when it is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lrscope.core.numeric import std
from lrscope.errors import invalid

MIN_POINTS = 5


@dataclass(frozen=True)
class Suggestion:
    """A rule's answer: ``lr`` (None when the rule cannot answer), the step ``index`` it was
    read at, and a plain-words ``reason``."""

    rule: str
    lr: float | None
    index: int | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "lr": self.lr, "index": self.index, "reason": self.reason}


Rule = Callable[..., Suggestion]


def _finite_prefix(lrs: np.ndarray, smooth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lrs = np.asarray(lrs, dtype=np.float64).reshape(-1)
    smooth = np.asarray(smooth, dtype=np.float64).reshape(-1)
    n = min(lrs.size, smooth.size)
    lrs, smooth = lrs[:n], smooth[:n]
    ok = np.isfinite(smooth) & np.isfinite(lrs) & (lrs > 0)
    stop = int(np.argmin(ok)) if not ok.all() else n
    return lrs[:stop], smooth[:stop]


def _too_short(rule: str, n: int) -> Suggestion | None:
    if n < MIN_POINTS:
        return Suggestion(
            rule,
            None,
            None,
            f"only {n} finite point(s) before the curve ended; a rule needs at least "
            f"{MIN_POINTS}: lower start_lr or raise steps",
        )
    return None


def _never_fell(rule: str, smooth: np.ndarray) -> Suggestion | None:
    if int(np.argmin(smooth)) == 0:
        return Suggestion(
            rule,
            None,
            None,
            "the smoothed loss never fell below its first value: the tested range starts "
            "too high (lower start_lr) or the model is not learning",
        )
    return None


def _nearest(lrs: np.ndarray, lr: float) -> int:
    """Index of the LR of ``lrs`` closest to ``lr`` in log10."""
    return int(np.argmin(np.abs(np.log10(lrs) - np.log10(lr))))


def minimum(lrs: np.ndarray, smooth: np.ndarray, loss: np.ndarray | None = None) -> Suggestion:
    """LR at the lowest smoothed loss."""
    return _minimum(*_finite_prefix(lrs, smooth))


def _minimum(lrs: np.ndarray, smooth: np.ndarray) -> Suggestion:
    """:func:`minimum` on a curve already cut to its finite prefix."""
    early = _too_short("minimum", lrs.size) or _never_fell("minimum", smooth)
    if early:
        return early
    i = int(np.argmin(smooth))
    return Suggestion(
        "minimum", float(lrs[i]), i, f"lowest smoothed loss ({smooth[i]:.4g}) at step {i}"
    )


def min_div10(lrs: np.ndarray, smooth: np.ndarray, loss: np.ndarray | None = None) -> Suggestion:
    """The lesson's rule: the LR at the lowest smoothed loss, divided by 10."""
    return _min_div10(*_finite_prefix(lrs, smooth))


def _min_div10(lrs_f: np.ndarray, smooth: np.ndarray) -> Suggestion:
    """:func:`min_div10` on a curve already cut to its finite prefix."""
    found = _minimum(lrs_f, smooth)
    if found.lr is None:
        return Suggestion("min_div10", None, None, found.reason)
    lr = found.lr / 10.0
    index = _nearest(lrs_f, lr)
    if lr < lrs_f[0]:
        return Suggestion(
            "min_div10",
            None,
            None,
            f"minimum/10 = {lr:.3g} is below the tested range "
            f"(start {lrs_f[0]:.3g}): lower start_lr",
        )
    return Suggestion(
        "min_div10", lr, index, f"a tenth of the LR at the lowest loss ({found.lr:.3g})"
    )


def _log_slope(lrs: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    log_lr = np.log10(lrs)
    if np.ptp(log_lr) == 0:
        return np.zeros_like(smooth)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = np.gradient(smooth, log_lr)
    return np.where(np.isfinite(slope), slope, 0.0)


def steepest(lrs: np.ndarray, smooth: np.ndarray, loss: np.ndarray | None = None) -> Suggestion:
    """LR of the most negative slope d(smoothed loss)/d(log10 LR), before the minimum."""
    lrs, smooth = _finite_prefix(lrs, smooth)
    early = _too_short("steepest", lrs.size) or _never_fell("steepest", smooth)
    if early:
        return early
    stop = int(np.argmin(smooth)) + 1
    slope = _log_slope(lrs, smooth)[:stop]
    i = int(np.argmin(slope))
    if not slope[i] < 0:
        return Suggestion("steepest", None, None, "the smoothed loss never decreases with LR")
    return Suggestion(
        "steepest", float(lrs[i]), i, f"loss falls fastest here ({slope[i]:.3g} per decade of LR)"
    )


def valley(lrs: np.ndarray, smooth: np.ndarray, loss: np.ndarray | None = None) -> Suggestion:
    """Half-way along the longest decreasing run of the smoothed loss (fastai's idea)."""
    lrs, smooth = _finite_prefix(lrs, smooth)
    early = _too_short("valley", lrs.size) or _never_fell("valley", smooth)
    if early:
        return early
    n = smooth.size
    # Longest strictly decreasing subsequence ending at each point, O(n^2) like the original
    # idea; n is the number of range-test steps (hundreds), so this is cheap.
    length = np.ones(n, dtype=np.int64)
    start = np.arange(n)
    for j in range(1, n):
        lower = np.flatnonzero(smooth[:j] > smooth[j])
        if lower.size:
            best = lower[np.argmax(length[lower])]
            if length[best] + 1 > length[j]:
                length[j] = length[best] + 1
                start[j] = start[best]
    end = int(np.argmax(length))
    begin = int(start[end])
    i = begin + (end - begin) // 2
    return Suggestion(
        "valley", float(lrs[i]), i, f"half-way along the longest descent (steps {begin}..{end})"
    )


#: Half-width of the centred median as a share of the curve length (3 points at 100 steps).
EDGE_WINDOW = 1 / 33
#: How far below the lag-free minimum ``edge`` goes: half a decade.
EDGE_FACTOR = 3.0


def _centred_median(values: np.ndarray, half_width: int) -> np.ndarray:
    """Running median over ``2 * half_width + 1`` points, centred (no lag), shrunk at the ends."""
    n, h = values.size, half_width
    out = np.empty(n)
    if n >= 2 * h + 1:
        # Full windows in one vectorised call (the per-point loop dominated the suggestion's
        # cost on small models); only the shrunk windows at the two ends are done one by one.
        # The windows gathered by one fancy index (sliding_window_view's set-up alone costs
        # more than this whole gather and the sort on a 100-point curve).
        windows = values[np.arange(n - 2 * h)[:, None] + np.arange(2 * h + 1)]
        if np.isnan(values).any():  # np.median's NaN rule: a window with a NaN gives NaN
            out[h : n - h] = np.median(windows, axis=1)
        else:  # an odd window's median is its middle element: a sort is 4x cheaper
            out[h : n - h] = np.sort(windows, axis=1)[:, h]
        ends = [*range(h), *range(n - h, n)]
    else:
        ends = list(range(n))
    listed = values.tolist()
    for i in ends:  # a handful of short windows: plain Python beats np.median's set-up here
        window = listed[max(0, i - h) : min(n, i + h + 1)]
        if any(v != v for v in window):  # NaN inside: np.median's answer is NaN
            out[i] = math.nan
            continue
        window.sort()
        mid = len(window) // 2
        out[i] = window[mid] if len(window) % 2 else (window[mid - 1] + window[mid]) / 2
    return out


def edge(lrs: np.ndarray, smooth: np.ndarray, loss: np.ndarray | None = None) -> Suggestion:
    """A third of the LR at the lowest lag-free smoothed loss (lrscope's rule; see above)."""
    return _edge(*_finite_prefix(lrs, smooth if loss is None else loss))


def _edge(lrs: np.ndarray, curve: np.ndarray) -> Suggestion:
    """:func:`edge` on a curve already cut to its finite prefix."""
    early = _too_short("edge", lrs.size)
    if early:
        return early
    centred = _centred_median(curve, max(1, round(lrs.size * EDGE_WINDOW)))
    lowest = int(np.argmin(centred))
    noise = std(curve[: min(curve.size, 10)])
    fall = float(centred[0] - centred[lowest])
    if lowest == 0 or not fall > 2.0 * noise:
        return Suggestion(
            "edge",
            None,
            None,
            "the loss never fell clearly below its first values (fall "
            f"{max(fall, 0.0):.3g} vs noise {noise:.3g}): the tested range starts too high "
            "(lower start_lr), ends too low (raise end_lr) or the model is not learning",
        )
    lr = float(lrs[lowest]) / EDGE_FACTOR
    if lr < lrs[0]:
        return Suggestion(
            "edge",
            None,
            None,
            f"a third of the edge ({lrs[lowest]:.3g}) is below the tested range "
            f"(start {lrs[0]:.3g}): lower start_lr",
        )
    index = _nearest(lrs, lr)
    return Suggestion(
        "edge",
        lr,
        index,
        f"a third of {lrs[lowest]:.3g}, where the loss (centred median) was lowest, at step "
        f"{lowest}",
    )


def blend(lrs: np.ndarray, smooth: np.ndarray, loss: np.ndarray | None = None) -> Suggestion:
    """The geometric mean of ``edge`` and ``min_div10`` (lrscope's default; see above). When
    only one of them answers, its LR, with the other's reason."""
    # Each curve is cut to its finite prefix once, for both parts and the index.
    lrs_s, smooth_f = _finite_prefix(lrs, smooth)
    lrs_f, curve = (lrs_s, smooth_f) if loss is None else _finite_prefix(lrs, loss)
    fast = _edge(lrs_f, curve)
    steady = _min_div10(lrs_s, smooth_f)
    if fast.lr is None and steady.lr is None:
        return Suggestion(
            "blend", None, None, f"neither edge nor min_div10 answered: {fast.reason}"
        )
    if fast.lr is None or steady.lr is None:
        only, other = (steady, fast) if fast.lr is None else (fast, steady)
        return Suggestion(
            "blend",
            only.lr,
            only.index,
            f"{only.rule} alone ({only.lr:.3g}); {other.rule} gave none: {other.reason}",
        )
    lr = float(np.sqrt(fast.lr * steady.lr))
    index = _nearest(lrs_f, lr)
    return Suggestion(
        "blend",
        lr,
        index,
        f"geometric mean of edge ({fast.lr:.3g}) and min_div10 ({steady.lr:.3g})",
    )


RULES: dict[str, Rule] = {
    "blend": blend,
    "edge": edge,
    "minimum": minimum,
    "min_div10": min_div10,
    "steepest": steepest,
    "valley": valley,
}

#: The rule used when none is named, chosen by benchmarks/bench_quality.py (table in
#: benchmarks/results/quality.md, method in docs/quality.md). It measures regret = test loss
#: after the budget at the suggested LR / best loss over a log grid (13-17 LRs, 5 seeds, same
#: start) on the lesson, a digits MLP (Adam), a digits CNN (SGD momentum 0.9), a character LM
#: (AdamW), two budgets each, and a Keras MLP per backend. ``blend`` has the lowest worst-case
#: regret of the rules and the smallest seed spread, and beats every peer default (fastai
#: valley, Lightning, torch-lr-finder) on median and worst. Its parts alone lose: ``min_div10``
#: is 5x low on the CNN, and ``edge`` has the worst case (9.8 on the lesson at 20 steps, where
#: it can land above the divergence bound 2/lambda_max).
DEFAULT_RULE = "blend"


def apply_rule(
    rule: str, lrs: np.ndarray, smooth: np.ndarray, loss: np.ndarray | None = None
) -> Suggestion:
    """Run the rule named ``rule`` (one of :data:`RULES`); ``loss`` is the raw curve."""
    if rule not in RULES:
        raise invalid("rule", f"must be one of {sorted(RULES)}", rule=rule)
    return RULES[rule](lrs, smooth, loss)

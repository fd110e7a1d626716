"""How far to trust a range test: quality flags, an interval for the suggestion, plain words.

A suggestion is one number read off one noisy curve. :func:`assess` measures what can go
wrong with that reading and names it:

- ``too_few_points``: fewer than :data:`MIN_GOOD_POINTS` finite steps (the test stopped almost
  at once); every rule is guessing.
- ``never_fell``: the loss never fell clearly (by more than twice its starting noise) below
  its first values: the range starts too high, or the model does not learn.
- ``never_diverged``: the loss had not risen clearly above its lowest point by the end of the
  test: the stability edge lies beyond ``end_lr``, so edge-based rules read the end of the
  range, not the edge. Raise ``end_lr``.
- ``broke_down``: after its lowest point the loss went back to about where it started
  instead of blowing up: its running median came back at least :data:`BACK_SHARE` (half) of
  its fall and never rose more than :data:`BREAKDOWN_FALLS` times its fall above its
  starting level, over at least one median window, on a curve of
  at least :data:`MIN_GOOD_POINTS` steps without a non-finite loss, and the test did not
  end with two rising losses above that level (a blow-up in the last few steps, which the
  median's window cannot show). Training broke down (dead units, a collapse to one
  prediction, spikes on a plateau) rather than diverged, so the edge the rules read is
  blurred. On the quality benchmark it fires on every seed of the digits CNN (SGD momentum;
  4 of 5 on another CPU's kernels, benchmarks/results/ramp_length.md), where the default
  rule on one 100-step test read up to 4.4x below a seed's grid-best LR at 100 steps (7.7x
  at 400), and on one seed of the Keras MLP, where it was within 1.7x. :func:`broke_down`
  computes this flag alone: ``range_test`` (``retest=True``) then runs the test again with
  4x the steps, whose reading is steadier; a retested curve that broke down again is a
  reason to check with ``lrscope.verify`` (docs/quality.md).
- ``too_noisy``: the step-to-step scatter of the loss around its running median is more
  than a quarter of the total fall: the position of the minimum is uncertain.
- ``suggestions_disagree``: the two readings of the edge that the default blends (``edge``
  and ``min_div10``) lie more than :data:`DISAGREE_DECADES` decades apart; the spread is
  reported. ``steepest`` is not compared: it reads where the loss falls fastest, not the
  edge, and sits 11-20x below the edge on the lesson when the ramp starts at 1e-5 to 1e-3,
  which raised this warning on curves whose default was right.
- ``interrupted``: the test was stopped by the user before it finished.

The interval: the default rule divides the LR at a minimum by a factor (``min_div10``: the
smoothed loss, 10; ``edge``: the lag-free centred-median loss, 3). Every LR next to that
point whose loss lies within the scatter of the lowest value could equally be the minimum,
and the minimum cannot be placed more finely than the median's window; the interval is that
stretch of LRs, divided by the same factor (``blend``, the geometric mean of those two
rules: the geometric mean of their two intervals). It is the reading uncertainty of
this one curve, not a guarantee about the best LR (its top can lie above the LR where training
diverges); a wide interval is a reason to run ``lrscope.verify``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from lrscope.core.numeric import std
from lrscope.core.rules import (
    DEFAULT_RULE,
    EDGE_FACTOR,
    EDGE_WINDOW,
    _centred_median,
    _finite_prefix,
    apply_rule,
)

#: Fewer finite steps than this and the curve cannot be read reliably.
MIN_GOOD_POINTS = 20
#: Rules compared for ``suggestions_disagree`` (the two the default ``blend`` is the geometric
#: mean of) and the spread above which they disagree.
COMPARED_RULES = ("edge", "min_div10")
DISAGREE_DECADES = 1.0
#: Scatter / fall ratio above which the curve is ``too_noisy``.
NOISY_RATIO = 0.25
#: The loss must end this share of its fall above its lowest point to count as diverged.
ROSE_SHARE = 0.1
#: ``broke_down``: the running median after the lowest point stayed below the starting level
#: plus this many falls (measured on the quality benchmark's torch and NumPy tasks: at most
#: 1.0 on the CNN, at least 9.9 on every curve that blew up).
BREAKDOWN_FALLS = 2.0
#: ``broke_down`` also needs the running median to come back at least this share of its fall
#: (half-way back to where it started). Every curve the flag fires on in the quality
#: benchmark rose 1.4-2.0 falls after its lowest point (the CNN, one Keras seed); a loss that
#: only creeps up at the end of the range without blowing up (Adam on a small softmax
#: regression: 0.2 falls) has not broken down: it is rising past its edge, not collapsing.
BACK_SHARE = 0.5

FLAGS = (
    "too_few_points",
    "never_fell",
    "never_diverged",
    "broke_down",
    "too_noisy",
    "suggestions_disagree",
    "interrupted",
)


@dataclass(frozen=True)
class Quality:
    """What :func:`assess` measured on one range test.

    Attributes:
        flags: names from :data:`FLAGS` that apply, in that order (empty: nothing found).
        lr: the default rule's suggestion (None when it gave none).
        interval: ``(low, high)`` LRs around ``lr`` (see the module docstring), or None.
        spread_decades: max - min of log10 of the compared rules' suggestions (None when
            fewer than two answered).
        noise_ratio: scatter of the loss around its running median / total fall (None when
            the loss never fell).
        points: finite steps in the curve.
    """

    flags: tuple[str, ...]
    lr: float | None
    interval: tuple[float, float] | None
    spread_decades: float | None
    noise_ratio: float | None
    points: int
    suggestions: dict[str, float | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no flag was raised."""
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        return {
            "flags": list(self.flags),
            "lr": self.lr,
            "interval": list(self.interval) if self.interval else None,
            "spread_decades": self.spread_decades,
            "noise_ratio": self.noise_ratio,
            "points": self.points,
            "suggestions": dict(self.suggestions),
        }


class _Shape(NamedTuple):
    """The lag-free reading of a curve that the flags and the interval share."""

    half: int  # half-width of the centred median's window
    centred: np.ndarray  # the raw loss's centred running median
    lowest: int  # step of its lowest point
    fall: float  # how far it fell from its first value to that point
    flag: str | None  # "never_fell", "never_diverged", "broke_down" or None


def _shape(raw: np.ndarray, stop_reason: str) -> _Shape:
    """Read the finite raw curve (at least 3 points) the way the ``edge`` rule does, and name
    how it ended: never fell, never diverged, broke down, or none of these."""
    half = max(1, round(raw.size * EDGE_WINDOW))
    centred = _centred_median(raw, half)
    lowest = int(np.argmin(centred))
    start_noise = std(raw[: min(raw.size, 10)])
    fall = float(centred[0] - centred[lowest])
    flag = None
    if lowest == 0 or not fall > 2.0 * start_noise:
        flag = "never_fell"
    else:
        rise = float(np.max(centred[lowest:]) - centred[lowest])
        stopped = stop_reason in ("diverged", "non_finite")
        band = centred[0] + BREAKDOWN_FALLS * fall  # "back to about where it started"
        if not stopped and rise < ROSE_SHARE * fall:
            flag = "never_diverged"
        elif (
            stop_reason != "non_finite"
            and raw.size >= MIN_GOOD_POINTS  # on fewer, too_few_points says it all
            and centred.size - lowest > 2 * half
            and rise >= BACK_SHARE * fall
            and float(np.max(centred[lowest:])) < band
            and not _rising_at_the_end(raw, band)
        ):
            flag = "broke_down"
    return _Shape(half, centred, lowest, fall, flag)


def _rising_at_the_end(raw: np.ndarray, band: float) -> bool:
    """True when the last two losses are above ``band`` and still rising: the curve is blowing
    up as the test ends. The centred median's shrunk windows at the end cannot show a blow-up
    of the last few steps (the lesson's range test in float32 JAX: the raw loss went 0.07,
    8.4, 1238 while the median ended at 4.2, below the breakdown level of 7.2), and one spike
    is not two."""
    return raw.size >= 2 and float(raw[-1]) > float(raw[-2]) > band


def broke_down(result: Any) -> bool:
    """True when :func:`assess` would flag ``broke_down`` on ``result``; computes only that
    (the range test asks it after every test, to decide whether to test again more slowly).

    >>> broke_down(result)  # doctest: +SKIP
    False
    """
    if result.stop_reason == "non_finite":  # it blew up: a divergence, whatever came before
        return False
    _, raw = _finite_prefix(result.lr, result.loss)
    return raw.size >= 3 and _shape(raw, result.stop_reason).flag == "broke_down"


def assess(result: Any) -> Quality:
    """Quality flags and an interval for a :class:`~lrscope.RangeTestResult`; never raises."""
    lrs, raw = _finite_prefix(result.lr, result.loss)
    flags: list[str] = []
    points = int(lrs.size)
    suggestions = {
        name: apply_rule(name, result.lr, result.smooth_loss, result.loss).lr
        for name in COMPARED_RULES
    }
    default = apply_rule(DEFAULT_RULE, result.lr, result.smooth_loss, result.loss).lr
    interval = None
    noise_ratio = None
    if points < MIN_GOOD_POINTS:
        flags.append("too_few_points")
    if points >= 3:
        half, centred, lowest, fall, shape_flag = _shape(raw, result.stop_reason)
        if shape_flag is not None:
            flags.append(shape_flag)
        if shape_flag != "never_fell":
            residual = raw - centred
            scatter = 1.4826 * float(np.median(np.abs(residual[: lowest + 1])))
            noise_ratio = scatter / fall
            if noise_ratio > NOISY_RATIO:
                flags.append("too_noisy")
            fast = slow = None
            if default is not None and DEFAULT_RULE in ("edge", "blend"):
                fast = _edge_interval(lrs, centred, lowest, half, scatter, EDGE_FACTOR)
            if default is not None and DEFAULT_RULE in ("min_div10", "blend"):
                smooth = np.asarray(result.smooth_loss, dtype=np.float64)[: lrs.size]
                if np.isfinite(smooth).all():
                    at = int(np.argmin(smooth))
                    slow = _edge_interval(lrs, smooth, at, half, scatter, 10.0)
            if fast is not None and slow is not None and DEFAULT_RULE == "blend":
                interval = (
                    float(np.sqrt(fast[0] * slow[0])),
                    float(np.sqrt(fast[1] * slow[1])),
                )
            else:
                interval = fast or slow
    else:
        flags.append("never_fell")
    answered = [lr for lr in suggestions.values() if lr is not None]
    spread = float(np.ptp(np.log10(answered))) if len(answered) >= 2 else None
    if spread is not None and spread > DISAGREE_DECADES:
        flags.append("suggestions_disagree")
    if result.stop_reason == "interrupted":
        flags.append("interrupted")
    ordered = tuple(flag for flag in FLAGS if flag in flags)
    return Quality(ordered, default, interval, spread, noise_ratio, points, suggestions)


def _edge_interval(
    lrs: np.ndarray, centred: np.ndarray, lowest: int, half: int, scatter: float, factor: float
) -> tuple[float, float]:
    """LRs / ``factor`` over the stretch around the lowest point that is within the scatter
    of it, and at least the smoothing window (the minimum cannot be placed more finely)."""
    left = right = lowest
    while left > 0 and centred[left - 1] <= centred[lowest] + scatter:
        left -= 1
    while right < centred.size - 1 and centred[right + 1] <= centred[lowest] + scatter:
        right += 1
    left = min(left, max(0, lowest - half))
    right = max(right, min(centred.size - 1, lowest + half))
    return float(lrs[left] / factor), float(lrs[right] / factor)


_WORDS = {
    "too_few_points": (
        "The test stopped after only {points} usable steps: no rule can read that curve. "
        "Lower start_lr, or raise steps."
    ),
    "never_fell": (
        "The loss never fell clearly below its first values: the range starts too high "
        "(lower start_lr), or the model is not learning (check the data and the loss)."
    ),
    "never_diverged": (
        "The loss had not started to rise by end_lr: the best LR may lie above the tested "
        "range. Raise end_lr and run the test again."
    ),
    "broke_down": (
        "After its lowest point the loss went back to about its starting level instead of "
        "blowing up: training broke down rather than diverged, which blurs the edge the "
        "suggestion is read from (it can be several times too low). Check it with "
        "lrscope.verify at your step budget, or run a test with 4x the steps (e.g. steps=400 "
        "instead of 100; range_test's default retest=True does that by itself), whose reading "
        "is steadier on such curves."
    ),
    "too_noisy": (
        "The loss is noisy (scatter {noise:.0%} of its fall): the suggestion is uncertain. "
        "Use a larger batch, more steps, or check it with lrscope.verify."
    ),
    "suggestions_disagree": (
        "The two readings of the edge behind the suggestion (edge, min_div10) disagree by "
        "{spread:.1f} decades of LR: read the plot, or check the suggestion with "
        "lrscope.verify."
    ),
    "interrupted": "The test was interrupted: the curve is partial.",
}


#: The ``broke_down`` warning on a test that is already range_test's slower retest.
_RETESTED_BROKE_DOWN = (
    "After its lowest point the loss went back to about its starting level instead of "
    "blowing up, also in this test with {factor}x the steps: the suggestion may still be "
    "several times too low. Check it with lrscope.verify at your step budget."
)


def warnings_text(result: Any) -> list[str]:
    """One plain-words warning per quality flag (empty when the curve looks trustworthy)."""
    return _quality_words(assess(result), result)


def retest_note(result: Any) -> str | None:
    """Plain words saying that ``result`` is range_test's slower retest of a test that broke
    down (None when it is not).

    >>> retest_note(result)  # doctest: +SKIP
    'The first test (100 steps) broke down ... this is the test run again with 400 steps ...'
    """
    meta = getattr(result, "metadata", None) or {}
    if meta.get("retest_reason") != "broke_down":
        return None
    first_lr = meta.get("first_test_lr")
    read = f"; its default read {first_lr:.3g}" if isinstance(first_lr, float) else ""
    return (
        f"The first test ({meta.get('first_test_steps')} steps) broke down: the loss fell for "
        f"only a few steps, then went back to its starting level{read}. This is the test run "
        f"again over the same LRs with {result.steps} steps (range_test(retest=False) "
        "runs one test only), whose reading is steadier on such curves."
    )


def _quality_words(quality: Quality, result: Any = None) -> list[str]:
    """:func:`warnings_text` for a :class:`Quality` already measured (on ``result``, whose
    metadata says whether it is already a slower retest)."""
    meta = getattr(result, "metadata", None) or {}
    steps = meta.get("first_test_steps")
    factor = round(result.steps / steps) if isinstance(steps, int) and steps else None
    values = {
        "points": quality.points,
        "noise": quality.noise_ratio or 0.0,
        "spread": quality.spread_decades or 0.0,
        "factor": factor,
    }
    words = dict(_WORDS)
    if meta.get("retest_reason") == "broke_down":
        words["broke_down"] = _RETESTED_BROKE_DOWN
    return [words[flag].format(**values) for flag in quality.flags]

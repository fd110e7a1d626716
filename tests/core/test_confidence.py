import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lrscope
from lrscope.core.confidence import FLAGS, assess, warnings_text
from lrscope.core.ramp import lr_ramp
from lrscope.core.result import RangeTestResult
from lrscope.core.rules import _centred_median
from lrscope.core.smoothing import smooth_loss
from lrscope.lab.linreg import linreg_trainer


def result_from(lrs, loss, stop_reason="completed"):
    loss = np.asarray(loss, dtype=np.float64)
    return RangeTestResult(
        lr=np.asarray(lrs, dtype=np.float64),
        loss=loss,
        smooth_loss=smooth_loss(loss),
        stop_reason=stop_reason,
        stop_step=None,
        start_lr=float(lrs[0]),
        end_lr=float(lrs[-1]),
        steps=len(lrs),
    )


def bowl(n=100, noise=0.0, seed=0):
    """Flat, a fall centred at 1e-3, a blow-up after 1e-1 (loss vs log10 LR)."""
    lrs = lr_ramp(1e-6, 10.0, n)
    x = np.log10(lrs)
    loss = 1.0 - 0.9 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, (x + 1) ** 2, 0.0)
    return lrs, loss + noise * np.random.default_rng(seed).standard_normal(n)


def test_the_lesson_range_test_raises_no_flag(lesson_data):
    result = lrscope.range_test(linreg_trainer(lesson_data), steps=100)
    quality = result.quality()
    assert quality.ok and quality.flags == ()
    assert quality.lr == result.suggest().lr
    low, high = quality.interval
    assert low <= quality.lr <= high


def test_a_range_that_ends_too_low_says_never_diverged(lesson_data):
    result = lrscope.range_test(linreg_trainer(lesson_data), steps=100, end_lr=0.01)
    assert result.stop_reason == "completed"
    assert "never_diverged" in result.quality().flags
    assert any("Raise end_lr" in text for text in warnings_text(result))


def test_a_range_that_starts_too_high_says_never_fell(lesson_data):
    result = lrscope.range_test(linreg_trainer(lesson_data), start_lr=3.0, end_lr=100.0)
    flags = result.quality().flags
    assert "never_fell" in flags and "too_few_points" in flags
    assert result.quality().lr is None and result.quality().interval is None


def test_noise_larger_than_the_fall_is_too_noisy():
    quiet = assess(result_from(*bowl(noise=0.01)))
    noisy = assess(result_from(*bowl(noise=0.5)))
    assert "too_noisy" not in quiet.flags and quiet.noise_ratio < 0.25
    assert "too_noisy" in noisy.flags or "never_fell" in noisy.flags


def test_disagreeing_rules_are_flagged_with_their_spread():
    lrs, loss = bowl(n=200)
    quality = assess(result_from(lrs, loss))
    answered = [lr for lr in quality.suggestions.values() if lr is not None]
    assert quality.spread_decades == pytest.approx(np.ptp(np.log10(answered)))
    assert set(quality.suggestions) == {"edge", "min_div10"}  # the default's two readings
    # A narrow dip at 1e-3 (a few steps wide: the centred median keeps it, the EMA does not),
    # then a plateau until the blow-up past 1: edge reads the dip, min_div10 the blow-up.
    x = np.log10(lr_ramp(1e-6, 10.0, 100))
    dip = (
        1.0
        - 0.5 / (1 + np.exp(-6 * (x + 4)))
        - 0.4 * np.exp(-(((x + 3) / 0.15) ** 2))
        + np.where(x > 0, 3 * x**2, 0.0)
    )
    spread = assess(result_from(10**x, dip))
    edge, min_div10 = spread.suggestions["edge"], spread.suggestions["min_div10"]
    assert edge < 1e-3 < 1e-1 < min_div10
    assert spread.spread_decades == pytest.approx(np.log10(min_div10 / edge))
    assert spread.spread_decades > 1.0 and "suggestions_disagree" in spread.flags
    assert any("decades" in text for text in warnings_text(result_from(10**x, dip)))


@pytest.mark.parametrize("start_lr", [1e-7, 1e-5, 1e-4, 1e-3])
def test_the_lesson_is_not_flagged_as_disagreeing_from_any_start(lesson_data, start_lr):
    """steepest reads 5-20x below the edge on the lesson (where the loss falls fastest, not
    where training turns unstable); compared with it, starts at 1e-5 and above were flagged
    although the default was at 0.84x the best fixed LR (the demo, start 1e-4)."""
    result = lrscope.range_test(
        linreg_trainer(lesson_data), start_lr=start_lr, end_lr=10.0, steps=100
    )
    quality = result.quality()
    assert "suggestions_disagree" not in quality.flags
    assert quality.spread_decades < 0.5
    assert result.suggestions()["steepest"].lr < quality.lr / 4  # the reading left out


def breakdown(after, n=100, seed=0):
    """Chance level (2.3) until 0.05, a fall to 1.3 by 0.3, then ``after(k)`` for the k-th
    step past the lowest point (loss vs log10 LR, as on the quality benchmark's CNN)."""
    lrs = lr_ramp(1e-7, 10.0, n)
    rng = np.random.default_rng(seed)
    loss = 2.3 + 0.01 * rng.standard_normal(n)
    falling = (lrs > 0.05) & (lrs <= 0.3)
    loss[falling] = np.linspace(2.2, 1.3, falling.sum())
    lowest = int(np.flatnonzero(falling)[-1])
    for k, i in enumerate(range(lowest + 1, n)):
        loss[i] = after(k)
    return lrs, loss


def back_to_chance_with_spikes(k):
    return 2.4 + (6.0 if k % 5 == 1 else 0.0)


def test_a_loss_that_goes_back_to_its_start_instead_of_blowing_up_broke_down():
    quality = assess(result_from(*breakdown(back_to_chance_with_spikes)))
    assert "broke_down" in quality.flags and not quality.ok
    assert "never_diverged" not in quality.flags
    result = result_from(*breakdown(back_to_chance_with_spikes))
    words = [text for text in warnings_text(result) if "broke down" in text]
    assert len(words) == 1 and "lrscope.verify" in words[0] and "steps=400" in words[0]
    # The same fall followed by a blow-up (the loss keeps rising) is a divergence.
    blown = assess(result_from(*breakdown(lambda k: 1.3 * 1.5**k)))
    assert "broke_down" not in blown.flags and blown.ok


def test_a_loss_that_only_creeps_up_at_the_end_did_not_break_down():
    """Rising a third of the fall after the lowest point without blowing up (Adam on a small
    softmax regression does this by LR 10) is not a breakdown: the curve never went back
    towards where it started. No flag, so range_test runs no 4x retest on it; half-way back
    is a breakdown."""
    from lrscope.core.confidence import broke_down

    creeping = result_from(*breakdown(lambda k: 1.3 + 0.3 * min(k, 10) / 10))
    assert "broke_down" not in assess(creeping).flags and not broke_down(creeping)
    halfway = result_from(*breakdown(lambda k: 1.3 + 0.6 * min(k, 10) / 10))
    assert "broke_down" in assess(halfway).flags and broke_down(halfway)


def test_broke_down_needs_a_finite_curve_and_a_median_window_past_the_lowest_point():
    lrs, loss = breakdown(back_to_chance_with_spikes)
    lowest = int(np.argmin(loss))
    # Stopped on a non-finite loss: it did blow up, whatever came before.
    nan_end = loss.copy()
    nan_end[lowest + 12] = np.nan
    stopped = assess(result_from(lrs[: lowest + 13], nan_end[: lowest + 13], "non_finite"))
    assert "broke_down" not in stopped.flags
    # Two steps past the lowest point: too few to tell a breakdown from a divergence.
    short = assess(result_from(lrs[: lowest + 3], loss[: lowest + 3], "diverged"))
    assert "broke_down" not in short.flags


def test_an_interrupted_test_is_flagged():
    lrs, loss = bowl()
    assert "interrupted" in assess(result_from(lrs, loss, "interrupted")).flags


def test_warnings_follow_the_flags_one_to_one():
    lrs, loss = bowl()
    result = result_from(lrs[:60], loss[:60])
    assert len(warnings_text(result)) == len(assess(result).flags)


curves = st.lists(
    st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(float("inf"))),
    min_size=0,
    max_size=60,
)


@given(values=curves, reason=st.sampled_from(["completed", "diverged", "interrupted"]))
def test_any_curve_gets_flags_and_never_raises(values, reason):
    n = len(values)
    lrs = np.logspace(-6, 0, n) if n else np.zeros(0)
    result = result_from(lrs, values, reason) if n else result_from(np.ones(1), [np.nan], reason)
    quality = assess(result)
    assert set(quality.flags) <= set(FLAGS)
    assert len(warnings_text(result)) == len(quality.flags)
    if quality.interval is not None:
        assert quality.interval[0] <= quality.interval[1]


def test_the_blend_interval_is_the_geometric_mean_of_its_parts_intervals(monkeypatch):
    import lrscope.core.confidence as confidence

    result = result_from(*bowl(noise=0.01))
    parts = {}
    for rule in ("edge", "min_div10"):
        monkeypatch.setattr(confidence, "DEFAULT_RULE", rule)
        parts[rule] = assess(result).interval
    monkeypatch.setattr(confidence, "DEFAULT_RULE", "blend")
    quality = assess(result)
    (e_low, e_high), (m_low, m_high) = parts["edge"], parts["min_div10"]
    assert quality.interval == pytest.approx((np.sqrt(e_low * m_low), np.sqrt(e_high * m_high)))
    assert quality.lr == result.suggest("blend").lr
    assert quality.interval[0] <= quality.lr <= quality.interval[1]


def test_a_blow_up_in_the_last_steps_is_not_a_breakdown(lesson_data):
    """The centred median's shrunk windows at the end cannot see a blow-up of the last few
    steps: a long flat bottom, then the loss jumps 0.07 -> 8.4 -> 1238 (the lesson in float32
    JAX) has a running median that ends below the breakdown level. Two rising losses above
    it at the end are a divergence; one spike followed by a lower loss is not."""
    lrs, loss = breakdown(back_to_chance_with_spikes)
    n = int(np.argmin(loss)) + 14  # 13 steps past the lowest point, the last one 2.4
    lrs, loss = lrs[:n].copy(), loss[:n].copy()
    assert "broke_down" in assess(result_from(lrs, loss, "diverged")).flags
    loss[-2:] = [5.0, 1238.0]  # blows up in the last two steps
    blown = result_from(lrs, loss, "diverged")
    centred = _centred_median(loss, 3)
    assert centred[-1] < centred[0] + 2 * (centred[0] - centred.min())  # the median misses it
    assert "broke_down" not in assess(blown).flags
    loss[-2:] = [1238.0, 2.4]  # a spike, then back to chance level: still a breakdown
    assert "broke_down" in assess(result_from(lrs, loss, "diverged")).flags
    # the lesson's own range test, in the float64 NumPy lab: no flag, no retest
    from lrscope.core.confidence import broke_down

    result = lrscope.range_test(linreg_trainer(lesson_data), start_lr=1e-4, steps=100)
    assert not broke_down(result) and result.steps == 100


def test_a_curve_too_short_to_read_is_never_called_broken_down():
    """Fewer than MIN_GOOD_POINTS finite steps: too_few_points says it all, and range_test
    does not run a 4x retest on the strength of a 10-step curve."""
    from lrscope.core.confidence import MIN_GOOD_POINTS, broke_down

    lrs, loss = breakdown(back_to_chance_with_spikes)
    lowest = int(np.argmin(loss))
    lrs, loss = lrs[lowest - 12 : lowest + 7], loss[lowest - 12 : lowest + 7]
    assert lrs.size == MIN_GOOD_POINTS - 1
    short = result_from(lrs, loss, "completed")
    assert assess(short).flags == ("too_few_points",) and not broke_down(short)
    longer = result_from(*(v[: lowest + 14] for v in breakdown(back_to_chance_with_spikes)))
    assert broke_down(longer) and "broke_down" in assess(longer).flags

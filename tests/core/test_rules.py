import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrscope.core.rules import DEFAULT_RULE, MIN_POINTS, RULES, apply_rule, blend, edge, min_div10
from lrscope.core.smoothing import smooth_loss


def bowl_curve(n=100):
    """Loss vs log10 LR: flat, a logistic fall centred at 1e-3, then a blow-up after 1e-1."""
    lrs = np.logspace(-6, 1, n)
    x = np.log10(lrs)
    loss = 1.0 - 0.9 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, (x + 1) ** 2, 0.0)
    return lrs, loss


def test_minimum_is_the_argmin():
    lrs, loss = bowl_curve()
    s = apply_rule("minimum", lrs, loss)
    assert s.index == int(np.argmin(loss)) and s.lr == lrs[s.index]


def test_min_div10_is_a_tenth_of_minimum():
    lrs, loss = bowl_curve()
    assert apply_rule("min_div10", lrs, loss).lr == pytest.approx(
        apply_rule("minimum", lrs, loss).lr / 10
    )


def test_steepest_finds_the_inflection_of_the_logistic_fall():
    lrs, loss = bowl_curve(701)
    s = apply_rule("steepest", lrs, loss)
    assert np.log10(s.lr) == pytest.approx(-3.0, abs=0.02)


def test_valley_lies_inside_the_longest_descent():
    lrs, loss = bowl_curve()
    s = apply_rule("valley", lrs, loss)
    assert lrs[0] < s.lr < apply_rule("minimum", lrs, loss).lr


def test_default_rule_is_registered():
    assert DEFAULT_RULE in RULES


def test_unknown_rule_names_the_choices():
    with pytest.raises(ValueError, match=r"`rule` must be one of \["):
        apply_rule("magic", np.ones(3), np.ones(3))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rules_explain_when_the_loss_never_fell(rule):
    lrs = np.logspace(-5, 0, 50)
    s = apply_rule(rule, lrs, np.linspace(1, 2, 50))
    assert s.lr is None and "never fell" in s.reason


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rules_explain_when_too_few_points(rule):
    s = apply_rule(rule, np.array([1e-3, 1e-2]), np.array([np.nan, np.nan]))
    assert s.lr is None and f"at least {MIN_POINTS}" in s.reason


curves = st.lists(
    st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(float("inf"))),
    min_size=0,
    max_size=80,
)


@pytest.mark.parametrize("rule", sorted(RULES))
@given(values=curves, start=st.floats(-9, 0), span=st.floats(0.5, 12))
def test_any_curve_gives_an_lr_inside_the_range_or_a_reason(rule, values, start, span):
    n = len(values)
    lrs = np.logspace(start, start + span, n) if n else np.zeros(0)
    s = apply_rule(rule, lrs, np.array(values, dtype=np.float64))
    if s.lr is None:
        assert s.reason
    else:
        assert lrs[0] <= s.lr <= lrs[-1]
        assert s.index is not None and 0 <= s.index < n


# -- edge (lrscope's rule) -------------------------------------------------------------------
def ramp_curve(n=100):
    """A range-test-like raw curve: slow fall, sharp minimum at a known step, then blow-up."""
    lrs = np.logspace(-7, 1, n)
    x = np.log10(lrs)
    edge_at = int(0.8 * n)
    raw = 2.0 - 1.5 / (1 + np.exp(-2 * (x + 3)))
    raw[edge_at + 1 :] += np.exp(np.arange(1, n - edge_at)) * 0.05
    return lrs, raw, edge_at


def near_edge(lr, lrs, edge_at):
    """``lr`` is a third of a step at most one half-window (3 steps) before the true minimum:
    a centred median moves a minimum with a steep right side left, never right."""
    return any(lr == pytest.approx(lrs[i] / 3) for i in range(edge_at - 3, edge_at + 1))


def test_edge_is_a_third_of_the_lag_free_minimum():
    lrs, raw, edge_at = ramp_curve()
    s = apply_rule("edge", lrs, smooth_loss(raw), raw)
    assert near_edge(s.lr, lrs, edge_at)
    assert s.index == int(np.argmin(np.abs(np.log10(lrs) - np.log10(s.lr))))


@pytest.mark.parametrize("shift", [-20, -7, 5])
def test_edge_moves_with_the_minimum(shift):
    """Moving the minimum by k steps moves the suggestion by exactly k steps (in log LR)."""
    lrs = np.logspace(-7, 1, 101)
    step = np.log10(lrs[1] / lrs[0])
    base = np.abs(np.log10(lrs) + 1.0) + 0.3 * np.maximum(np.log10(lrs) + 1.0, 0) ** 2
    moved = np.abs(np.log10(lrs) + 1.0 - shift * step)
    moved += 0.3 * np.maximum(np.log10(lrs) + 1.0 - shift * step, 0) ** 2
    a = apply_rule("edge", lrs, smooth_loss(base), base).lr
    b = apply_rule("edge", lrs, smooth_loss(moved), moved).lr
    assert np.log10(b / a) == pytest.approx(shift * step)


def test_edge_reads_the_raw_curve_not_the_lagging_ema():
    lrs, raw, edge_at = ramp_curve()
    lagging = apply_rule("minimum", lrs, smooth_loss(raw))
    assert lagging.index > edge_at  # the debiased EMA bottoms out late
    assert near_edge(apply_rule("edge", lrs, smooth_loss(raw), raw).lr, lrs, edge_at)


def test_edge_ignores_a_single_spike():
    lrs, raw, _ = ramp_curve()
    spiky = raw.copy()
    spiky[40] = -5.0  # one absurd low reading far from the edge
    assert apply_rule("edge", lrs, smooth_loss(spiky), spiky).lr == (
        apply_rule("edge", lrs, smooth_loss(raw), raw).lr
    )


def test_edge_refuses_a_flat_noisy_curve():
    lrs = np.logspace(-7, 1, 100)
    raw = 2.3 + 0.05 * np.random.default_rng(0).standard_normal(100)
    s = apply_rule("edge", lrs, smooth_loss(raw), raw)
    assert s.lr is None and "never fell clearly" in s.reason


def test_result_suggest_passes_the_raw_loss_to_edge():
    from lrscope.core.result import RangeTestResult

    lrs, raw, edge_at = ramp_curve()
    result = RangeTestResult(
        lr=lrs, loss=raw, smooth_loss=smooth_loss(raw), stop_reason="completed",
        stop_step=None, start_lr=1e-7, end_lr=10.0, steps=100,
    )  # fmt: skip
    assert result.suggest("edge").lr == apply_rule("edge", lrs, result.smooth_loss, raw).lr
    assert near_edge(result.suggest("edge").lr, lrs, edge_at)


@pytest.mark.parametrize("rule", sorted(RULES))
@given(values=curves, start=st.floats(-9, 0), span=st.floats(0.5, 12))
def test_any_raw_curve_gives_an_lr_inside_the_range_or_a_reason(rule, values, start, span):
    n = len(values)
    lrs = np.logspace(start, start + span, n) if n else np.zeros(0)
    raw = np.array(values, dtype=np.float64)
    s = apply_rule(rule, lrs, smooth_loss(raw), raw)
    if s.lr is None:
        assert s.reason
    else:
        assert lrs[0] <= s.lr <= lrs[-1]
        assert s.index is not None and 0 <= s.index < n


def test_blend_is_the_geometric_mean_of_edge_and_min_div10():
    lrs, raw, _ = ramp_curve()
    smooth = smooth_loss(raw)
    fast = apply_rule("edge", lrs, smooth, raw).lr
    steady = apply_rule("min_div10", lrs, smooth, raw).lr
    s = apply_rule("blend", lrs, smooth, raw)
    assert fast != steady  # the test means something only if they differ
    assert s.lr == pytest.approx(np.sqrt(fast * steady), rel=1e-12)
    assert min(fast, steady) < s.lr < max(fast, steady)
    assert s.index == int(np.argmin(np.abs(np.log10(lrs) - np.log10(s.lr))))


@given(
    values=curves,
    start=st.floats(-9, 0),
    span=st.floats(0.5, 12),
    raw_given=st.booleans(),
    smooth_ends=st.integers(0, 80),
)
def test_blend_is_its_two_rules_on_any_curve(values, start, span, raw_given, smooth_ends):
    # blend cuts each curve to its finite prefix once and shares it between its parts; on any
    # curve (non-finite points included, the smoothed one ending where the raw one does not)
    # it must answer exactly what the two public rules do.
    n = len(values)
    lrs = np.logspace(start, start + span, n) if n else np.zeros(0)
    raw = np.array(values, dtype=np.float64)
    smooth = smooth_loss(raw)
    smooth[smooth_ends:] = np.nan
    loss = raw if raw_given else None
    fast, steady = edge(lrs, smooth, loss), min_div10(lrs, smooth, loss)
    s = blend(lrs, smooth, loss)
    if fast.lr is None and steady.lr is None:
        assert s.lr is None and s.reason.endswith(fast.reason)
    elif fast.lr is None or steady.lr is None:
        only = steady if fast.lr is None else fast
        assert (s.lr, s.index) == (only.lr, only.index)
    else:
        assert s.lr == float(np.sqrt(fast.lr * steady.lr))
        finite = np.isfinite(raw if raw_given else smooth)
        cut = n if finite.all() else int(np.argmin(finite))
        assert s.index == int(np.argmin(np.abs(np.log10(lrs[:cut]) - np.log10(s.lr))))


def test_blend_reads_its_index_on_the_raw_curve_when_the_smoothed_one_ends_first():
    lrs, raw, _ = ramp_curve()
    smooth = smooth_loss(raw)
    smooth[40:] = np.nan  # min_div10 reads the first 40 points; edge and the index all 100
    s = blend(lrs, smooth, raw)
    assert s.lr > lrs[39]  # the geometric mean lies past the smoothed curve's end
    assert s.index == int(np.argmin(np.abs(np.log10(lrs) - np.log10(s.lr)))) > 39


def test_blend_falls_back_to_the_rule_that_answered():
    # min_div10 cannot answer when a tenth of the minimum lies below the range; edge can.
    lrs = np.logspace(-3, 1, 100)
    x = np.log10(lrs)
    raw = 1.0 - 0.5 * np.minimum(x + 3, 0.7) + np.where(x > -2.3, 3 * (x + 2.3) ** 2, 0.0)
    smooth = raw.copy()  # no lag: both read the same minimum, near 10**-2.3 = 5x start_lr
    assert apply_rule("min_div10", lrs, smooth, raw).lr is None
    fast = apply_rule("edge", lrs, smooth, raw)
    s = apply_rule("blend", lrs, smooth, raw)
    assert fast.lr is not None and s.lr == fast.lr
    assert "edge alone" in s.reason and "min_div10 gave none" in s.reason


@given(
    values=st.lists(
        st.one_of(st.floats(-1e6, 1e6), st.sampled_from([float("nan"), np.inf, -np.inf])),
        min_size=1,
        max_size=40,
    ),
    half=st.integers(1, 25),
)
def test_centred_median_equals_the_per_point_median(values, half):
    from lrscope.core.rules import _centred_median

    x = np.array(values)
    n = x.size
    with np.errstate(invalid="ignore"):  # inf and -inf as the two middle values: NaN
        expected = [np.median(x[max(0, i - half) : min(n, i + half + 1)]) for i in range(n)]
        got = _centred_median(x, half)
    np.testing.assert_array_equal(got, np.array(expected))

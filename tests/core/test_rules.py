import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrscope.core.rules import DEFAULT_RULE, MIN_POINTS, RULES, apply_rule


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

"""benchmarks/machine.py: the distribution-free interval the timing tables read ratios with."""

import math
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import median_interval  # noqa: E402


def test_21_repeats_give_the_6th_smallest_and_6th_largest_at_their_binomial_coverage():
    values = [float(v) for v in range(21)]
    random.Random(0).shuffle(values)  # the order the repeats came in does not matter
    low, high, coverage = median_interval(values)
    # P(B <= 5), B ~ Bin(21, 1/2): (1 + 21 + 210 + 1330 + 5985 + 20349) / 2**21
    assert (low, high) == (5.0, 15.0)
    assert coverage == pytest.approx(1 - 2 * 27896 / 2**21, abs=1e-15)
    # the next narrower interval would fall short of 95%
    assert 1 - 2 * (27896 + math.comb(21, 6)) / 2**21 < 0.95


def test_too_few_values_give_the_whole_range_and_say_how_little_it_covers():
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0, 0.75)
    assert median_interval([7.0]) == (7.0, 7.0, 0.0)


def test_the_interval_covers_the_true_median_about_as_often_as_it_says():
    rng = random.Random(1)
    hits, trials = 0, 2000
    for _ in range(trials):
        low, high, coverage = median_interval([rng.expovariate(1.0) for _ in range(21)])
        hits += low <= math.log(2) <= high  # the exponential's median
    assert abs(hits / trials - coverage) < 0.02  # ~4.5 standard errors


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5])
def test_a_level_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match="level"):
        median_interval([1.0, 2.0], level=bad)


def test_no_values_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        median_interval([])

"""The benchmark's statistics against hand computation: the t distribution integrated here from its
density (no scipy), Holm's adjustment worked by hand, and equivalence cases on either side."""

import math

import numpy as np
import pytest

from video_gn.report.stats import holm, paired_t, t_interval, tost


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom, by integrating its density."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    x = np.linspace(t, t + 400, 2_000_001)
    density = np.exp(log_c - (df + 1) / 2 * np.log1p(x ** 2 / df))
    return float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(x)))


def test_paired_t_by_hand():
    a = [71.0, 74.0, 69.0, 73.0, 75.0]
    b = [70.0, 72.0, 66.0, 69.0, 70.0]  # differences 1, 2, 3, 4, 5
    test = paired_t(a, b)
    sd = math.sqrt(sum((d - 3) ** 2 for d in (1, 2, 3, 4, 5)) / 4)  # 1.5811
    assert test.difference.mean == 3.0 and test.difference.sd == pytest.approx(sd)
    assert test.t == pytest.approx(3 / (sd / math.sqrt(5)))  # 4.2426
    assert test.p == pytest.approx(2 * t_sf(test.t, 4), rel=1e-4)  # 0.0132
    assert test.p == pytest.approx(0.01324, abs=5e-5)
    # the 95% interval: mean ± t_{0.975, 4} se, t_{0.975, 4} = 2.7764 (tables)
    half = 2.7764 * sd / math.sqrt(5)
    assert (test.difference.low, test.difference.high) == (pytest.approx(3 - half, abs=1e-3),
                                                           pytest.approx(3 + half, abs=1e-3))
    assert t_sf(2.7764, 4) == pytest.approx(0.025, abs=1e-5)  # the table value is the reference's
    with pytest.raises(ValueError, match="different sizes"):
        paired_t([1.0, 2.0], [1.0])


def test_t_interval_of_one_value_has_none():
    e = t_interval([5.0])
    assert (e.mean, e.sd, e.low, e.high) == (5.0, None, None, None)


def test_holm_on_three_p_values_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04, raised to 0.06 (monotone)
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, None, 0.9]) == [pytest.approx(1.0), None, pytest.approx(1.0)]  # capped at 1


def test_tost_equivalent_and_not():
    close = [0.5, -0.4, 1.0, 0.2, -0.3, 0.6]  # mean 0.267, sd 0.55: well within +-3 points
    p = tost(close, 3.0)
    mean = sum(close) / 6
    se = math.sqrt(sum((d - mean) ** 2 for d in close) / 5) / math.sqrt(6)
    assert p == pytest.approx(max(t_sf((mean + 3) / se, 5), t_sf((3 - mean) / se, 5)), rel=1e-3)
    assert p < 0.001
    wide = [4.0, -5.0, 6.0, -3.0, 2.0, 1.0]  # mean 0.83 but sd 4.3: +-3 cannot be excluded
    assert tost(wide, 3.0) > 0.05
    shifted = [2.8, 3.1, 2.9, 3.2, 3.0, 2.7]  # tight, but the difference is about 3 itself
    assert tost(shifted, 3.0) > 0.05

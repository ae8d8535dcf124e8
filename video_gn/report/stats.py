"""The statistics a benchmark comparison states: a cell's mean with its 95% interval, a paired
difference (by seed) with its interval and p-value, Holm's adjustment within a family of
comparisons, and an equivalence test (TOST) for "no difference larger than a margin".

All t-based (Student's t over seeds; scipy's distribution): the runs of a cell are few (6-10 seeds),
their differences roughly normal, and the tests are fixed before the runs (the benchmark's design).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A mean over n values with its two-sided ``level`` t-interval."""

    mean: float
    sd: float | None
    n: int
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairedTest:
    """``a - b`` paired by seed: the mean difference, its interval, the two-sided p-value of a paired
    t-test (H0: no difference), and Holm's adjusted p once the family is known."""

    difference: Estimate
    t: float | None
    p: float | None
    p_holm: float | None = None


def t_interval(values: Sequence[float], level: float = 0.95) -> Estimate:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Estimate(mean, None, n, None, None)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, sd, n, mean - half, mean + half)


def paired_t(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> PairedTest:
    """``a[i] - b[i]`` (the same seed i): mean, interval, t and the two-sided p."""
    if len(a) != len(b):
        raise ValueError(f"paired samples of different sizes ({len(a)} vs {len(b)})")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    estimate = t_interval(diffs, level)
    if estimate.sd is None:
        return PairedTest(estimate, None, None)
    if estimate.sd == 0:
        return PairedTest(estimate, math.copysign(math.inf, estimate.mean) if estimate.mean else 0.0,
                          0.0 if estimate.mean else 1.0)
    t = estimate.mean / (estimate.sd / math.sqrt(estimate.n))
    return PairedTest(estimate, t, float(2 * stats.t.sf(abs(t), estimate.n - 1)))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family's p-values (None: not tested, left out of the family)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def tost(diffs: Sequence[float], margin: float) -> float | None:
    """Two one-sided t-tests of ``|mean difference| < margin``: the p-value of equivalence (the larger
    of the two one-sided p's); below 0.05, a difference of ``margin`` or more is rejected both ways."""
    estimate = t_interval(diffs)
    if estimate.sd is None:
        return None
    if estimate.sd == 0:
        return 0.0 if abs(estimate.mean) < margin else 1.0
    se = estimate.sd / math.sqrt(estimate.n)
    df = estimate.n - 1
    p_lower = stats.t.sf((estimate.mean + margin) / se, df)  # H0: mean <= -margin
    p_upper = stats.t.cdf((estimate.mean - margin) / se, df)  # H0: mean >= +margin
    return float(max(p_lower, p_upper))

"""Statistics over seeds: mean with a Student-t confidence interval, the paired difference to the baseline,
and the verdict on a paper claim.

* :func:`mean_ci`       mean of one scheme's seeds and its 95 % t-interval (``n - 1`` degrees of freedom).
* :func:`paired_delta`  scheme minus baseline over the seeds both share (differences per seed, then a
                        t-interval of their mean): seed-to-seed variation common to both cancels.
* :func:`seeds_to_resolve` how many seeds an interval as noisy as ours would need to exclude 0 for an effect
                        of a given size (the paper's Δ): what would resolve a claim that ours leaves open.
* :func:`verdict`       *reproduced* when our interval excludes 0 with the paper's sign, *contradicted* when it
                        excludes 0 with the other sign, *not resolved* when it includes 0; with one seed
                        there is no interval and no verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95

REPRODUCED, CONTRADICTED, UNRESOLVED = "reproduced", "contradicted", "not resolved"
NO_PAPER_ROW, NO_INTERVAL, BASELINE = "no paper row", "no interval (1 seed)", "baseline"
VERDICTS = (REPRODUCED, CONTRADICTED, UNRESOLVED, NO_INTERVAL, NO_PAPER_ROW)


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values with its t-interval; ``low`` / ``high`` are NaN below two values."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.has_interval else math.nan

    def excludes_zero(self) -> bool:
        return self.has_interval and (self.low > 0 or self.high < 0)


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """Mean and ``level`` Student-t interval: mean ± t_{(1+level)/2, n-1} · s / √n."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, math.nan, math.nan, n)
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Estimate(mean, mean - half, mean + half, n)


def paired_delta(scheme: Mapping[int, float], baseline: Mapping[int, float], level: float = LEVEL) -> Estimate:
    """``scheme - baseline`` over the seeds present in both (``{seed: value}``)."""
    shared = sorted(set(scheme) & set(baseline))
    return mean_ci([scheme[s] - baseline[s] for s in shared], level)


def verdict(paper_delta: float | None, ours: Estimate | None) -> str:
    """The verdict on the paper's claim ``paper_delta`` (scheme minus baseline) from our paired estimate."""
    if paper_delta is None or not math.isfinite(paper_delta):
        return NO_PAPER_ROW
    if ours is None or not ours.has_interval:
        return NO_INTERVAL
    if not ours.excludes_zero():
        return UNRESOLVED
    return REPRODUCED if np.sign(ours.mean) == np.sign(paper_delta) else CONTRADICTED


def seeds_to_resolve(ours: Estimate, effect: float, level: float = LEVEL, limit: int = 10_000) -> int | None:
    """Smallest n whose ``level`` t-interval half-width, t_{n-1} · s / √n with the seed spread s of ``ours``, is
    below ``|effect|``; None without an interval (or a zero / non-finite effect) or beyond ``limit`` seeds."""
    if not ours.has_interval or not math.isfinite(effect) or effect == 0:
        return None
    q = (1 + level) / 2
    spread = ours.half_width * math.sqrt(ours.n) / float(stats.t.ppf(q, ours.n - 1))
    n = np.arange(2, limit + 1)
    fits = stats.t.ppf(q, n - 1) * spread / np.sqrt(n) < abs(effect)
    return int(n[np.argmax(fits)]) if fits.any() else None

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

The claims a spec declares (``claims:``, :mod:`fadepth.sweep.claims`) are judged here too, and only here
(the rule, in words, is docs/claims.md):

* :func:`sign_flip_p` / :func:`sign_flip_interval` the exact sign-flip permutation test of paired differences
                        (valid whatever their distribution's shape) and the interval that inverts it;
* :func:`collapse_rate` / :func:`collapse_test` a collapse rate with its exact (Clopper-Pearson) interval, and
                        Boschloo's exact test of two rates;
* :func:`holm`          Holm's step-down rule over the claims of one table;
* :func:`planned_looks` the seed counts of ``--until-resolved`` (doubling up to ``--max-seeds``): the error
                        rate is split evenly over them (Bonferroni over the planned looks);
* :func:`judge_claims`  one table's claims at one look -> a :class:`Judgement` each, with its verdict.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = 1 - LEVEL  # the family-wise error rate of one table's claims, over all looks
COLLAPSE_TOL = 0.02  # a run within 2 % of the constant prediction's value learned nothing: it collapsed
EXACT_FLIPS = 16  # up to this many differences the sign-flip test enumerates every sign vector

REPRODUCED, CONTRADICTED, UNRESOLVED = "reproduced", "contradicted", "not resolved"
NO_PAPER_ROW, NO_INTERVAL, BASELINE = "no paper row", "no interval (1 seed)", "baseline"
NO_RUNS = "no finished runs"  # a claim whose scheme or reference has no finished run (yet)
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


# ----------------------------------------------------------------------------------- claims (issue 22)
def t_pvalue(values: Sequence[float]) -> float:
    """Two-sided p of the one-sample t-test of mean 0 (NaN below two values; 0 for identical non-zero values)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan
    if np.ptp(x) == 0:
        return 0.0 if x[0] != 0 else 1.0
    return float(stats.ttest_1samp(x, 0.0).pvalue)


def sign_flip_p(values: Sequence[float], shift: float = 0.0) -> float:
    """Two-sided p of the sign-flip permutation test of ``mean(values - shift) = 0``: exact (every sign vector)
    up to :data:`EXACT_FLIPS` values, else 20,000 random flips with a fixed seed.  NaN without values."""
    x = np.asarray(values, dtype=float) - shift
    if len(x) == 0:
        return math.nan
    if len(x) == 1:  # its two sign vectors give the same |mean|: nothing can be rejected (scipy needs two values)
        return 1.0
    exact = len(x) <= EXACT_FLIPS
    result = stats.permutation_test((x,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=np.inf if exact else 20_000, alternative="two-sided",
                                    rng=None if exact else np.random.default_rng(0))
    return float(result.pvalue)


def sign_flip_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The shifts the sign-flip test does not reject at ``1 - level``: ``(-inf, inf)`` when no shift can be
    rejected (the smallest exact p, ``2 / 2^n``, is above ``1 - level``: fewer than 6 values at 95 %)."""
    x = np.asarray(values, dtype=float)
    alpha = 1 - level
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) <= EXACT_FLIPS and 2.0 ** (1 - len(x)) > alpha:
        return -math.inf, math.inf
    mean, spread = float(x.mean()), float(np.ptp(x)) or abs(float(x.mean())) or 1.0

    def edge(outside: float) -> float:  # bisect between the mean (kept) and a shift beyond every value (rejected)
        kept = mean
        for _ in range(40):
            middle = (kept + outside) / 2
            if sign_flip_p(x, middle) > alpha:
                kept = middle
            else:
                outside = middle
        return kept

    return edge(float(x.min()) - spread), edge(float(x.max()) + spread)


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` runs collapsed, with the exact (Clopper-Pearson) interval of the rate."""

    k: int
    n: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else math.nan


def collapse_rate(k: int, n: int, level: float = LEVEL) -> Rate:
    if n == 0:
        return Rate(0, 0, math.nan, math.nan)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return Rate(k, n, float(ci.low), float(ci.high))


def collapse_test(scheme: Rate, reference: Rate) -> float:
    """Two-sided p of Boschloo's exact test that two collapse rates are equal (1 when neither varies)."""
    if scheme.n == 0 or reference.n == 0:
        return math.nan
    if scheme.k + reference.k in (0, scheme.n + reference.n):
        return 1.0
    table = [[scheme.k, scheme.n - scheme.k], [reference.k, reference.n - reference.k]]
    return float(stats.boschloo_exact(table, alternative="two-sided").pvalue)


def collapsed(value: float, constant: float, lower_is_better: bool, tol: float = COLLAPSE_TOL) -> bool:
    """A run ended at the constant prediction: not better than it by more than ``tol`` (relative)."""
    if not math.isfinite(constant):
        return False
    return value >= (1 - tol) * constant if lower_is_better else value <= (1 + tol) * constant


def holm(pvalues: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down rule: reject the i-th smallest p while ``p_(i) <= alpha / (m - i)``; NaNs never reject
    and do not count in ``m``."""
    finite = sorted((p, i) for i, p in enumerate(pvalues) if math.isfinite(p))
    reject = [False] * len(pvalues)
    for rank, (p, i) in enumerate(finite):
        if p > alpha / (len(finite) - rank):
            break
        reject[i] = True
    return reject


def planned_looks(first: int, max_seeds: int) -> list[int]:
    """Seed counts at which ``--until-resolved`` judges: ``first``, then doubling, capped at ``max_seeds``."""
    looks = [max(1, first)]
    while looks[-1] < max_seeds:
        looks.append(min(max_seeds, 2 * looks[-1]))
    return looks


@dataclass(frozen=True)
class ClaimData:
    """One claim's inputs: its kind and the paper's Δ, our ``{seed: value}`` of both schemes, the constant
    prediction's value of the metric (NaN if unknown) and the metric's direction."""

    kind: str
    paper_delta: float
    scheme: Mapping[int, float]
    reference: Mapping[int, float]
    constant: float = math.nan
    lower_is_better: bool = True


@dataclass(frozen=True)
class Judgement:
    test: str  # "t" | "sign-flip" | "Boschloo" | "" (no test yet)
    p: float
    delta: Estimate  # paired Δ with its t-interval (delta claims) -- shown for collapse claims too
    flip_low: float
    flip_high: float
    scheme_rate: Rate
    reference_rate: Rate
    effect: float  # what the verdict's sign is read from: mean Δ, or scheme rate - reference rate
    verdict: str = UNRESOLVED
    seeds_needed: int | None = None


def judge_one(claim: ClaimData, level: float) -> Judgement:
    """Estimates and the p of the deciding test (no verdict: that needs the whole table, :func:`judge_claims`).

    Deciding test: ``collapse`` claims -- Boschloo on the collapse counts; ``delta`` claims -- the paired t-test,
    unless a run of either scheme collapsed (bimodal outcomes, no normal approximation): then the sign-flip test.
    """
    shared = sorted(set(claim.scheme) & set(claim.reference))
    diffs = [claim.scheme[s] - claim.reference[s] for s in shared]
    delta = mean_ci(diffs, level)
    flip = sign_flip_interval(diffs, level) if diffs else (math.nan, math.nan)
    lib = claim.lower_is_better
    rates = [collapse_rate(sum(collapsed(v, claim.constant, lib) for v in values.values()), len(values), level)
             for values in (claim.scheme, claim.reference)]
    if claim.kind == "collapse":
        if not math.isfinite(claim.constant):
            return Judgement("", math.nan, delta, *flip, *rates, math.nan, NO_INTERVAL)
        return Judgement("Boschloo", collapse_test(*rates), delta, *flip, *rates, rates[0].rate - rates[1].rate)
    bimodal = any(collapsed(v, claim.constant, lib) for s in shared for v in (claim.scheme[s], claim.reference[s]))
    if bimodal and len(diffs) >= 2:  # one seed: no test either way (below)
        return Judgement("sign-flip", sign_flip_p(diffs), delta, *flip, *rates, delta.mean)
    return Judgement("t" if len(diffs) >= 2 else "", t_pvalue(diffs), delta, *flip, *rates, delta.mean)


def judge_claims(claims: Sequence[ClaimData], looks: int = 1) -> list[Judgement]:
    """One table's claims at one of ``looks`` planned looks: Holm over the claims at ``ALPHA / looks``.

    A rejected claim is *reproduced* when our effect has the direction of the paper's Δ (for a collapse claim:
    the scheme the paper finds worse collapses more often), *contradicted* otherwise; the rest is *not resolved*
    (or *no interval*: fewer than two paired seeds, or no constant to call a collapse; *no finished runs*)."""
    alpha = ALPHA / max(1, looks)
    judged = [judge_one(c, 1 - alpha) for c in claims]
    rejected = holm([j.p for j in judged], alpha)
    out = []
    for claim, j, reject in zip(claims, judged, rejected):
        direction = np.sign(claim.paper_delta) * (1 if claim.kind == "delta" or claim.lower_is_better else -1)
        if not claim.scheme or not claim.reference:
            verdict = NO_RUNS
        elif not j.test or not math.isfinite(j.p):
            verdict = NO_INTERVAL
        elif reject:
            verdict = REPRODUCED if np.sign(j.effect) == direction else CONTRADICTED
        else:
            verdict = UNRESOLVED
        need = None if verdict in (REPRODUCED, CONTRADICTED) else seeds_needed(claim, j, alpha / max(1, len(claims)))
        out.append(dataclasses.replace(j, verdict=verdict, seeds_needed=need))
    return out


def seeds_needed(claim: ClaimData, j: Judgement, alpha: float, limit: int = 64) -> int | None:
    """Seeds per scheme at which our spread (or our collapse rates) would resolve the claim at ``alpha``
    (Bonferroni, so conservative beside Holm); None when it would not within ``limit`` or cannot be told."""
    if j.test == "Boschloo" or (claim.kind == "collapse" and j.scheme_rate.n):
        r1, r2 = j.scheme_rate.rate, j.reference_rate.rate
        if not (math.isfinite(r1) and math.isfinite(r2)) or r1 == r2:
            return None
        for n in range(2, limit + 1):  # Fisher's exact test: a quick, conservative stand-in for Boschloo's
            k1, k2 = round(r1 * n), round(r2 * n)
            if k1 != k2 and stats.fisher_exact([[k1, n - k1], [k2, n - k2]]).pvalue <= alpha:
                return n
        return None
    flips = math.ceil(1 - math.log2(alpha)) if j.test == "sign-flip" else 2
    t_need = seeds_to_resolve(j.delta, claim.paper_delta, 1 - alpha, limit) if j.delta.has_interval else None
    return None if t_need is None else max(t_need, flips)

"""Anytime-valid sequential decisions on rates: verdicts as soon as evidence suffices. Pure.

Analysis looks at the figures every 15 seconds and may decide at any look. A
fixed-sample test read again and again ("is the error rate above the limit
yet?") fails far more often than its nominal rate: every look is another
chance for noise to cross the line. Here every gate on a rate is decided with
*confidence sequences*: intervals that hold for all looks at once, so looking
as often as one likes does not inflate false verdicts, and a verdict comes as
soon as the interval clears the limit.

The sequence for one Bernoulli rate p after x events in n trials is Robbins'
beta-mixture one: with the mixture likelihood ratio

    M_n(p0) = [B(a + x, b + n - x) / B(a, b)] / [p0^x (1 - p0)^(n - x)]

(a nonnegative martingale under p = p0 for every p0), Ville's inequality gives
P(exists n: M_n(p) >= 1/alpha) <= alpha, so {p0 : M_n(p0) < 1/alpha} covers p at
every n with probability >= 1 - alpha. Unlike a Hoeffding bound its width adapts
to the rate: an error rate near 0.1% is pinned down with thousands of requests,
not hundreds of thousands.

A gate compares a difference of two rates with a limit (the candidate's error
rate minus the stable one's <= maxErrorRateIncrease; the candidate's
disagreement minus the stable version's disagreement with itself, the noise
floor, <= 1 - minAgreement). Each rate gets a sequence at alpha/2, and

    PASS  when the difference's upper bound <= limit
    FAIL  when its lower bound > limit
    else  PENDING (evidence insufficient)

A wrong verdict needs one of the two sequences to miss its rate at some look,
so P(false promotion) + P(false rollback) <= alpha for any number of looks
(tests/unit/test_rollout_sequential.py checks this by simulation;
bench/rollout/sequential.py compares it with a fixed-sample test).

Samples still needed: if the rates stay at their current estimates, the
number of further candidate requests (the stable side growing in proportion)
after which the interval would clear the limit; none when the estimate sits
on the limit.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Beta(1/2, 1/2) (Jeffreys) mixing: no preference for any rate, good at small ones.
PRIOR_A = 0.5
PRIOR_B = 0.5
_ITERATIONS = 34  # bisection steps: 2^-34 of [0, 1]
_MAX_SCALE = 1 << 20  # "samples needed" is not searched beyond a million-fold growth


class Verdict(enum.Enum):
    PASS = "Pass"
    FAIL = "Fail"
    PENDING = "Pending"


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def rate_interval(x: float, n: float, alpha: float) -> tuple[float, float]:
    """The anytime-valid (1 - alpha) confidence interval for a Bernoulli rate after x
    events in n trials: the p0 whose mixture likelihood ratio is below 1/alpha."""
    if n <= 0:
        return 0.0, 1.0
    x = min(max(x, 0.0), n)
    estimate = x / n
    # log M_n(p0) = mixture - x log p0 - (n - x) log(1 - p0); outside where >= log(1/alpha).
    level = math.log(1.0 / alpha) - (
        _log_beta(PRIOR_A + x, PRIOR_B + n - x) - _log_beta(PRIOR_A, PRIOR_B)
    )
    misses = n - x

    def outside(p: float) -> bool:
        return -(x * math.log(p) if x else 0.0) - (misses * math.log1p(-p) if misses else 0.0) >= (
            level
        )

    lower = 0.0
    if x > 0:
        lo, hi = 0.0, estimate  # outside at lo (p -> 0), inside at hi
        for _ in range(_ITERATIONS):
            mid = (lo + hi) / 2
            if mid <= 0.0 or outside(mid):
                lo = mid
            else:
                hi = mid
        lower = lo
    upper = 1.0
    if x < n:
        lo, hi = estimate, 1.0  # inside at lo, outside at hi (p -> 1)
        for _ in range(_ITERATIONS):
            mid = (lo + hi) / 2
            if mid >= 1.0 or outside(mid):
                hi = mid
            else:
                lo = mid
        upper = hi
    return lower, upper


@dataclass(frozen=True)
class Difference:
    """What is known of rate_a - rate_b against a limit.

    estimate: the point estimate; lower / upper: the anytime-valid interval;
    verdict: PASS (upper <= limit), FAIL (lower > limit) or PENDING; needed: further
    trials of side a (side b growing in proportion) until a verdict if the rates stay
    as estimated, None when they would never decide (the estimate is on the limit).
    """

    estimate: float
    lower: float
    upper: float
    verdict: Verdict
    needed: int | None


def _verdict(lower: float, upper: float, limit: float) -> Verdict:
    if lower > limit:
        return Verdict.FAIL
    if upper <= limit:
        return Verdict.PASS
    return Verdict.PENDING


def _bounds(
    x_a: float, n_a: float, x_b: float, n_b: float, alpha: float, b_known: bool
) -> tuple[float, float]:
    half = alpha / 2 if b_known else alpha
    lo_a, up_a = rate_interval(x_a, n_a, half)
    if not b_known:
        return lo_a, up_a  # side b taken as exactly 0 (not measured)
    lo_b, up_b = rate_interval(x_b, n_b, half)
    return lo_a - up_b, up_a - lo_b


def difference(
    x_a: int,
    n_a: int,
    x_b: int,
    n_b: int,
    *,
    limit: float,
    alpha: float,
    b_known: bool = True,
    estimate_needed: bool = True,
) -> Difference:
    """rate_a (x_a events of n_a) - rate_b (x_b of n_b) against ``limit``, at overall
    error ``alpha``. b_known False: rate_b is not measured and taken as 0 (all of
    alpha goes to side a). estimate_needed False skips the samples-needed search
    (simulations)."""
    lower, upper = _bounds(x_a, n_a, x_b, n_b, alpha, b_known)
    rate_b = x_b / n_b if b_known and n_b else 0.0
    estimate = (x_a / n_a if n_a else 0.0) - rate_b
    verdict = _verdict(lower, upper, limit)
    needed: int | None = 0
    if verdict is Verdict.PENDING:
        needed = None if not estimate_needed else _needed(x_a, n_a, x_b, n_b, limit, alpha, b_known)
    return Difference(estimate, lower, upper, verdict, needed)


def _needed(
    x_a: int, n_a: int, x_b: int, n_b: int, limit: float, alpha: float, b_known: bool
) -> int | None:
    """Further side-a trials until the interval clears the limit, if both sides keep
    their current rates (counts scaled together); None when not within a million-fold
    growth."""
    if n_a <= 0:
        return None

    def decided(scale: float) -> bool:
        lower, upper = _bounds(x_a * scale, n_a * scale, x_b * scale, n_b * scale, alpha, b_known)
        return _verdict(lower, upper, limit) is not Verdict.PENDING

    hi = 2.0
    while not decided(hi):
        hi *= 2
        if hi > _MAX_SCALE:
            return None
    lo = hi / 2 if hi > 2 else 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if decided(mid):
            hi = mid
        else:
            lo = mid
        if (hi - lo) * n_a < 1:
            break
    return max(1, math.ceil(n_a * hi) - n_a)


# --- the latency gate: a quantile ratio ---------------------------------------------------

Histogram = Sequence[tuple[float, float]]  # cumulative: (upper bound, count <= bound), +Inf last


def _log_mixture(x: float, n: float, p: float) -> float:
    """log M_n(p) of the beta mixture (module docstring) after x events in n trials."""
    return (
        _log_beta(PRIOR_A + x, PRIOR_B + n - x)
        - _log_beta(PRIOR_A, PRIOR_B)
        - (x * math.log(p) if x else 0.0)
        - ((n - x) * math.log1p(-p) if n - x else 0.0)
    )


def surely_below(x: float, n: float, rate: float, alpha: float) -> bool:
    """The anytime-valid (1 - alpha) interval of a rate after x of n lies below ``rate``
    (its upper end is under it): the same test as rate_interval, without the search."""
    return n > 0 and x / n < rate and _log_mixture(x, n, rate) >= math.log(1.0 / alpha)


def surely_above(x: float, n: float, rate: float, alpha: float) -> bool:
    """The anytime-valid (1 - alpha) interval lies above ``rate``."""
    return n > 0 and x / n > rate and _log_mixture(x, n, rate) >= math.log(1.0 / alpha)


def _points(hist: Histogram) -> list[tuple[float, float]]:
    """(bound, cumulative count) from (0, 0), finite bounds only, sorted."""
    out = [(0.0, 0.0)]
    for bound, count in sorted((float(b), float(c)) for b, c in hist):
        if math.isinf(bound):
            continue
        out.append((bound, max(count, out[-1][1])))
    return out


def _total(hist: Histogram) -> float:
    return max((float(c) for _, c in hist), default=0.0)


def slower_than(hist: Histogram, t: float) -> float:
    """Requests slower than t, with counts inside a bucket spread evenly over it (as
    Prometheus' histogram_quantile reads a histogram); the +Inf bucket is slower than any
    finite t."""
    points = _points(hist)
    total = _total(hist)
    for (b0, c0), (b1, c1) in itertools.pairwise(points):
        if t <= b1:
            below = c0 + (c1 - c0) * (t - b0) / (b1 - b0) if b1 > b0 else c1
            return total - below
    return total - points[-1][1]


def _time_at(hist: Histogram, slower: float, *, last: bool) -> float | None:
    """The time t at which slower_than(hist, t) == slower (the first such t, or the last
    one when ``last``); None when the histogram's finite bounds do not reach it."""
    points = _points(hist)
    total = _total(hist)
    want = total - slower  # the cumulative count at t
    if want < 0:
        return None
    if last and want >= points[-1][1]:
        return points[-1][0]  # slower ones sit beyond the last finite bound, at least
    found: float | None = None
    for (b0, c0), (b1, c1) in itertools.pairwise(points):
        if c0 <= want <= c1:
            t = b0 + (b1 - b0) * (want - c0) / (c1 - c0) if c1 > c0 else (b1 if last else b0)
            if not last:
                return t
            found = t
        elif found is not None and c0 > want:
            break
    return found


@dataclass(frozen=True)
class QuantileRatio:
    """What is known of candidate q-quantile <= ratio x stable q-quantile.

    stable_low / stable_high: where the stable q-quantile is, at the confidence asked
    (None: not pinned down yet); slow_share: the candidate's share of requests slower
    than ratio x the stable quantile (point estimate); verdict; needed: further candidate
    requests until a verdict if both histograms keep their shapes (None: not in sight).
    """

    stable_low: float | None
    stable_high: float | None
    slow_share: float
    verdict: Verdict
    needed: int | None


def _quantile_verdict(
    cand: Histogram, stable: Histogram, q: float, ratio: float, alpha: float
) -> tuple[Verdict, float | None, float | None]:
    share = 1.0 - q
    # Bonferroni over the histogram's bounds: the thresholds compared at are chosen from
    # the data, and counts are only observed at the bounds.
    bounds = max(1, len(_points(stable)) - 1)
    a = alpha / 2 / bounds
    n_s, n_c = _total(stable), _total(cand)
    if n_s <= 0 or n_c <= 0:
        return Verdict.PENDING, None, None
    # The stable quantile's bracket: at high, surely no more than `share` is slower; at
    # low, surely more is (requests slower than t fall as t grows: bisect on the count).
    high = low = None
    if surely_below(0.0, n_s, share, a):
        lo, hi = 0.0, n_s * share  # surely below at lo; not at hi (x/n must be < share)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if surely_below(mid, n_s, share, a) else (lo, mid)
        high = _time_at(stable, lo, last=False)
    if surely_above(n_s, n_s, share, a):
        lo, hi = n_s * share, n_s  # not surely above at lo; surely at hi
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if surely_above(mid, n_s, share, a) else (mid, hi)
        low = _time_at(stable, hi, last=True)
    if high is not None and surely_above(slower_than(cand, ratio * high), n_c, share, a):
        return Verdict.FAIL, low, high
    if low is not None and surely_below(slower_than(cand, ratio * low), n_c, share, a):
        return Verdict.PASS, low, high
    return Verdict.PENDING, low, high


def quantile_ratio(
    cand: Histogram,
    stable: Histogram,
    *,
    ratio: float,
    alpha: float,
    q: float = 0.99,
    estimate_needed: bool = True,
) -> QuantileRatio:
    """The candidate's q-quantile latency against ``ratio`` times the stable one's, decided
    anytime-validly from the two cumulative latency histograms.

    The question is turned into a rate: the share of candidate requests slower than
    ratio x the stable q-quantile is at most 1 - q exactly when the candidate's
    q-quantile is within the limit. The stable quantile is bracketed by confidence
    sequences on the stable share slower than t (at alpha/2); the candidate's share is
    judged against the bracket's far end to FAIL (slower than ratio x the highest the
    stable quantile may be) and its near end to PASS (at alpha/2), so a wrong verdict
    needs one of the sequences to miss. Counts between a histogram's bounds are read by
    linear interpolation (as histogram_quantile reads them): the guarantee is at the
    histogram's resolution, and the simulation in tests/unit/test_rollout_sequential.py
    and bench/rollout/sequential.py checks the resulting rates.
    """
    verdict, low, high = _quantile_verdict(cand, stable, q, ratio, alpha)
    n_c = _total(cand)
    reference = low if low is not None else high
    share = slower_than(cand, ratio * reference) / n_c if reference and n_c else 0.0
    needed: int | None = 0
    if verdict is Verdict.PENDING:
        needed = None
        if estimate_needed and n_c > 0 and _total(stable) > 0:

            def decided(scale: float) -> bool:
                c = [(b, n * scale) for b, n in cand]
                s = [(b, n * scale) for b, n in stable]
                return _quantile_verdict(c, s, q, ratio, alpha)[0] is not Verdict.PENDING

            needed = _scale_needed(decided, n_c)
    return QuantileRatio(low, high, share, verdict, needed)


def _scale_needed(decided: Callable[[float], bool], n: float) -> int | None:
    """Further trials (of n so far) until ``decided`` holds at the grown counts; None when
    not within a million-fold growth."""
    hi = 2.0
    while not decided(hi):
        hi *= 2
        if hi > _MAX_SCALE:
            return None
    lo = hi / 2 if hi > 2 else 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if decided(mid):
            hi = mid
        else:
            lo = mid
        if (hi - lo) * n < 1:
            break
    return max(1, math.ceil(n * hi - n))


def fixed_sample_size(
    rate_a: float, rate_b: float, limit: float, alpha: float, ratio_b: float = 1.0
) -> int:
    """Side-a trials a one-look test at level alpha needs (normal approximation,
    rate_b measured on ratio_b times as many trials) to separate rate_a - rate_b from
    the limit: what a fixed-sample design would wait for (bench comparison)."""
    gap = abs(rate_a - rate_b - limit)
    if gap == 0:
        return _MAX_SCALE
    z = _z(1 - alpha / 2)
    variance = rate_a * (1 - rate_a) + rate_b * (1 - rate_b) / ratio_b
    return max(1, math.ceil(z * z * max(variance, 1e-12) / (gap * gap)))


def _z(q: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, |error| < 1e-9)."""
    a = (-39.6968302866538, 220.946098424521, -275.928510446969, 138.357751867269,
         -30.6647980661472, 2.50662827745924)  # fmt: skip
    b = (-54.4760987982241, 161.585836858041, -155.698979859887, 66.8013118877197,
         -13.2806815528857)  # fmt: skip
    c = (-0.00778489400243029, -0.322396458041136, -2.40075827716184, -2.54973253934373,
         4.37466414146497, 2.93816398269878)  # fmt: skip
    d = (0.00778469570904146, 0.32246712907004, 2.445134137143, 3.75440866190742)
    if q < 0.02425:
        t = math.sqrt(-2 * math.log(q))
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / (
            (((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1
        )
    if q > 1 - 0.02425:
        return -_z(1 - q)
    s = q - 0.5
    r = s * s
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * s
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )


__all__ = [
    "Difference",
    "QuantileRatio",
    "Verdict",
    "difference",
    "fixed_sample_size",
    "quantile_ratio",
    "rate_interval",
    "slower_than",
    "surely_above",
    "surely_below",
]

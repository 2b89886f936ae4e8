"""Anytime-valid sequential gates (render/gating/sequential.py): the intervals,
the verdicts, and their error rates under repeated looks, by seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelops.drift.figures import LATENCY_BOUNDS
from modelops.render.gating.build_inputs import histogram_quantile
from modelops.render.gating.sequential import (
    Verdict,
    difference,
    fixed_sample_size,
    quantile_ratio,
    rate_interval,
)


@pytest.mark.parametrize(("x", "n"), [(0, 10), (1, 120), (50, 200), (200, 200), (3, 100_000)])
def test_the_interval_holds_the_estimate_and_stays_in_0_1(x: int, n: int):
    lower, upper = rate_interval(x, n, 0.05)
    assert 0.0 <= lower <= x / n <= upper <= 1.0
    assert (lower == 0.0) == (x == 0) and (upper == 1.0) == (x == n)


def test_the_interval_narrows_with_evidence_and_adapts_to_small_rates():
    widths = [rate_interval(n // 100, n, 0.05) for n in (100, 1_000, 10_000, 100_000)]
    spans = [u - lo for lo, u in widths]
    assert spans == sorted(spans, reverse=True)
    # A 1% rate is pinned to about +-0.1 percentage point by 100k trials, where a
    # variance-blind (Hoeffding) bound would still be about +-0.9.
    assert spans[-1] < 0.003
    assert rate_interval(0, 0, 0.05) == (0.0, 1.0)


def test_verdicts_and_samples_needed():
    fail = difference(30, 600, 6, 6000, limit=0.01, alpha=0.05)
    assert fail.verdict is Verdict.FAIL and fail.lower > 0.01
    passed = difference(20, 4000, 80, 40000, limit=0.01, alpha=0.05)
    assert passed.verdict is Verdict.PASS and passed.upper <= 0.01
    pending = difference(5, 1000, 20, 10000, limit=0.01, alpha=0.05)
    assert pending.verdict is Verdict.PENDING
    assert pending.needed is not None and pending.needed > 0
    # Evidence grown by what was said to be needed, at the same rates, does decide it
    # (counts scaled as they are expected to grow, hence not whole numbers).
    k = (1000 + pending.needed) / 1000
    later = difference(5 * k, 1000 * k, 20 * k, 10000 * k, limit=0.01, alpha=0.05)  # type: ignore[arg-type]
    assert later.verdict is Verdict.PASS
    sooner = 0.9 * k
    assert (
        difference(
            5 * sooner, 1000 * sooner, 20 * sooner, 10000 * sooner, limit=0.01, alpha=0.05
        ).verdict  # type: ignore[arg-type]
        is Verdict.PENDING
    )
    # An estimate sitting on the limit never decides: no promise of a verdict.
    on_limit = difference(20, 1000, 100, 10000, limit=0.01, alpha=0.05)
    assert on_limit.verdict is Verdict.PENDING and on_limit.needed is None


def test_an_unmeasured_side_is_taken_as_zero_with_all_of_alpha_on_the_other():
    known = difference(1, 1000, 0, 1000, limit=0.05, alpha=0.05)
    unknown = difference(1, 1000, 0, 0, limit=0.05, alpha=0.05, b_known=False)
    assert unknown.lower >= 0 and unknown.upper < known.upper


def _looks() -> list[int]:
    """Candidate request counts at which analysis looks: 200 up to 20,000, ~25% apart."""
    out, n = [], 200
    while n <= 20_000:
        out.append(n)
        n = math.ceil(n * 1.25)
    return out


def _simulate(p_cand: float, p_stable: float, limit: float, alpha: float, streams: int):
    """First verdict of each stream (cumulative Bernoulli counts, stable seeing 5x the
    candidate's requests), with the sequential test and with a fixed-sample z-test read at
    every look (the naive practice the sequential test replaces)."""
    rng = np.random.default_rng(20261207)
    looks = _looks()
    seq: list[Verdict] = []
    naive: list[Verdict] = []
    z = 1.959963984540054
    for _ in range(streams):
        steps = np.diff([0, *looks])
        x_c = np.cumsum(rng.binomial(steps, p_cand))
        x_s = np.cumsum(rng.binomial(5 * steps, p_stable))
        first_seq = first_naive = Verdict.PENDING
        for n, xc, xs in zip(looks, x_c, x_s, strict=True):
            if first_seq is Verdict.PENDING:
                first_seq = difference(
                    int(xc), n, int(xs), 5 * n, limit=limit, alpha=alpha, estimate_needed=False
                ).verdict
            if first_naive is Verdict.PENDING:
                pc, ps = xc / n, xs / (5 * n)
                se = math.sqrt(max(pc * (1 - pc) / n + ps * (1 - ps) / (5 * n), 1e-12))
                if pc - ps - z * se > limit:
                    first_naive = Verdict.FAIL
                elif pc - ps + z * se <= limit:
                    first_naive = Verdict.PASS
            if first_seq is not Verdict.PENDING and first_naive is not Verdict.PENDING:
                break
        seq.append(first_seq)
        naive.append(first_naive)
    return seq, naive


ALPHA = 0.05
STREAMS = 400
# Three standard errors of a rate alpha over STREAMS streams.
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / STREAMS)


def test_false_promotions_stay_below_alpha_however_often_analysis_looks():
    # The candidate is worse than allowed (increase 0.0105 > 0.01), by little: the
    # hardest case. Promoting it is the error.
    seq, naive = _simulate(0.0125, 0.002, 0.01, ALPHA, STREAMS)
    false_promotions = seq.count(Verdict.PASS) / STREAMS
    assert false_promotions <= ALPHA + SLACK
    # The fixed-sample test read at every look promotes it far more often.
    assert naive.count(Verdict.PASS) / STREAMS > false_promotions + SLACK


def test_false_rollbacks_stay_below_alpha_however_often_analysis_looks():
    # Within the limit (increase 0.0095 <= 0.01), by little: rolling back is the error.
    seq, naive = _simulate(0.0115, 0.002, 0.01, ALPHA, STREAMS)
    false_rollbacks = seq.count(Verdict.FAIL) / STREAMS
    assert false_rollbacks <= ALPHA + SLACK
    assert naive.count(Verdict.FAIL) / STREAMS > false_rollbacks + SLACK


def test_a_clear_difference_is_decided_early_and_rightly():
    seq, _ = _simulate(0.05, 0.002, 0.01, ALPHA, 100)
    assert seq.count(Verdict.FAIL) == 100


def test_fixed_sample_size_grows_as_the_gap_to_the_limit_shrinks():
    far = fixed_sample_size(0.05, 0.002, 0.01, ALPHA, ratio_b=5)
    near = fixed_sample_size(0.0125, 0.002, 0.01, ALPHA, ratio_b=5)
    assert 0 < far < near


# -- the latency gate: candidate p99 <= ratio x stable p99 -----------------------------------


def _histograms(samples: np.ndarray, looks: list[int]) -> list[list[tuple[float, int]]]:
    """The sidecars' cumulative latency histogram (modelops.drift.figures bounds) of the
    first n samples, at each look n."""
    bounds = (*LATENCY_BOUNDS, float("inf"))
    index = np.searchsorted(np.array(LATENCY_BOUNDS), samples, side="left")  # le buckets
    onehot = np.zeros((len(samples), len(bounds)), np.int32)
    onehot[np.arange(len(samples)), index] = 1
    running = np.cumsum(onehot, axis=0)
    return [list(zip(bounds, np.cumsum(running[n - 1]).tolist(), strict=True)) for n in looks]


def _simulate_latency(factor: float, ratio: float, streams: int, horizon: int):
    """First verdict of each stream: stable latencies lognormal (median 20 ms, p99 about
    64 ms), the candidate's the same times ``factor`` (so its p99 is exactly factor x
    stable's), the stable side seeing 5x the candidate's requests; with the sequential
    gate, and with the point-estimate gate it replaces (the p99s read off the histograms
    and compared at every look from 100 requests on)."""
    rng = np.random.default_rng(20261207)
    looks = [n for n in _looks() if n <= horizon]
    seq: list[Verdict] = []
    naive: list[Verdict] = []
    for _ in range(streams):
        cand = _histograms(factor * rng.lognormal(math.log(0.02), 0.5, looks[-1]), looks)
        stable = _histograms(
            rng.lognormal(math.log(0.02), 0.5, 5 * looks[-1]), [5 * n for n in looks]
        )
        first = Verdict.PENDING
        for c, s in zip(cand, stable, strict=True):
            first = quantile_ratio(c, s, ratio=ratio, alpha=ALPHA, estimate_needed=False).verdict
            if first is not Verdict.PENDING:
                break
        seq.append(first)
        c_p99 = histogram_quantile(0.99, dict(cand[0]))
        s_p99 = histogram_quantile(0.99, dict(stable[0]))
        assert c_p99 is not None and s_p99
        naive.append(Verdict.PASS if c_p99 <= ratio * s_p99 else Verdict.FAIL)
    return seq, naive


def test_the_latency_gate_falsely_promotes_at_most_alpha_near_the_limit():
    # p99 1.6x stable's against a limit of 1.5x: promoting it is the error.
    seq, naive = _simulate_latency(1.6, 1.5, 60, 8000)
    false_promotions = seq.count(Verdict.PASS) / len(seq)
    assert false_promotions <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / len(seq))
    # Read once at 200 requests, the point estimate promotes it often.
    assert naive.count(Verdict.PASS) / len(naive) > false_promotions + 0.1


def test_the_latency_gate_falsely_rolls_back_at_most_alpha_near_the_limit():
    # p99 1.4x stable's against 1.5x: rolling back is the error.
    seq, _ = _simulate_latency(1.4, 1.5, 60, 8000)
    false_rollbacks = seq.count(Verdict.FAIL) / len(seq)
    assert false_rollbacks <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / len(seq))


def test_the_latency_gate_decides_clear_cases_early_and_rightly():
    seq, _ = _simulate_latency(1.0, 1.5, 20, 8000)
    assert seq.count(Verdict.PASS) == 20
    seq, _ = _simulate_latency(3.0, 1.5, 20, 2000)
    assert seq.count(Verdict.FAIL) == 20


def test_the_latency_gate_on_histograms():
    fast = [(0.005, 0), (0.01, 0), (0.025, 5000), (float("inf"), 5000)]
    slow = [(0.005, 0), (0.01, 0), (0.025, 0), (0.25, 300), (float("inf"), 300)]
    # 300 requests between 25 and 250 ms, stable's p99 at most 25 ms: FAIL. (Counts in a
    # bucket are read as spread evenly over it: most of the 300 are beyond 2x.)
    r = quantile_ratio(slow, fast, ratio=2.0, alpha=0.05)
    assert r.verdict is Verdict.FAIL and r.stable_high is not None and r.stable_high <= 0.025
    assert 0.8 < r.slow_share <= 1.0
    # As fast as stable, on 300 requests: 1% is not pinned down yet, and it says how long.
    same = [(b, c * 300 // 5000) for b, c in fast]
    r = quantile_ratio(same, fast, ratio=2.0, alpha=0.05)
    assert r.verdict is Verdict.PENDING and r.needed is not None and 300 < r.needed < 3000
    # Nothing measured on a side: no verdict, never a pass.
    assert quantile_ratio([(float("inf"), 0)], fast, ratio=2.0, alpha=0.05).verdict is (
        Verdict.PENDING
    )

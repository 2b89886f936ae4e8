"""The sequential error-rate gate against a fixed-sample test, by simulation.

For candidates whose error-rate increase over stable is below, at, and above
`maxErrorRateIncrease` (0.01), each simulated rollout looks at its figures as
analysis does (here every ~25% more candidate requests, from 200 up to the
horizon) and stops at its first verdict. Reported per scenario:

- the sequential gate (render/gating/sequential.py, confidence 0.95): the
  share of rollouts promoted, rolled back and still undecided at the
  horizon, and the mean candidate requests to a verdict;
- the same fixed-sample z-test (95%) read at every look (what a gate that
  simply re-evaluates "is it past the limit yet?" does): its promotions and
  rollbacks;
- the fixed-sample test read once, at the sample size it would need to
  separate the true rates from the limit (a design that knows the answer).

A false promotion is a PASS for a candidate above the limit, a false rollback
a FAIL for one within it. The sequential gate keeps both below 5% whatever the
number of looks; the re-read fixed test does not.

A second table does the same for the latency gate (maxLatencyP99Ratio 1.5,
render/gating/sequential.py quantile_ratio): stable latencies lognormal
(median 20 ms, p99 about 64 ms), the candidate's the same times a factor (its
p99 is exactly that factor times stable's), as the sidecars' histograms;
against the point-estimate gate it replaces (the two p99s read off the
histograms at minRequests 200 and compared once).

    python bench/rollout/sequential.py [--streams 400] [--horizon 40000]
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys

import numpy as np

from modelops.drift.figures import LATENCY_BOUNDS
from modelops.render.gating.build_inputs import histogram_quantile
from modelops.render.gating.sequential import (
    Verdict,
    difference,
    fixed_sample_size,
    quantile_ratio,
)

ALPHA = 0.05
LIMIT = 0.01
STABLE = 0.002
STABLE_RATIO = 5  # the stable side answers 5x the candidate's requests (a 20% canary)
Z = 1.959963984540054


def looks(horizon: int) -> list[int]:
    out, n = [], 200
    while n <= horizon:
        out.append(n)
        n = math.ceil(n * 1.25)
    return out


def simulate(
    p_cand: float, streams: int, horizon: int, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    rng = np.random.default_rng(seed)
    points = looks(horizon)
    steps = np.diff([0, *points])
    seq = {"Pass": 0, "Fail": 0, "Pending": 0}
    naive = {"Pass": 0, "Fail": 0, "Pending": 0}
    samples = []
    for _ in range(streams):
        x_c = np.cumsum(rng.binomial(steps, p_cand))
        x_s = np.cumsum(rng.binomial(STABLE_RATIO * steps, STABLE))
        first_seq = first_naive = Verdict.PENDING
        at = horizon
        for n, xc, xs in zip(points, x_c, x_s, strict=True):
            m = STABLE_RATIO * n
            if first_seq is Verdict.PENDING:
                first_seq = difference(
                    int(xc), n, int(xs), m, limit=LIMIT, alpha=ALPHA, estimate_needed=False
                ).verdict
                at = n
            if first_naive is Verdict.PENDING:
                pc, ps = xc / n, xs / m
                se = math.sqrt(max(pc * (1 - pc) / n + ps * (1 - ps) / m, 1e-12))
                if pc - ps - Z * se > LIMIT:
                    first_naive = Verdict.FAIL
                elif pc - ps + Z * se <= LIMIT:
                    first_naive = Verdict.PASS
            if first_seq is not Verdict.PENDING and first_naive is not Verdict.PENDING:
                break
        seq[first_seq.value] += 1
        naive[first_naive.value] += 1
        if first_seq is not Verdict.PENDING:
            samples.append(at)
    out = {k: v / streams for k, v in seq.items()}
    out["mean requests to a verdict"] = float(np.mean(samples)) if samples else float("nan")
    return out, {k: v / streams for k, v in naive.items()}


RATIO = 1.5
MEDIAN_S = 0.02
SIGMA = 0.5


def _histograms(samples: np.ndarray, points: list[int]) -> list[list[tuple[float, int]]]:
    """The sidecars' cumulative latency histogram of the first n samples, per look n."""
    bounds = (*LATENCY_BOUNDS, float("inf"))
    index = np.searchsorted(np.array(LATENCY_BOUNDS), samples, side="left")
    onehot = np.zeros((len(samples), len(bounds)), np.int32)
    onehot[np.arange(len(samples)), index] = 1
    running = np.cumsum(onehot, axis=0)
    return [list(zip(bounds, np.cumsum(running[n - 1]).tolist(), strict=True)) for n in points]


def simulate_latency(
    factor: float, streams: int, horizon: int, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    rng = np.random.default_rng(seed)
    points = looks(horizon)
    seq = {"Pass": 0, "Fail": 0, "Pending": 0}
    point = {"Pass": 0, "Fail": 0}
    samples = []
    for _ in range(streams):
        cand = _histograms(factor * rng.lognormal(math.log(MEDIAN_S), SIGMA, points[-1]), points)
        stable = _histograms(
            rng.lognormal(math.log(MEDIAN_S), SIGMA, STABLE_RATIO * points[-1]),
            [STABLE_RATIO * n for n in points],
        )
        first = Verdict.PENDING
        for n, c, s_ in zip(points, cand, stable, strict=True):
            first = quantile_ratio(c, s_, ratio=RATIO, alpha=ALPHA, estimate_needed=False).verdict
            if first is not Verdict.PENDING:
                samples.append(n)
                break
        seq[first.value] += 1
        c99 = histogram_quantile(0.99, dict(cand[0])) or 0.0
        s99 = histogram_quantile(0.99, dict(stable[0])) or 0.0
        point["Pass" if c99 <= RATIO * s99 else "Fail"] += 1
    out = {k: v / streams for k, v in seq.items()}
    out["mean requests to a verdict"] = float(np.mean(samples)) if samples else float("nan")
    return out, {k: v / streams for k, v in point.items()}


def latency_table(streams: int, horizon: int) -> None:
    print()
    print(
        f"# latency gate: maxLatencyP99Ratio {RATIO}, stable lognormal (median "
        f"{MEDIAN_S * 1000:g} ms, sigma {SIGMA}), candidate = stable x factor, confidence "
        f"{1 - ALPHA}, {streams} rollouts per row, horizon {horizon} candidate requests"
    )
    header = (
        f"{'p99 ratio':>9} {'truth':>9} | {'seq PASS':>8} {'seq FAIL':>8} {'undecided':>9} "
        f"{'mean n':>8} | {'point PASS':>10} {'point FAIL':>10}"
    )
    print(header)
    print("-" * len(header))
    for i, factor in enumerate((1.0, 1.3, 1.45, 1.55, 1.7, 2.0, 3.0)):
        seq, point = simulate_latency(factor, streams, horizon, seed=2000 + i)
        truth = "within" if factor <= RATIO else "above"
        print(
            f"{factor:>9.2f} {truth:>9} | {seq['Pass']:>8.3f} {seq['Fail']:>8.3f} "
            f"{seq['Pending']:>9.3f} {seq['mean requests to a verdict']:>8.0f} | "
            f"{point['Pass']:>10.3f} {point['Fail']:>10.3f}"
        )
    print(
        "false promotion = seq PASS on an 'above' row; false rollback = seq FAIL on a "
        "'within' row; 'point' is the p99 ratio read once at 200 requests (the gate before)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--horizon", type=int, default=40_000)
    parser.add_argument(
        "--latency-streams", type=int, default=None, help="default: half of --streams"
    )
    parser.add_argument("--latency-horizon", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"# {shlex.join(['python', 'bench/rollout/sequential.py', *argv])}")
    print(
        f"# stable error rate {STABLE}, maxErrorRateIncrease {LIMIT}, confidence "
        f"{1 - ALPHA}, stable sees {STABLE_RATIO}x the candidate's requests, "
        f"{args.streams} rollouts per row, horizon {args.horizon} candidate requests"
    )
    header = (
        f"{'increase':>9} {'truth':>9} | {'seq PASS':>8} {'seq FAIL':>8} {'undecided':>9} "
        f"{'mean n':>8} | {'re-read PASS':>12} {'re-read FAIL':>12} | {'fixed n':>8}"
    )
    print(header)
    print("-" * len(header))
    for i, increase in enumerate((0.0, 0.005, 0.009, 0.0105, 0.015, 0.03)):
        p_cand = STABLE + increase
        seq, naive = simulate(p_cand, args.streams, args.horizon, seed=1000 + i)
        truth = "within" if increase <= LIMIT else "above"
        fixed = fixed_sample_size(p_cand, STABLE, LIMIT, ALPHA, ratio_b=STABLE_RATIO)
        print(
            f"{increase:>9.4f} {truth:>9} | {seq['Pass']:>8.3f} {seq['Fail']:>8.3f} "
            f"{seq['Pending']:>9.3f} {seq['mean requests to a verdict']:>8.0f} | "
            f"{naive['Pass']:>12.3f} {naive['Fail']:>12.3f} | {fixed:>8}"
        )
    print(
        "false promotion = seq PASS on an 'above' row; false rollback = seq FAIL on a "
        "'within' row (both bounded by 1 - confidence); 'fixed n' is the one-look test's "
        "sample size for that row's true rates"
    )
    latency_table(args.latency_streams or max(1, args.streams // 2), args.latency_horizon)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

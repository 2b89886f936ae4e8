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

    python bench/rollout/sequential.py [--streams 400] [--horizon 40000]
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys

import numpy as np

from modelops.render.gating.sequential import Verdict, difference, fixed_sample_size

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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--horizon", type=int, default=40_000)
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

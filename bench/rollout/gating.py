"""Cost of the gated-rollout core: agreement per mirrored request, decision per reconcile.

- Agreement: process time of `answers_agree` per 1,000 mirrored requests, for a
  classifier (argmax over C classes) and a regressor (relative tolerance), at
  batch sizes 1 and 64. This is the comparison part of the data plane's CPU per
  mirrored request (decoding the two responses is the sidecar's and not here).
- Decision: process time of one `decide_gated_rollout` call in the shadow phase
  with live figures (the per-reconcile cost the operator adds per gated
  ModelDeployment), and of one with nothing to do (Idle).

    python bench/rollout/gating.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from modelops.render.gating import (
    CandidatePods,
    ObservedFigures,
    Target,
    VersionFigures,
    answers_agree,
    decide_gated_rollout,
)


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def agreement_rows(requests: int) -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 64):
        for classes in (2, 1000):
            s = {"PROBS": rng.random((batch, classes), dtype=np.float32)}
            c = {"PROBS": s["PROBS"] + rng.normal(0, 1e-3, (batch, classes)).astype(np.float32)}
            us = per_call_us(lambda s=s, c=c: answers_agree(s, c, mode="Argmax"), requests)
            rows.append((f"argmax, batch {batch}, {classes} classes", us))
        s = {"Y": rng.random((batch, 1)) * 100}
        c = {"Y": s["Y"] * 1.001}
        us = per_call_us(
            lambda s=s, c=c: answers_agree(s, c, mode="RelativeTolerance", tolerance=0.01),
            requests,
        )
        rows.append((f"relative tolerance, batch {batch}, 1 output", us))
    return rows


BODY = {
    "metadata": {"name": "fraud", "namespace": "ml", "generation": 4},
    "spec": {
        "model": {"storageUri": "s3://models/fraud"},
        "replicas": 3,
        "rollout": {
            "strategy": "Shadow",
            "shadow": {"mirrorPercent": 10, "duration": "30m"},
            "canary": {"steps": [{"weight": 10, "duration": "10m"}, {"weight": 50}]},
            "analysis": {"minRequests": 100, "minAgreement": 0.95, "maxLatencyP99Ratio": 1.5},
        },
    },
}
T0 = datetime(2026, 12, 1, 3, tzinfo=UTC)


def decision_rows(calls: int) -> list[tuple[str, float]]:
    target = Target("8", {"kind": "Latest"})
    ready = CandidatePods(desired=1, ready=1)
    first = decide_gated_rollout(
        BODY,
        target=target,
        previous={"phase": "Idle", "stable": "7"},
        history=[],
        figures=None,
        candidate=CandidatePods(desired=1),
        replicas=3,
        serving="7",
        now=T0,
    )
    shadow = decide_gated_rollout(
        BODY,
        target=target,
        previous=first.status,
        history=first.history,
        figures=ObservedFigures(),
        candidate=ready,
        replicas=3,
        serving="7",
        now=T0 + timedelta(minutes=1),
    )
    # Latency histograms as the sidecars report them (cumulative, seconds): the latency
    # gate decides on them (sequential.quantile_ratio), the p99 is only shown.
    bounds = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, float("inf"))
    stable_hist = tuple(
        zip(bounds, (0, 400, 20_000, 36_000, 39_000, 39_700, 40_000, 40_000), strict=True)
    )
    cand_hist = tuple(zip(bounds, (0, 30, 1_900, 3_550, 3_880, 3_965, 4_000, 4_000), strict=True))
    figures = ObservedFigures(
        VersionFigures(40_000, 4, 0.1, 0, stable_hist),
        VersionFigures(4_000, 0, 0.11, 0, cand_hist),
        4_000,
        3_990,
    )

    def analysing() -> object:
        return decide_gated_rollout(
            BODY,
            target=target,
            previous=shadow.status,
            history=shadow.history,
            figures=figures,
            candidate=ready,
            replicas=3,
            serving="7",
            now=T0 + timedelta(minutes=5),
        )

    def idle() -> object:
        return decide_gated_rollout(
            BODY,
            target=Target("7", {"kind": "Latest"}),
            previous={"phase": "Idle", "stable": "7"},
            history=[],
            figures=None,
            candidate=CandidatePods(),
            replicas=3,
            serving="7",
            now=T0,
        )

    return [
        ("decide: shadow phase with live figures", per_call_us(analysing, calls)),
        ("decide: idle", per_call_us(idle, calls)),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="agreement calls per row")
    parser.add_argument("--decisions", type=int, default=2_000, help="decide calls per row")
    args = parser.parse_args(argv)
    print(f"# {shlex.join(['python', 'bench/rollout/gating.py', *argv])}")
    print(f"{'agreement':<44} {'CPU per 1,000 mirrored requests':>32}")
    for name, us in agreement_rows(args.requests):
        # µs per call = ms per 1,000 calls
        print(f"{name:<44} {us:>29.1f} ms")
    print(f"\n{'decision':<44} {'CPU per call':>32}")
    for name, us in decision_rows(args.decisions):
        print(f"{name:<44} {us:>29.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

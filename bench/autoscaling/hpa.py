"""Time from a queue-time breach to the new replica Ready, on the local cluster.

Runs the real-HPA e2e scenario (real Triton per simulated pod, real Prometheus,
real prometheus-adapter through the aggregation layer, kube-controller-manager's
HPA controller, the operator) --runs times and reports what it measures:

- breach -> new replica Ready: from the moment custom.metrics.k8s.io first
  shows a pod's queue time above the target (polled every 0.5 s) until the
  Deployment has a second Ready replica. This is the HPA sync (5 s in the
  local profile) + the scale + KWOK's pod start; on a real cluster add image
  pull, model load and readiness probes.
- breach -> status: until the ModelDeployment's status shows all replicas Ready.
- load stopped -> scaled in: the adapter rules' 1 m rate window emptying, then
  the ModelDeployment's 15 s scaleDownStabilizationSeconds, then the sync.

Run: .venv/bin/python bench/autoscaling/hpa.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST = "e2e/test_autoscaling_real.py::test_queue_time_above_target_scales_out_and_back_in"
FIGURES = {
    "queue-time breach -> new replica Ready": re.compile(
        r"queue-time breach -> new replica Ready: ([0-9.]+)s"
    ),
    "queue-time breach -> status.readyReplicas at max": re.compile(
        r"queue-time breach -> status.readyReplicas \d+: ([0-9.]+)s"
    ),
    "load stopped -> scaled in to minReplicas": re.compile(
        r"load stopped -> scaled in to 1: ([0-9.]+)s"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {name: [] for name in FIGURES}
    for _ in range(args.runs):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        found = {name: pattern.search(proc.stdout) for name, pattern in FIGURES.items()}
        if proc.returncode != 0 or not all(found.values()):
            print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
            return 1
        for name, match in found.items():
            assert match is not None
            seconds[name].append(float(match.group(1)))
    print(f"command: .venv/bin/python bench/autoscaling/hpa.py --runs {args.runs}")
    for name, values in seconds.items():
        runs = ", ".join(f"{s:.1f}" for s in values)
        print(f"{name}: median {statistics.median(values):.1f}s (runs: {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

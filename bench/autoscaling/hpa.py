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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenario import main

TEST = "e2e/test_autoscaling_real.py::test_queue_time_above_target_scales_out_and_back_in"
FIGURES = {
    "queue-time breach -> new replica Ready": r"queue-time breach -> new replica Ready: ([0-9.]+)s",
    "queue-time breach -> status.readyReplicas at max": (
        r"queue-time breach -> status.readyReplicas \d+: ([0-9.]+)s"
    ),
    "load stopped -> scaled in to minReplicas": r"load stopped -> scaled in to 1: ([0-9.]+)s",
}

if __name__ == "__main__":
    sys.exit(main(TEST, FIGURES, "bench/autoscaling/hpa.py"))

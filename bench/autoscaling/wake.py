"""Waking from zero on the real node: the first request's wait, broken down, and
requests lost.

Runs the e2e scenario of e2e/test_wake_real.py (the sample on node `real-1`
taken to zero, the activator holding a burst of requests sent through the
Service by a client pod, the model scaled up and the held requests answered)
--runs times and reports the median of each figure it prints:

- first request at zero -> its answer (what a client waits);
- scale decision: from the first request held to the Deployment scaled 0 -> 1
  (the activator does it itself, no polling interval);
- pod start: the pod created -> Triton's container started, the pull-model
  init container's download from S3 included (and shown on its own);
- model load: Triton started -> the pod Ready (/v2/health/ready: model loaded);
- release: Ready -> the first held request answered (the activator's poll of
  the Service's EndpointSlices, then the forward);
- requests lost among those within the queue limit (must be 0; the test fails
  otherwise).

Needs the real node (hack/node) and the project's images; the test skips
without them.

Run: .venv/bin/python bench/autoscaling/wake.py [--runs 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenario import main

TEST = (
    "e2e/test_wake_real.py::"
    "test_a_burst_at_zero_is_held_and_all_of_it_answered_once_a_replica_is_ready"
)
FIGURES = {
    "first request at zero -> its answer": r"first request at zero -> its answer: ([0-9.]+)s",
    "scale decision": r"scale decision \(request held -> Deployment scaled\): ([0-9.]+)s",
    "pod start (model pull included)": r"pod start \(created -> Triton started[^:]*: ([0-9.]+)s",
    "model pull": r"of which model pull \(created -> pull-model done\): ([0-9.]+)s",
    "model load": r"model load \(Triton started -> Ready\): ([0-9.]+)s",
    "release": r"release \(Ready -> first answer\): (-?[0-9.]+)s",
    "requests lost": r"requests lost: ([0-9]+)",
}

if __name__ == "__main__":
    sys.exit(main(TEST, FIGURES, "bench/autoscaling/wake.py", default_runs=1))

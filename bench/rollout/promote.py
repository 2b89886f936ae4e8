"""Time from a new model version in the spec to its promotion, on the local cluster.

Runs the gated-rollout e2e scenario (real Triton for both versions, real
sidecars mirroring 50% of a steady client load to the candidate, the
operator deciding from their figures, simulated pods) --runs times and
reports the figure it measures: from applying the new version until status
says it is the stable version. The scenario's shadow step needs 30 compared
requests; the operator looks at the figures every 15 s, and it is killed
and restarted once mid-analysis (the figure includes that restart).

Run: .venv/bin/python bench/rollout/promote.py [--runs 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenario import main

TEST = "e2e/test_gated_rollout.py::test_a_good_candidate_is_promoted_and_ready_never_drops"
FIGURES = {"version published -> promoted": r"version published -> promoted: ([0-9.]+)s"}

if __name__ == "__main__":
    sys.exit(main(TEST, FIGURES, "bench/rollout/promote.py"))

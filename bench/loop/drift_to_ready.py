"""Time from drift detected to the retrained version Ready, on the local cluster.

Runs the closed-loop e2e scenario (real Triton, real sidecar, real trainer,
simulated pods) --runs times and reports the figure it measures: from the
first drifted request until the ModelDeployment is Ready serving the new
version (this includes the real training run, 2 epochs on 4,000 rows).

Run: .venv/bin/python bench/loop/drift_to_ready.py [--runs 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenario import main

TEST = "e2e/test_drift_status.py::test_drift_retrains_and_rolls_out_the_new_version"
FIGURES = {
    "drift detected -> new version Ready": r"drift detected -> new version Ready: ([0-9.]+)s"
}

if __name__ == "__main__":
    sys.exit(main(TEST, FIGURES, "bench/loop/drift_to_ready.py"))

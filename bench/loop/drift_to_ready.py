"""Time from drift detected to the retrained version Ready, on the local cluster.

Runs the closed-loop e2e scenario (real Triton, real sidecar, real trainer,
simulated pods) --runs times and reports the figure it measures: from the
first drifted request until the ModelDeployment is Ready serving the new
version (this includes the real training run, 2 epochs on 4,000 rows).

Run: .venv/bin/python bench/loop/drift_to_ready.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST = "e2e/test_drift_status.py::test_drift_retrains_and_rolls_out_the_new_version"
FIGURE = re.compile(r"drift detected -> new version Ready: ([0-9.]+)s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    seconds = []
    for _ in range(args.runs):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        found = FIGURE.search(proc.stdout)
        if proc.returncode != 0 or not found:
            print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
            return 1
        seconds.append(float(found.group(1)))
    print(f"command: .venv/bin/python bench/loop/drift_to_ready.py --runs {args.runs}")
    print(
        f"drift detected -> new version Ready: median {statistics.median(seconds):.1f}s "
        f"(runs: {', '.join(f'{s:.1f}' for s in seconds)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST = "e2e/test_gated_rollout.py::test_a_good_candidate_is_promoted_and_ready_never_drops"
FIGURE = re.compile(r"version published -> promoted: ([0-9.]+)s")


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
    print(f"command: .venv/bin/python bench/rollout/promote.py --runs {args.runs}")
    print(
        f"version published -> promoted: median {statistics.median(seconds):.1f}s "
        f"(runs: {', '.join(f'{s:.1f}' for s in seconds)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

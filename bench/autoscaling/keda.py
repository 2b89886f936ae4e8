"""KEDA scale to zero on the local cluster: idle -> zero, and trigger -> first replica Ready.

Runs the e2e scenario of e2e/test_keda_real.py (KEDA built from its Go module,
a real Prometheus scraping a real tritonserver, simulated pods) --runs times
and reports the two figures it measures:

- trigger -> first replica Ready: from the first request while the model is
  at zero until the ModelDeployment is Ready serving on one replica (Prometheus
  scrape and rate window, KEDA's 30 s polling, the pod starting, status);
- idle -> zero: from the last request until the Deployment is at zero and the
  status says ScaledToZero (the 1 m rate window draining, the test's 15 s
  cooldownSeconds, KEDA's polling).

Without a cached KEDA build it says so and exits 0: `make keda` builds it.

Run: .venv/bin/python bench/autoscaling/keda.py [--runs 1]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST = "e2e/test_keda_real.py::test_idle_model_goes_to_zero_and_a_request_brings_it_back"
FIGURES = {
    "trigger -> first replica Ready": re.compile(r"trigger -> first replica Ready: ([0-9.]+)s"),
    "idle -> zero": re.compile(r"idle -> zero: ([0-9.]+)s"),
}


def keda_cached() -> bool:
    script = REPO / "hack" / "keda" / "build.sh"
    return subprocess.run([str(script), "--cached"], capture_output=True).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if not keda_cached():
        print("skipped: KEDA is not built; `make keda` builds it from its Go module")
        return 0
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
    print(f"command: .venv/bin/python bench/autoscaling/keda.py --runs {args.runs}")
    for name, values in seconds.items():
        print(
            f"{name}: median {statistics.median(values):.1f}s "
            f"(runs: {', '.join(f'{s:.1f}' for s in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

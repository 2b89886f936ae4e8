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

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenario import REPO, main

TEST = "e2e/test_keda_real.py::test_idle_model_goes_to_zero_and_a_request_brings_it_back"
FIGURES = {
    "trigger -> first replica Ready": r"trigger -> first replica Ready: ([0-9.]+)s",
    "idle -> zero": r"idle -> zero: ([0-9.]+)s",
}


def keda_cached() -> bool:
    script = REPO / "hack" / "keda" / "build.sh"
    return subprocess.run([str(script), "--cached"], capture_output=True).returncode == 0


if __name__ == "__main__":
    if not keda_cached():
        print("skipped: KEDA is not built; `make keda` builds it from its Go module")
        sys.exit(0)
    sys.exit(main(TEST, FIGURES, "bench/autoscaling/keda.py", default_runs=1))

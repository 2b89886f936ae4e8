"""Capture ModelDeployments from a real API server as Argo CD health fixtures.

    KUBECONFIG=... python -m tests.ops.capture_argocd_fixtures

For each stage, creates a ModelDeployment in a scratch namespace, writes the
status derive_status computes for that stage through the status subresource
(so the CRD schema validates it and the API server fills in defaults), reads
the object back as Argo CD would receive it, and saves it with the verdict
the health script must give under tests/ops/fixtures/argocd/. The namespace
is deleted afterwards. Once the operator runs, objects it reconciled can be
saved the same way (any file with `object` and `expect` keys is picked up).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests.ops.test_argocd_health import STAGES

OUT = Path(__file__).resolve().parent / "fixtures" / "argocd"
CAPTURED = {
    "md-ready.yaml": "ready",
    "md-serving-while-rolling.yaml": "serving version 3 while rolling out 4",
    "md-unschedulable.yaml": "unschedulable beyond the grace period",
    "md-crashloop.yaml": "Triton in a crash loop",
}


def kubectl(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def capture(namespace: str, filename: str, stage: str) -> None:
    build, expected, text = STAGES[stage]
    wanted = build()
    body = copy.deepcopy(wanted)
    status = body.pop("status")
    meta = body["metadata"]
    body["metadata"] = {"name": meta["name"], "namespace": namespace}
    kubectl("create", "-f", "-", stdin=json.dumps(body))
    get = ("get", "modeldeployment", meta["name"], "-n", namespace, "-o", "json")
    live = json.loads(kubectl(*get))
    # The status was derived for generation 4; the new object is at the server's.
    generation = live["metadata"]["generation"]
    live_status = {**status, "observedGeneration": generation}
    for cond in live_status["conditions"]:
        cond["observedGeneration"] = generation
    kubectl(
        "patch",
        "modeldeployment",
        meta["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": live_status}),
    )
    obj = json.loads(kubectl(*get))
    obj["metadata"].pop("managedFields", None)
    doc = {
        "description": f"{stage}: captured from a real API server by {Path(__file__).name}",
        "expect": {"status": expected, "messageContains": text},
        "object": obj,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / filename).write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
    kubectl("delete", "modeldeployment", meta["name"], "-n", namespace, "--wait=false")


def main() -> int:
    namespace = f"argocd-fixtures-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        for filename, stage in CAPTURED.items():
            capture(namespace, filename, stage)
            print(f"wrote {OUT / filename}")
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")
    return 0


if __name__ == "__main__":
    sys.exit(main())

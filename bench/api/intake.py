"""Cost of the operator's intake (api/intake.py): what reading one object costs.

Every ModelDeployment is read once per spec generation (and all of them at
the operator's start), every TrainingJob on each of its reconciles. The
intake parses the v1alpha1 model as before and, where the object has
v1beta1-only fields (a v1beta1 body, or a v1alpha1 one carrying the
conversion's annotation), converts it to v1beta1 for the pod controls. A
v1alpha1 object without the annotation skips the conversion.

Process time per object, median of rounds, for:
- the v1alpha1 parse alone (what the planners did before the intake);
- the intake of a plain v1alpha1 object;
- the intake of a v1beta1 object with every pod control;
- the intake of the same object read as v1alpha1 (the annotation restored).

    python bench/api/intake.py [--objects 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modelops.api.conversion import to_v1alpha1, to_v1beta1
from modelops.api.intake import read_model_deployment, read_training_job
from modelops.api.modeldeployment import ModelDeployment
from modelops.api.trainingjob import TrainingJob

META = {"name": "fraud", "namespace": "ml", "uid": "u-1", "generation": 3}
MD: dict[str, Any] = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": META,
    "spec": {
        "model": {"storageUri": "s3://models/fraud", "format": "onnx", "version": "latest"},
        "runtime": {"instancesPerGpu": 1, "env": [{"name": "A", "value": "1"}]},
        "resources": {"gpu": {"count": 1}, "cpu": "2", "memory": "8Gi"},
        "replicas": 2,
        "rollout": {"strategy": "Shadow", "surgeTimeoutSeconds": 60},
    },
}
TJ: dict[str, Any] = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "TrainingJob",
    "metadata": META,
    "spec": {
        "nodes": 2,
        "resources": {"gpu": {"count": 1}, "cpu": "2", "memory": "8Gi"},
        "dataset": {"uri": "s3://data/fraud"},
        "output": {"storageUri": "s3://models/fraud"},
        "podMetadata": {"labels": {"team": "fraud"}},
    },
}
CONTROLS: dict[str, Any] = {
    "podMetadata": {"labels": {"team": "fraud"}, "annotations": {"example.com/a": "b"}},
    "imagePullSecrets": [{"name": "registry"}],
    "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "ca", "secret": {"secretName": "c"}}],
    "scheduling": {
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
    },
}


def with_controls() -> dict[str, Any]:
    beta = to_v1beta1(MD)
    beta["spec"].update(copy.deepcopy(CONTROLS))
    beta["spec"]["runtime"]["volumeMounts"] = [{"name": "cache", "mountPath": "/cache"}]
    beta["spec"]["runtime"]["env"].append(
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    )
    beta["spec"]["resources"]["cpuLimit"] = "4"
    return beta


def per_object_us(
    fn: Callable[[Any], Any], body: dict[str, Any], objects: int, rounds: int
) -> float:
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(objects):
            fn(body)
        samples.append((time.process_time() - start) / objects * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    beta = with_controls()
    cases: list[tuple[str, Callable[[Any], Any], dict[str, Any]]] = [
        ("ModelDeployment v1alpha1 parse alone (before)", ModelDeployment.from_body, MD),
        ("ModelDeployment intake, plain v1alpha1", read_model_deployment, MD),
        ("ModelDeployment intake, v1beta1 with pod controls", read_model_deployment, beta),
        ("ModelDeployment intake, v1alpha1 + annotation", read_model_deployment, to_v1alpha1(beta)),
        ("TrainingJob v1alpha1 parse alone (before)", TrainingJob.from_body, TJ),
        ("TrainingJob intake, plain v1alpha1", read_training_job, TJ),
    ]
    print(f"process time per object, median of {args.rounds} rounds of {args.objects}")
    for name, fn, body in cases:
        print(f"  {name:55s} {per_object_us(fn, body, args.objects, args.rounds):8.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

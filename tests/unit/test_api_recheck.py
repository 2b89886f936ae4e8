"""violations(): the CRD's safety rules re-checked in Python, for both kinds.

Each case is an object the API server would refuse with CEL but that can
still be stored (created before the rule existed, or with validation off).
The same table is checked against the CRD's own CEL rules in Python where
they are plain regexes, so the two cannot drift apart silently.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelops.api.modeldeployment import ModelDeployment
from modelops.api.recheck import describe, violations
from modelops.api.trainingjob import TrainingJob

MD: dict[str, Any] = {
    "metadata": {"name": "m", "namespace": "ns"},
    "spec": {
        "model": {"storageUri": "s3://models/fraud"},
        "runtime": {"args": ["--log-verbose=1"], "env": [{"name": "OMP_NUM_THREADS"}]},
        "driftMonitor": {"enabled": True, "reference": {"uri": "s3://models/fraud/ref.json"}},
    },
}
TJ: dict[str, Any] = {
    "metadata": {"name": "t", "namespace": "ns"},
    "spec": {
        "dataset": {"uri": "synthetic://tabular?rows=100&seed=1"},
        "output": {"storageUri": "s3://models/fraud"},
        "args": ["--target=libtorch"],
        "env": [{"name": "NCCL_DEBUG", "value": "INFO"}],
        "checkpoints": {"storageUri": "pvc://ckpt/fraud"},
    },
}


def md(**spec: Any) -> ModelDeployment:
    body = copy.deepcopy(MD)
    for path, value in spec.items():
        node = body["spec"]
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return ModelDeployment.from_body(body)


def tj(**spec: Any) -> TrainingJob:
    body = copy.deepcopy(TJ)
    for path, value in spec.items():
        node = body["spec"]
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return TrainingJob.from_body(body)


def test_valid_objects_have_no_violations():
    assert violations(md()) == []
    assert violations(tj()) == []


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (lambda: md(runtime__args=["--log-verbose=1", "--model-repository=/etc"]),
         "spec.runtime.args[1]"),
        (lambda: md(runtime__args=["--http-port", "9000"]), "spec.runtime.args[0]"),
        (lambda: md(runtime__args=["--model-control-mode=explicit"]), "spec.runtime.args[0]"),
        (lambda: md(runtime__env=[{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]),
         "spec.runtime.env[0].name"),
        (lambda: md(runtime__env=[{"name": "A"}, {"name": "MODELOPS_IMAGE"}]),
         "spec.runtime.env[1].name"),
        (lambda: md(model__storageUri="https://u:p@h/m"), "spec.model.storageUri"),
        (lambda: md(model__storageUri="https://h/m?X-Amz-Signature=1"), "spec.model.storageUri"),
        (lambda: md(driftMonitor__reference__uri="https://tok@h/r.json"),
         "spec.driftMonitor.reference.uri"),
        (lambda: tj(args=["--entrypoint=evil.module"]), "spec.args[0]"),
        (lambda: tj(args=["--x", "--output", "s3://elsewhere/m"]), "spec.args[1]"),
        (lambda: tj(args=["--hp=epochs=1"]), "spec.args[0]"),
        (lambda: tj(env=[{"name": "NVIDIA_VISIBLE_DEVICES", "value": "0"}]), "spec.env[0].name"),
        (lambda: tj(env=[{"name": "MASTER_ADDR", "value": "x"}]), "spec.env[0].name"),
        (lambda: tj(env=[{"name": "TORCHELASTIC_RUN_ID", "value": "x"}]), "spec.env[0].name"),
        (lambda: tj(env=[{"name": "MODELOPS_OUTPUT_DIR", "value": "/"}]), "spec.env[0].name"),
        (lambda: tj(dataset__uri="https://u:p@h/d.npz"), "spec.dataset.uri"),
        (lambda: tj(dataset__uri="https://h/d.npz?sig=1"), "spec.dataset.uri"),
        (lambda: tj(output__storageUri="s3://k:s@models/m"), "spec.output.storageUri"),
        (lambda: tj(output__storageUri="https://h/m"), "spec.output.storageUri"),
        # DRA without alternatives would render pods with no GPU at all.
        (lambda: md(resources={"gpu": {"allocation": "DRA"}}), "spec.resources.gpu.alternatives"),
        (lambda: tj(resources={"gpu": {"allocation": "DRA"}}), "spec.resources.gpu.alternatives"),
    ],
)  # fmt: skip
def test_each_rule_is_refused_naming_its_field(obj, field):
    found = violations(obj())
    assert [path for path, _ in found] == [field]
    message = describe(found)
    assert message.startswith(f"{field}: ")
    # The message names the field, never the credential.
    assert "u:p" not in message and "tok@" not in message and "k:s" not in message


def test_flags_that_only_start_like_a_reserved_one_are_allowed():
    assert violations(md(runtime__args=["--model-repository-poll-secs=5"])) == []
    assert violations(tj(args=["--hparams-file=x", "--output-format=y"])) == []

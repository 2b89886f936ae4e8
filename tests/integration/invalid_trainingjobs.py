"""TrainingJobs the API server must refuse, and where it must say the error is.

Same shape as invalid_modeldeployments.py (whose merge_patch this reuses):
each case is `(case_id, patch, expected)`, a JSON merge patch applied to
VALID by `manifest(patch)` that breaks exactly one rule, and a substring of
the API server's error, normally the field path it reports. Cases in
STRICT_ONLY are unknown fields, refused only under strict field validation
(kubectl's default; the Python client needs field_validation="Strict").
"""

from __future__ import annotations

from typing import Any

from tests.integration.invalid_modeldeployments import merge_patch

VALID: dict[str, Any] = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "invalid-case"},
    "spec": {
        "nodes": 2,
        "procsPerNode": 1,
        "resources": {"gpu": {"count": 1}},
        "dataset": {"uri": "s3://data/fraud/2026-11"},
        "output": {"storageUri": "s3://models/fraud"},
    },
}


def _spec(**fields: Any) -> dict[str, Any]:
    return {"spec": fields}


_H100 = {"name": "h100", "count": 2, "product": "NVIDIA H100 80GB HBM3"}


def _gpu(**fields: Any) -> dict[str, Any]:
    """resources.gpu with allocation DRA and one H100 alternative, then ``fields``."""
    gpu = {"allocation": "DRA", "alternatives": [_H100], **fields}
    return _spec(resources={"gpu": gpu})


def _env(name: str) -> dict[str, Any]:
    return _spec(env=[{"name": name, "value": "x"}])


CASES: list[tuple[str, dict[str, Any], str]] = [
    # --- metadata / top level
    ("name-starts-with-digit", {"metadata": {"name": "1fraud"}}, "metadata.name"),
    # 56 characters: attempt 100's rank-63 hostname would exceed 63.
    ("name-longer-than-55", {"metadata": {"name": "t" * 56}}, "metadata.name"),
    ("spec-missing", {"spec": None}, "spec: Required value"),
    # --- topology
    ("nodes-zero", _spec(nodes=0), "spec.nodes"),
    ("nodes-65", _spec(nodes=65), "spec.nodes"),
    ("procs-per-node-zero", _spec(procsPerNode=0), "spec.procsPerNode"),
    ("procs-per-node-17", _spec(procsPerNode=17), "spec.procsPerNode"),
    ("entrypoint-not-a-module", _spec(entrypoint="scripts/train.py"), "spec.entrypoint"),
    ("args-set-output", _spec(args=["--output=s3://elsewhere"]), "spec.args"),
    ("args-set-hp", _spec(args=["--hp", "lr=1"]), "spec.args"),
    # --- torchrun and operator environment
    ("env-master-addr", _env("MASTER_ADDR"), "spec.env"),
    ("env-rank", _env("RANK"), "spec.env"),
    ("env-world-size", _env("WORLD_SIZE"), "spec.env"),
    ("env-torchelastic-prefix", _env("TORCHELASTIC_X"), "spec.env"),
    ("env-modelops-prefix", _env("MODELOPS_ATTEMPT"), "spec.env"),
    ("env-pet-prefix", _env("PET_NNODES"), "spec.env"),
    # --- spec.command: a script run as it is
    (
        "command-with-entrypoint",
        _spec(command=["torchrun", "train.py"], entrypoint="mypkg.train"),
        "spec.command",
    ),
    ("command-with-args", _spec(command=["python", "train.py"], args=["--x"]), "spec.command"),
    (
        "command-with-hyperparameters",
        _spec(command=["python", "train.py"], hyperparameters={"lr": "0.1"}),
        "spec.command",
    ),
    ("command-empty", _spec(command=[]), "spec.command"),
    ("command-empty-word", _spec(command=["python", ""]), "spec.command[1]"),
    (
        "env-duplicate-name",
        _spec(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "spec.env",
    ),
    # --- resources
    ("gpu-count-17", _spec(resources={"gpu": {"count": 17}}), "spec.resources.gpu.count"),
    (
        "gpu-product-without-gpu",
        _spec(resources={"gpu": {"count": 0, "product": "NVIDIA-H100-80GB-HBM3"}}),
        "spec.resources.gpu.product",
    ),
    ("cpu-not-a-quantity", _spec(resources={"cpu": "two"}), "spec.resources.cpu"),
    ("memory-negative", _spec(resources={"memory": -1}), "spec.resources.memory"),
    # --- data and output
    ("dataset-missing", _spec(dataset=None), "spec.dataset"),
    ("dataset-uri-ftp", _spec(dataset={"uri": "ftp://data/fraud"}), "spec.dataset.uri"),
    ("dataset-uri-pvc-bad-claim", _spec(dataset={"uri": "pvc://Data_1/x"}), "spec.dataset.uri"),
    (
        "dataset-uri-userinfo",
        _spec(dataset={"uri": "https://user:hunter2@data.example.com/train.npz"}),
        "spec.dataset.uri",
    ),
    (
        "dataset-uri-presigned-query",
        _spec(dataset={"uri": "https://data.example.com/t.npz?X-Goog-Signature=ab12"}),
        "spec.dataset.uri",
    ),
    ("output-missing", _spec(output=None), "spec.output"),
    (
        "output-uri-userinfo",
        _spec(output={"storageUri": "s3://key:secret@models/fraud"}),
        "spec.output.storageUri",
    ),
    (
        "output-uri-no-scheme",
        _spec(output={"storageUri": "models/fraud"}),
        "spec.output.storageUri",
    ),
    (
        "output-uri-https",
        _spec(output={"storageUri": "https://models.example.com/fraud"}),
        "spec.output.storageUri",
    ),
    (
        "output-model-name-with-space",
        _spec(output={"modelName": "fraud model"}),
        "spec.output.modelName",
    ),
    (
        "checkpoints-not-a-pvc",
        _spec(checkpoints={"storageUri": "s3://ckpt/fraud"}),
        "spec.checkpoints.storageUri",
    ),
    (
        "credentials-secret-bad-name",
        _spec(credentialsSecretRef={"name": "S3_Creds"}),
        "spec.credentialsSecretRef.name",
    ),
    # --- hyperparameters
    (
        "hyperparameters-too-many",
        _spec(hyperparameters={f"hp{i}": "1" for i in range(65)}),
        "spec.hyperparameters",
    ),
    (
        "hyperparameter-name-with-equals",
        _spec(hyperparameters={"a=b": "1"}),
        "spec.hyperparameters",
    ),
    (
        "hyperparameter-value-number",
        _spec(hyperparameters={"epochs": 5}),
        "spec.hyperparameters.epochs",
    ),
    # --- run policy
    ("backoff-limit-negative", _spec(backoffLimit=-1), "spec.backoffLimit"),
    ("backoff-limit-101", _spec(backoffLimit=101), "spec.backoffLimit"),
    ("active-deadline-zero", _spec(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds"),
    ("ttl-negative", _spec(ttlSecondsAfterFinished=-1), "spec.ttlSecondsAfterFinished"),
    ("ttl-below-floor", _spec(ttlSecondsAfterFinished=0), "spec.ttlSecondsAfterFinished"),
    ("suspend-string", _spec(suspend="yes"), "spec.suspend"),
    ("queue-name-uppercase", _spec(queueName="GPU-Queue"), "spec.queueName"),
    ("queue-name-with-dot", _spec(queueName="gpu.queue"), "spec.queueName"),
    # --- scheduling and references
    (
        "node-selector-repeats-gpu-product",
        _spec(
            resources={"gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}},
            scheduling={"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"}},
        ),
        "spec.scheduling.nodeSelector",
    ),
    (
        "toleration-exists-with-value",
        _spec(scheduling={"tolerations": [{"key": "pool", "operator": "Exists", "value": "a"}]}),
        "spec.scheduling.tolerations[0].value",
    ),
    ("service-account-bad-name", _spec(serviceAccountName="Trainer_SA"), "spec.serviceAccountName"),
    (
        "model-deployment-ref-bad-name",
        _spec(modelDeploymentRef={"name": "fraud.v2"}),
        "spec.modelDeploymentRef.name",
    ),
    # --- GPUs through DRA: every node the same GPUs, decided per job
    (
        "gpu-dra-two-alternatives",
        _gpu(alternatives=[_H100, {"name": "l4", "count": 2, "product": "NVIDIA L4"}]),
        "spec.resources.gpu.alternatives",
    ),
    (
        "gpu-dra-alternative-without-product",
        _gpu(alternatives=[{"name": "any"}]),
        "spec.resources.gpu.alternatives",
    ),
    ("gpu-dra-without-alternatives", _gpu(alternatives=None), "spec.resources.gpu.alternatives"),
    (
        "gpu-dra-with-node-label-product",
        _gpu(product="NVIDIA-H100-80GB-HBM3"),
        "spec.resources.gpu.product",
    ),
    # --- unknown fields (strict field validation)
    ("unknown-field-in-spec", _spec(gpus=2), "spec.gpus"),
    ("unknown-field-typo-queue", _spec(queue="gpu-queue"), "spec.queue"),
]

STRICT_ONLY = frozenset({"unknown-field-in-spec", "unknown-field-typo-queue"})


def manifest(patch: dict[str, Any]) -> dict[str, Any]:
    """VALID with one case's patch applied."""
    return merge_patch(VALID, patch)

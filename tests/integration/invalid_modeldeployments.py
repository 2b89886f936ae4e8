"""ModelDeployments the API server must refuse, and where it must say the error is.

Each case is `(case_id, patch, expected)`: `patch` is a JSON merge patch
(RFC 7386: nested dicts merge, None deletes, lists replace) applied to VALID
by `manifest(case)`, and `expected` is a substring of the API server's error,
normally the field path it reports (e.g. `spec.autoscaling.minReplicas`).
Every case breaks exactly one rule, so a case that is accepted points at one
missing check.

Cases in STRICT_ONLY are unknown fields: the API server silently prunes them
unless the request asks for strict field validation (`kubectl apply` and
`kubectl create` do by default; the Python client needs
`field_validation="Strict"`).
"""

from __future__ import annotations

import copy
from typing import Any

VALID: dict[str, Any] = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "invalid-case"},
    "spec": {
        "model": {"storageUri": "s3://models/fraud", "format": "torchscript", "version": "latest"},
        "resources": {"gpu": {"count": 1}},
    },
}

_AUTOSCALING = {"minReplicas": 1, "maxReplicas": 4, "metric": {"type": "queue-time", "target": 500}}
_DRIFT = {"enabled": True, "reference": {"uri": "s3://models/fraud/reference.npz"}}
_TEMPLATE = {"entrypoint": "modelops.trainer.examples.tabular", "output": {"storageUri": "s3://m"}}


def _autoscaling(**fields: Any) -> dict[str, Any]:
    return {"spec": {"autoscaling": {**_AUTOSCALING, **fields}}}


def _drift(**fields: Any) -> dict[str, Any]:
    return {"spec": {"driftMonitor": {**_DRIFT, **fields}}}


def _spec(**fields: Any) -> dict[str, Any]:
    return {"spec": fields}


_CANARY = {"steps": [{"weight": 10, "duration": "10m"}, {"weight": 50, "requests": 1000}]}


def _rollout(**fields: Any) -> dict[str, Any]:
    return _spec(rollout=fields)


def _analysis(**fields: Any) -> dict[str, Any]:
    return _spec(rollout={"analysis": fields})


def _tol(**fields: Any) -> dict[str, Any]:
    return _spec(scheduling={"tolerations": [fields]})


def _gpu(**fields: Any) -> dict[str, Any]:
    return _spec(resources={"gpu": fields})


_H100 = {"name": "h100", "product": "NVIDIA H100 80GB HBM3"}
_L4S = {"name": "l4", "count": 2, "product": "NVIDIA L4", "minMemory": "20Gi"}


def _dra(**fields: Any) -> dict[str, Any]:
    return _gpu(**{"allocation": "DRA", "alternatives": [_H100, _L4S], **fields})


CASES: list[tuple[str, dict[str, Any], str]] = [
    # --- metadata / top level
    ("name-starts-with-digit", {"metadata": {"name": "1fraud"}}, "metadata.name"),
    ("name-with-dot", {"metadata": {"name": "fraud.v2"}}, "metadata.name"),
    ("name-longer-than-63", {"metadata": {"name": "m" * 64}}, "metadata.name"),
    ("spec-missing", {"spec": None}, "spec: Required value"),
    # --- spec.model
    ("storage-uri-missing", _spec(model={"storageUri": None}), "spec.model.storageUri"),
    ("storage-uri-ftp", _spec(model={"storageUri": "ftp://models/fraud"}), "spec.model.storageUri"),
    ("storage-uri-no-scheme", _spec(model={"storageUri": "models/fraud"}), "spec.model.storageUri"),
    (
        "storage-uri-space",
        _spec(model={"storageUri": "s3://models/my model"}),
        "spec.model.storageUri",
    ),
    (
        "storage-uri-pvc-bad-claim",
        _spec(model={"storageUri": "pvc://Claim_1/m"}),
        "spec.model.storageUri",
    ),
    # Credentials never live in a URI (they would be stored, shown and copied into messages).
    (
        "storage-uri-https-userinfo",
        _spec(model={"storageUri": "https://user:hunter2@models.example.com/fraud"}),
        "spec.model.storageUri",
    ),
    (
        "storage-uri-https-token-user",
        _spec(model={"storageUri": "https://ghp_token@models.example.com/fraud"}),
        "spec.model.storageUri",
    ),
    (
        "storage-uri-presigned-query",
        _spec(model={"storageUri": "https://b.s3.amazonaws.com/m?X-Amz-Signature=ab12"}),
        "spec.model.storageUri",
    ),
    (
        "drift-reference-uri-userinfo",
        _drift(reference={"uri": "https://u:p@h.example.com/ref.json"}),
        "spec.driftMonitor.reference.uri",
    ),
    ("format-unknown", _spec(model={"format": "pytorch"}), "spec.model.format"),
    ("version-word", _spec(model={"version": "abc"}), "spec.model.version"),
    ("version-zero", _spec(model={"version": "0"}), "spec.model.version"),
    ("version-unquoted-integer", _spec(model={"version": 3}), "spec.model.version"),
    ("model-name-with-space", _spec(model={"name": "fraud model"}), "spec.model.name"),
    (
        "credentials-secret-bad-name",
        _spec(model={"credentialsSecretRef": {"name": "S3_Creds"}}),
        "spec.model.credentialsSecretRef.name",
    ),
    # --- spec.runtime
    (
        "pull-policy-unknown",
        _spec(runtime={"imagePullPolicy": "Sometimes"}),
        "spec.runtime.imagePullPolicy",
    ),
    (
        "instances-per-gpu-zero",
        _spec(runtime={"instancesPerGpu": 0}),
        "spec.runtime.instancesPerGpu",
    ),
    (
        "instances-per-gpu-17",
        _spec(runtime={"instancesPerGpu": 17}),
        "spec.runtime.instancesPerGpu",
    ),
    ("max-batch-size-negative", _spec(runtime={"maxBatchSize": -1}), "spec.runtime.maxBatchSize"),
    (
        "dynamic-batching-without-batching",
        _spec(runtime={"maxBatchSize": 0, "dynamicBatching": {"maxQueueDelayMicroseconds": 100}}),
        "spec.runtime.dynamicBatching",
    ),
    (
        "env-reserved-prefix",
        _spec(runtime={"env": [{"name": "MODELOPS_MODEL", "value": "x"}]}),
        "spec.runtime.env",
    ),
    (
        "env-overrides-visible-devices",
        _spec(runtime={"env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]}),
        "spec.runtime.env",
    ),
    (
        "env-duplicate-name",
        _spec(runtime={"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
        "spec.runtime.env",
    ),
    ("args-set-http-port", _spec(runtime={"args": ["--http-port=9000"]}), "spec.runtime.args"),
    # --- spec.resources
    ("gpu-count-negative", _spec(resources={"gpu": {"count": -1}}), "spec.resources.gpu.count"),
    ("gpu-count-17", _spec(resources={"gpu": {"count": 17}}), "spec.resources.gpu.count"),
    (
        "gpu-product-without-gpu",
        _spec(resources={"gpu": {"count": 0, "product": "NVIDIA-H100-80GB-HBM3"}}),
        "spec.resources.gpu.product",
    ),
    # --- spec.resources.gpu, allocation DRA
    ("gpu-allocation-unknown", _gpu(allocation="Dynamic"), "spec.resources.gpu.allocation"),
    ("gpu-dra-without-alternatives", _gpu(allocation="DRA"), "spec.resources.gpu.alternatives"),
    (
        "gpu-dra-empty-alternatives",
        _gpu(allocation="DRA", alternatives=[]),
        "spec.resources.gpu.alternatives",
    ),
    (
        "gpu-alternatives-without-dra",
        _gpu(alternatives=[_H100]),
        "spec.resources.gpu.alternatives",
    ),
    (
        "gpu-device-class-without-dra",
        _gpu(deviceClassName="gpu.nvidia.com"),
        "spec.resources.gpu.deviceClassName",
    ),
    ("gpu-dra-count-zero", _dra(count=0), "spec.resources.gpu.count"),
    (
        "gpu-dra-with-node-label-product",
        _dra(product="NVIDIA-H100-80GB-HBM3"),
        "spec.resources.gpu.product",
    ),
    (
        "gpu-dra-duplicate-alternative",
        _dra(alternatives=[_H100, _H100]),
        "spec.resources.gpu.alternatives",
    ),
    (
        "gpu-dra-alternative-name-upper",
        _dra(alternatives=[{**_H100, "name": "H100"}]),
        "spec.resources.gpu.alternatives[0].name",
    ),
    (
        "gpu-dra-alternative-without-name",
        _dra(alternatives=[{"product": "NVIDIA L4"}]),
        "spec.resources.gpu.alternatives[0].name",
    ),
    (
        "gpu-dra-product-with-quote",
        _dra(alternatives=[{**_H100, "product": "NVIDIA' || true || '"}]),
        "spec.resources.gpu.alternatives[0].product",
    ),
    (
        "gpu-dra-alternative-count-zero",
        _dra(alternatives=[{**_H100, "count": 0}]),
        "spec.resources.gpu.alternatives[0].count",
    ),
    (
        "gpu-dra-min-memory-not-a-quantity",
        _dra(alternatives=[{**_H100, "minMemory": "40 GB"}]),
        "spec.resources.gpu.alternatives[0].minMemory",
    ),
    (
        "gpu-dra-nine-alternatives",
        _dra(alternatives=[{"name": f"a{i}"} for i in range(9)]),
        "spec.resources.gpu.alternatives",
    ),
    ("memory-not-a-quantity", _spec(resources={"memory": "16 GB"}), "spec.resources.memory"),
    ("cpu-negative", _spec(resources={"cpu": -2}), "spec.resources.cpu"),
    ("cpu-unquoted-fraction", _spec(resources={"cpu": 0.5}), "spec.resources.cpu"),
    # --- spec.replicas / spec.autoscaling
    ("replicas-negative", _spec(replicas=-1), "spec.replicas"),
    (
        "autoscaling-min-above-max",
        _autoscaling(minReplicas=5, maxReplicas=2),
        "spec.autoscaling.minReplicas",
    ),
    ("autoscaling-zero-with-hpa", _autoscaling(minReplicas=0), "spec.autoscaling.minReplicas"),
    (
        "autoscaling-zero-on-cpu",
        _autoscaling(minReplicas=0, engine="keda", metric={"type": "cpu", "target": 70}),
        "spec.autoscaling.minReplicas",
    ),
    (
        "autoscaling-cooldown-with-hpa",
        _autoscaling(cooldownSeconds=30),
        "spec.autoscaling.cooldownSeconds",
    ),
    (
        "autoscaling-cooldown-negative",
        _autoscaling(engine="keda", cooldownSeconds=-1),
        "spec.autoscaling.cooldownSeconds",
    ),
    ("autoscaling-max-missing", _autoscaling(maxReplicas=None), "spec.autoscaling.maxReplicas"),
    (
        "autoscaling-max-zero",
        _autoscaling(minReplicas=1, maxReplicas=0),
        "spec.autoscaling.maxReplicas",
    ),
    ("autoscaling-engine-unknown", _autoscaling(engine="knative"), "spec.autoscaling.engine"),
    (
        "autoscaling-metric-unknown",
        _autoscaling(metric={"type": "latency", "target": 100}),
        "spec.autoscaling.metric.type",
    ),
    (
        "autoscaling-cpu-target-over-100",
        _autoscaling(metric={"type": "cpu", "target": 150}),
        "spec.autoscaling.metric.target",
    ),
    (
        "autoscaling-target-zero",
        _autoscaling(metric={"type": "concurrency", "target": 0}),
        "spec.autoscaling.metric.target",
    ),
    # --- spec.rollout
    (
        "rollout-no-surge-no-unavailable",
        _spec(rollout={"maxSurge": 0, "maxUnavailable": 0}),
        "spec.rollout.maxUnavailable",
    ),
    ("rollout-surge-150-percent", _spec(rollout={"maxSurge": "150%"}), "spec.rollout.maxSurge"),
    ("rollout-surge-negative", _spec(rollout={"maxSurge": -1}), "spec.rollout.maxSurge"),
    (
        "rollout-surge-timeout-negative",
        _spec(rollout={"surgeTimeoutSeconds": -5}),
        "spec.rollout.surgeTimeoutSeconds",
    ),
    # --- spec.rollout: gated strategies (Shadow, Canary), analysis, controls
    ("rollout-strategy-unknown", _spec(rollout={"strategy": "BlueGreen"}), "spec.rollout.strategy"),
    ("rollout-shadow-without-settings", _rollout(strategy="Shadow"), "spec.rollout.shadow"),
    (
        "rollout-shadow-settings-with-canary-strategy",
        _rollout(strategy="Canary", shadow={"mirrorPercent": 10}, canary=_CANARY),
        "spec.rollout.shadow",
    ),
    ("rollout-canary-without-steps", _rollout(strategy="Canary"), "spec.rollout.canary"),
    ("rollout-canary-with-direct", _rollout(canary=_CANARY), "spec.rollout.canary"),
    (
        "rollout-canary-steps-empty",
        _rollout(strategy="Canary", canary={"steps": []}),
        "spec.rollout.canary.steps",
    ),
    (
        "rollout-mirror-percent-zero",
        _rollout(strategy="Shadow", shadow={"mirrorPercent": 0}),
        "spec.rollout.shadow.mirrorPercent",
    ),
    (
        "rollout-mirror-percent-101",
        _rollout(strategy="Shadow", shadow={"mirrorPercent": 101}),
        "spec.rollout.shadow.mirrorPercent",
    ),
    (
        "rollout-min-requests-zero",  # a candidate that answered nothing must not pass
        _rollout(strategy="Shadow", shadow={}, analysis={"minRequests": 0}),
        "spec.rollout.analysis.minRequests",
    ),
    (
        "rollout-progress-deadline-in-words",
        _rollout(strategy="Shadow", shadow={}, analysis={"progressDeadline": "half an hour"}),
        "spec.rollout.analysis.progressDeadline",
    ),
    (
        "rollout-on-progress-deadline-unknown",
        _rollout(strategy="Shadow", shadow={}, analysis={"onProgressDeadline": "Pray"}),
        "spec.rollout.analysis.onProgressDeadline",
    ),
    (
        "rollout-shadow-duration-in-words",
        _rollout(strategy="Shadow", shadow={"duration": "30 minutes"}),
        "spec.rollout.shadow.duration",
    ),
    (
        "rollout-shadow-requests-zero",
        _rollout(strategy="Shadow", shadow={"requests": 0}),
        "spec.rollout.shadow.requests",
    ),
    (
        "rollout-canary-weight-100",
        _rollout(strategy="Canary", canary={"steps": [{"weight": 100}]}),
        "spec.rollout.canary.steps[0].weight",
    ),
    (
        "rollout-canary-weight-zero",
        _rollout(strategy="Canary", canary={"steps": [{"weight": 0}]}),
        "spec.rollout.canary.steps[0].weight",
    ),
    (
        "rollout-canary-weight-missing",
        _rollout(strategy="Canary", canary={"steps": [{"duration": "10m"}]}),
        "spec.rollout.canary.steps[0].weight",
    ),
    (
        "rollout-canary-weights-decreasing",
        _rollout(strategy="Canary", canary={"steps": [{"weight": 50}, {"weight": 10}]}),
        "spec.rollout.canary.steps",
    ),
    (
        "rollout-canary-weights-repeated",
        _rollout(strategy="Canary", canary={"steps": [{"weight": 10}, {"weight": 10}]}),
        "spec.rollout.canary.steps",
    ),
    (
        "rollout-canary-step-duration-in-words",
        _rollout(strategy="Canary", canary={"steps": [{"weight": 10, "duration": "ten"}]}),
        "spec.rollout.canary.steps[0].duration",
    ),
    (
        "rollout-min-requests-negative",
        _analysis(minRequests=-1),
        "spec.rollout.analysis.minRequests",
    ),
    (
        "rollout-error-rate-increase-above-1",
        _analysis(maxErrorRateIncrease=1.5),
        "spec.rollout.analysis.maxErrorRateIncrease",
    ),
    (
        "rollout-latency-ratio-below-1",
        _analysis(maxLatencyP99Ratio=0.5),
        "spec.rollout.analysis.maxLatencyP99Ratio",
    ),
    (
        "rollout-min-agreement-above-1",
        _rollout(strategy="Shadow", shadow={}, analysis={"minAgreement": 1.2}),
        "spec.rollout.analysis.minAgreement",
    ),
    (
        "rollout-min-agreement-without-shadow",
        _rollout(strategy="Canary", canary=_CANARY, analysis={"minAgreement": 0.9}),
        "spec.rollout.analysis.minAgreement",
    ),
    (
        "rollout-agreement-mode-unknown",
        _analysis(agreement={"mode": "Cosine"}),
        "spec.rollout.analysis.agreement.mode",
    ),
    (
        "rollout-agreement-tolerance-with-argmax",
        _analysis(agreement={"mode": "Argmax", "tolerance": 0.01}),
        "spec.rollout.analysis.agreement.tolerance",
    ),
    (
        "rollout-agreement-tolerance-zero",
        _analysis(agreement={"mode": "RelativeTolerance", "tolerance": 0}),
        "spec.rollout.analysis.agreement.tolerance",
    ),
    (
        "rollout-eval-metric-without-name",
        _analysis(evalMetric={"direction": "HigherIsBetter"}),
        "spec.rollout.analysis.evalMetric.name",
    ),
    (
        "rollout-eval-metric-direction-unknown",
        _analysis(evalMetric={"name": "accuracy", "direction": "Up"}),
        "spec.rollout.analysis.evalMetric.direction",
    ),
    (
        "rollout-eval-metric-negative-regression",
        _analysis(
            evalMetric={"name": "accuracy", "direction": "HigherIsBetter", "maxRegression": -1}
        ),
        "spec.rollout.analysis.evalMetric.maxRegression",
    ),
    (
        "rollout-promote-latest",
        _rollout(control={"promote": "latest"}),
        "spec.rollout.control.promote",
    ),
    (
        "rollout-promote-and-abort-same-version",
        _rollout(control={"promote": "8", "abort": "8"}),
        "spec.rollout.control.abort",
    ),
    # --- spec.scheduling / serviceAccountName
    (
        "toleration-operator-unknown",
        _tol(key="pool", operator="In", value="a"),
        "spec.scheduling.tolerations[0].operator",
    ),
    (
        "toleration-exists-with-value",
        _tol(key="pool", operator="Exists", value="a"),
        "spec.scheduling.tolerations[0].value",
    ),
    (
        "toleration-seconds-without-noexecute",
        _tol(key="pool", operator="Exists", effect="NoSchedule", tolerationSeconds=30),
        "spec.scheduling.tolerations[0].tolerationSeconds",
    ),
    (
        "node-selector-repeats-gpu-product",
        _spec(
            resources={"gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}},
            scheduling={"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}},
        ),
        "spec.scheduling.nodeSelector",
    ),
    (
        "node-selector-bad-key",
        _spec(scheduling={"nodeSelector": {"bad key!": "x"}}),
        "spec.scheduling.nodeSelector",
    ),
    (
        "priority-class-bad-name",
        _spec(scheduling={"priorityClassName": "High Priority"}),
        "spec.scheduling.priorityClassName",
    ),
    ("service-account-bad-name", _spec(serviceAccountName="Triton_SA"), "spec.serviceAccountName"),
    # --- spec.driftMonitor
    ("drift-enabled-without-reference", _drift(reference=None), "spec.driftMonitor.reference"),
    (
        "drift-reference-bad-uri",
        _drift(reference={"uri": "ref.npz"}),
        "spec.driftMonitor.reference.uri",
    ),
    ("drift-method-unknown", _drift(method="kl"), "spec.driftMonitor.method"),
    ("drift-threshold-zero", _drift(threshold=0), "spec.driftMonitor.threshold"),
    ("drift-ks-threshold-above-1", _drift(method="ks", threshold=2), "spec.driftMonitor.threshold"),
    ("drift-window-too-small", _drift(window=10), "spec.driftMonitor.window"),
    (
        "drift-memory-limit-in-words",
        _drift(resources={"limits": {"memory": "lots"}}),
        "spec.driftMonitor.resources.limits.memory",
    ),
    (
        "drift-cpu-request-negative",
        _drift(resources={"requests": {"cpu": "-1"}}),
        "spec.driftMonitor.resources.requests.cpu",
    ),
    (
        "retrain-cooldown-in-words",
        _drift(retrain={"trainingJobTemplate": _TEMPLATE, "cooldown": "6 hours"}),
        "spec.driftMonitor.retrain.cooldown",
    ),
    (
        "retrain-without-template",
        _drift(retrain={"cooldown": "6h"}),
        "spec.driftMonitor.retrain.trainingJobTemplate",
    ),
    (
        "retrain-with-monitor-disabled",
        _spec(driftMonitor={"enabled": False, "retrain": {"trainingJobTemplate": _TEMPLATE}}),
        "spec.driftMonitor.retrain",
    ),
    (
        "rollout-in-place-with-direct",
        _rollout(strategy="Direct", placement="InPlace"),
        "spec.rollout.placement",
    ),
    (
        "rollout-placement-unknown",
        _rollout(strategy="Shadow", shadow={}, placement="Beside"),
        "spec.rollout.placement",
    ),
    (
        "rollout-in-place-settings-without-in-place",
        _rollout(strategy="Shadow", shadow={}, placement="Separate", inPlace={}),
        "spec.rollout.inPlace",
    ),
    (
        "rollout-in-place-on-no-fit-unknown",
        _rollout(strategy="Shadow", shadow={}, placement="InPlace", inPlace={"onNoFit": "Skip"}),
        "spec.rollout.inPlace.onNoFit",
    ),
    # --- unknown fields (strict field validation)
    (
        "unknown-field-storageURI-typo",
        _spec(model={"storageURI": "s3://x"}),
        "spec.model.storageURI",
    ),
    ("unknown-field-in-spec", _spec(gpus=2), "spec.gpus"),
]

# Patches every rule must let through: a rule that refuses one of these is wrong.
VALID_PATCHES: list[tuple[str, dict[str, Any]]] = [
    ("rollout-direct-explicit", _rollout(strategy="Direct")),
    ("rollout-shadow-defaults", _rollout(strategy="Shadow", shadow={})),
    (
        "rollout-shadow-then-canary",
        _rollout(
            strategy="Shadow",
            shadow={"mirrorPercent": 10, "duration": "30m", "requests": 500},
            canary=_CANARY,
            analysis={
                "minRequests": 200,
                "maxErrorRateIncrease": 0.01,
                "maxLatencyP99Ratio": 1.5,
                "minAgreement": 0.95,
                "agreement": {"mode": "RelativeTolerance", "tolerance": 0.02, "output": "OUT"},
                "evalMetric": {"name": "val_loss", "direction": "LowerIsBetter"},
            },
        ),
    ),
    (
        "rollout-canary-one-step",
        _rollout(strategy="Canary", canary={"steps": [{"weight": 99, "requests": 10}]}),
    ),
    (
        "rollout-in-place-shadow",
        _rollout(
            strategy="Shadow",
            shadow={"mirrorPercent": 100},
            placement="InPlace",
            inPlace={"onNoFit": "Wait", "memoryHeadroomPercent": 20, "shedMirrorsAt": 4},
        ),
    ),
    ("rollout-separate-canary", _rollout(strategy="Canary", canary=_CANARY, placement="Separate")),
    ("gpu-dra-h100-else-two-l4", _dra()),
    ("gpu-dra-any-gpu-one-alternative", _dra(alternatives=[{"name": "any"}])),
    ("gpu-dra-own-device-class", _dra(deviceClassName="h100.example.com")),
    ("gpu-device-plugin-explicit", _gpu(allocation="DevicePlugin", count=2)),
    (
        "rollout-controls",
        _rollout(strategy="Canary", canary=_CANARY, control={"paused": True, "promote": "8"}),
    ),
]

STRICT_ONLY = frozenset({"unknown-field-storageURI-typo", "unknown-field-in-spec"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def manifest(patch: dict[str, Any]) -> dict[str, Any]:
    """VALID with one case's patch applied."""
    return merge_patch(VALID, patch)

"""Realistic API objects (as the API server returns them) for the render/status tests.

Builders, not fixtures: each test states the situation it needs in one line,
e.g. `pod("fraud-7d9f-a", version="4", unschedulable=GPU_MESSAGE)`.
The shapes follow what kubectl get -o json shows for Deployments, Pods,
Events and HPAs on Kubernetes 1.30+.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from modelops.api.modeldeployment import ModelDeployment

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
GPU_MESSAGE = (
    "0/6 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, "
    "4 Insufficient nvidia.com/gpu. preemption: 0/6 nodes are available: "
    "2 Preemption is not helpful for scheduling, 4 No preemption victims found for incoming pod."
)


def ts(seconds_ago: float = 0) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def md_body(**spec: Any) -> dict[str, Any]:
    """A ModelDeployment as the API server stores it (defaults filled in)."""
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "fraud",
            "namespace": "ml",
            "uid": "5b1f3f0e-2c1a-4d0e-9a57-0c9d8f0f7a11",
            "generation": 4,
            "resourceVersion": "123456",
            "creationTimestamp": ts(3600),
        },
        "spec": {
            "model": {"storageUri": "s3://models/fraud", "format": "triton", "version": "latest"},
            "runtime": {"image": "nvcr.io/nvidia/tritonserver:25.01-py3", "instancesPerGpu": 1},
            "resources": {"gpu": {"count": 1}, "cpu": "2", "memory": "8Gi"},
            "replicas": 1,
            "rollout": {"maxSurge": 1, "maxUnavailable": 0, "surgeTimeoutSeconds": 60},
        },
    }
    for key, value in spec.items():
        body["spec"][key] = value
    return body


def md(**spec: Any) -> ModelDeployment:
    return ModelDeployment.from_body(md_body(**spec))


def deployment(
    *,
    desired: int | None = 1,
    replicas: int = 1,
    ready: int = 1,
    available: int | None = None,
    updated: int | None = None,
    version: str = "3",
    generation: int = 2,
    observed: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The live Triton Deployment with the status the Deployment controller writes."""
    status: dict[str, Any] = {
        "observedGeneration": generation if observed is None else observed,
        "replicas": replicas,
        "updatedReplicas": replicas if updated is None else updated,
        "readyReplicas": ready,
        "availableReplicas": ready if available is None else available,
        "conditions": conditions
        if conditions is not None
        else [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
                "lastUpdateTime": ts(600),
                "lastTransitionTime": ts(600),
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": 'ReplicaSet "fraud-7d9f8c6b5" has successfully progressed.',
                "lastUpdateTime": ts(600),
                "lastTransitionTime": ts(900),
            },
        ],
    }
    if ready == 0:
        status.pop("readyReplicas")  # the controller omits zero counts
        if available in (None, 0):
            status.pop("availableReplicas")
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"modelops.io/model-deployment": "fraud"}},
        "template": {
            "metadata": {
                "labels": {"modelops.io/model-deployment": "fraud"},
                "annotations": {"modelops.io/model-version": version},
            },
            "spec": {"containers": [{"name": "triton", "image": "tritonserver"}]},
        },
    }
    if desired is not None:
        spec["replicas"] = desired
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation},
        "spec": spec,
        "status": status,
    }


def progressing(status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "Progressing",
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": ts(30),
        "lastTransitionTime": ts(30),
    }


def replica_failure(message: str) -> dict[str, Any]:
    return {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": message,
        "lastUpdateTime": ts(30),
        "lastTransitionTime": ts(30),
    }


def _container_status(name: str, image: str, **state: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": state.pop("ready", False),
        "restartCount": state.pop("restartCount", 0),
        "started": state.pop("started", False),
        **state,
    }


def pod(
    name: str = "fraud-7d9f8c6b5-x2x4q",
    *,
    version: str = "3",
    template_hash: str = "7d9f8c6b5",
    ready: bool = True,
    unschedulable: str | None = None,
    unschedulable_for: float = 120,
    pulling: bool = False,
    init: dict[str, Any] | None = None,
    triton: dict[str, Any] | None = None,
    loading: bool = False,
    terminating: bool = False,
    phase: str | None = None,
) -> dict[str, Any]:
    """A Triton pod. Default: scheduled, model pulled, Triton ready."""
    conditions: list[dict[str, Any]] = []
    status: dict[str, Any] = {"phase": "Running", "conditions": conditions}
    spec: dict[str, Any] = {"containers": [{"name": "triton"}]}
    if unschedulable is not None:
        status["phase"] = "Pending"
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
                "lastProbeTime": None,
                "lastTransitionTime": ts(unschedulable_for),
            }
        )
    else:
        spec["nodeName"] = "gpu-node-1"
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(900)})
        done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts(890)}}
        init_state = init or (
            {"state": {"running": {"startedAt": ts(60)}}} if pulling else {"state": done}
        )
        triton_state = triton or (
            {"state": {"waiting": {"reason": "PodInitializing"}}}
            if pulling or init
            else {
                "state": {"running": {"startedAt": ts(800)}},
                "ready": ready and not loading,
                "started": True,
            }
        )
        if pulling or init:
            status["phase"] = "Pending"
        status["initContainerStatuses"] = [
            _container_status(
                "pull-model", "ghcr.io/modelops/operator:0.1.0", **copy.deepcopy(init_state)
            )
        ]
        status["containerStatuses"] = [
            _container_status(
                "triton", "nvcr.io/nvidia/tritonserver:25.01-py3", **copy.deepcopy(triton_state)
            )
        ]
        is_ready = ready and not loading and not pulling and not init and not triton
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if is_ready else "False",
                "lastTransitionTime": ts(700),
                **({} if is_ready else {"reason": "ContainersNotReady"}),
            }
        )
    if phase:
        status["phase"] = phase
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "ml",
        "labels": {"modelops.io/model-deployment": "fraud", "pod-template-hash": template_hash},
        "annotations": {"modelops.io/model-version": version},
        "creationTimestamp": ts(unschedulable_for if unschedulable else 900),
    }
    if terminating:
        metadata["deletionTimestamp"] = ts(5)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def crash(
    reason: str = "Error", code: int = 1, message: str = "", restarts: int = 5
) -> dict[str, Any]:
    """A container in CrashLoopBackOff whose last run ended as given."""
    terminated: dict[str, Any] = {"exitCode": code, "reason": reason, "startedAt": ts(100)}
    if message:
        terminated["message"] = message
    return {
        "state": {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off 2m40s restarting failed container",
            }
        },
        "lastState": {"terminated": terminated},
        "restartCount": restarts,
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"state": {"waiting": {"reason": reason, "message": message}}}


def event(
    reason: str,
    message: str,
    *,
    kind: str = "Pod",
    name: str = "fraud-7d9f8c6b5-x2x4q",
    seconds_ago: float = 10,
    type_: str = "Warning",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{name}.17a",
            "namespace": "ml",
            "creationTimestamp": ts(seconds_ago),
        },
        "involvedObject": {"kind": kind, "name": name, "namespace": "ml"},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 3,
        "firstTimestamp": ts(seconds_ago + 60),
        "lastTimestamp": ts(seconds_ago),
    }


def hpa(*conditions: tuple[str, str, str, str]) -> dict[str, Any]:
    """An HPA with (type, status, reason, message) conditions."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "fraud", "namespace": "ml"},
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 2,
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m, "lastTransitionTime": ts(300)}
                for t, s, r, m in conditions
            ],
        },
    }


HPA_OK = (
    ("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
    (
        "ScalingActive",
        "True",
        "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from pods metric "
        "triton_queue_time_per_request_us",
    ),
    (
        "ScalingLimited",
        "False",
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    ),
)

AUTOSCALING = {
    "minReplicas": 2,
    "maxReplicas": 8,
    "engine": "hpa",
    "metric": {"type": "queue-time", "target": 2000},
}


def test_fixtures_parse_and_look_like_api_objects():
    assert md().name == "fraud"
    assert pod()["status"]["conditions"][-1]["status"] == "True"
    assert pod(unschedulable=GPU_MESSAGE)["status"]["phase"] == "Pending"
    assert deployment(desired=2, replicas=2, ready=2)["status"]["availableReplicas"] == 2

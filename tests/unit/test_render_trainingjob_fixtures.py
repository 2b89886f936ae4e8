"""Realistic TrainingJob, Job and Pod objects for the TrainingJob render/status tests.

Builders, not fixtures. The Job and Pod shapes are those a Kubernetes 1.36
control plane wrote for rendered TrainingJob Jobs (captured from the local
cluster): FailureTarget before Failed with reason PodFailurePolicy,
SuccessCriteriaMet before Complete, the job-name and completion-index labels
and annotation on every pod.
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.test_render_fixtures import NOW, ts

__all__ = ["NOW", "job", "pod", "tj_body", "ts"]

UID = "0b7a4f52-6c0e-4a7e-9d6b-2f3f1e2c9a10"
IMAGE = "ghcr.io/modelops/modelops-train:0.1.0"


def tj_body(**spec: Any) -> dict[str, Any]:
    """A TrainingJob as the API server stores it (defaults filled in)."""
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": "fraud-retrain",
            "namespace": "ml",
            "uid": UID,
            "generation": 2,
            "creationTimestamp": ts(3600),
        },
        "spec": {
            "image": IMAGE,
            "entrypoint": "modelops.trainer.examples.tabular",
            "nodes": 2,
            "procsPerNode": 1,
            "resources": {"gpu": {"count": 1}, "cpu": "2", "memory": "8Gi"},
            "dataset": {"uri": "s3://data/fraud/2026-11"},
            "output": {"storageUri": "s3://models/fraud"},
            "backoffLimit": 3,
            "suspend": False,
        },
    }
    body["spec"].update(spec)
    return body


def _cond(ctype: str, reason: str, message: str, seconds_ago: float) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": ts(seconds_ago),
        "lastTransitionTime": ts(seconds_ago),
    }


def job(
    attempt: int = 0,
    *,
    name: str = "fraud-retrain",
    state: str = "active",
    reason: str = "PodFailurePolicy",
    suspend: bool = False,
) -> dict[str, Any]:
    """An attempt's Job. state: active | succeeded | failing | failed | suspended."""
    job_name = f"{name}-a{attempt}"
    status: dict[str, Any] = {"startTime": ts(600)}
    message = (
        f"Container trainer for pod ml/{job_name}-1-zgq67 failed with exit code 1 "
        "matching FailJob rule at index 0"
    )
    if reason == "DeadlineExceeded":
        message = "Job was active longer than specified deadline"
    if state == "succeeded":
        done = "Reached expected number of succeeded pods"
        status["conditions"] = [
            _cond("SuccessCriteriaMet", "CompletionsReached", done, 10),
            _cond("Complete", "CompletionsReached", done, 10),
        ]
        status["completionTime"] = ts(10)
        status["succeeded"] = 2
    elif state in ("failing", "failed"):
        status["conditions"] = [_cond("FailureTarget", reason, message, 20)]
        if state == "failed":
            status["conditions"].append(_cond("Failed", reason, message, 15))
        status["failed"] = 1
    elif state == "suspended":
        status = {"conditions": [_cond("Suspended", "JobSuspended", "Job suspended", 30)]}
        suspend = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": "ml",
            "annotations": {"modelops.io/attempt": str(attempt)},
            "labels": {"modelops.io/training-job": name},
        },
        "spec": {"completionMode": "Indexed", "completions": 2, "suspend": suspend},
        "status": status,
    }


def pod(
    rank: int,
    *,
    attempt: int = 0,
    name: str = "fraud-retrain",
    phase: str = "Running",
    exit_code: int | None = None,
    reason: str = "Error",
    message: str | None = None,
    finished_ago: float = 30,
    unschedulable: str | None = None,
    waiting: tuple[str, str] | None = None,
    terminating: bool = False,
    disruption: str | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Node `rank`'s pod of an attempt. Default: scheduled and running.

    exit_code: the trainer terminated with it (phase Failed unless 0); result:
    the JSON document `modelops train` left as termination message.
    """
    job_name = f"{name}-a{attempt}"
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    spec: dict[str, Any] = {
        "hostname": f"{job_name}-{rank}",
        "subdomain": f"{name}-workers",
        "containers": [{"name": "trainer", "image": IMAGE}],
    }
    trainer: dict[str, Any] = {
        "name": "trainer",
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "lastState": {},
    }
    if unschedulable is not None:
        status["phase"] = "Pending"
        status["conditions"].append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
                "lastTransitionTime": ts(60),
            }
        )
    else:
        spec["nodeName"] = f"gpu-h100-{rank}"
        status["conditions"].append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(500)}
        )
        if waiting is not None:
            status["phase"] = "Pending"
            trainer["state"] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        elif exit_code is not None:
            terminated: dict[str, Any] = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else reason,
                "startedAt": ts(500),
                "finishedAt": ts(finished_ago),
            }
            text = json.dumps(result) if result is not None else message
            if text:
                terminated["message"] = text
            trainer["state"] = {"terminated": terminated}
            status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        else:
            trainer.update(ready=True, started=True, state={"running": {"startedAt": ts(500)}})
        status["containerStatuses"] = [trainer]
    if disruption is not None:
        status["conditions"].append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": disruption,
                "message": "Preempted in order to admit critical pod",
                "lastTransitionTime": ts(finished_ago),
            }
        )
    index = str(rank)
    metadata: dict[str, Any] = {
        "name": f"{job_name}-{rank}-x{rank}q",
        "namespace": "ml",
        "labels": {
            "batch.kubernetes.io/job-name": job_name,
            "job-name": job_name,
            "batch.kubernetes.io/job-completion-index": index,
            "modelops.io/training-job": name,
        },
        "annotations": {
            "batch.kubernetes.io/job-completion-index": index,
            "modelops.io/attempt": str(attempt),
        },
    }
    if terminating:
        metadata["deletionTimestamp"] = ts(2)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}

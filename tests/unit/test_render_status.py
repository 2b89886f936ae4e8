"""derive_status: every condition branch, from realistic cluster objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest

from modelops.api.conditions import CONDITIONS, PASSTHROUGH
from modelops.api.conversion import to_v1beta1
from modelops.api.crd import MODEL_DEPLOYMENT, root_schema
from modelops.api.modeldeployment import ModelDeploymentStatus
from modelops.render.status import derive_status
from tests.unit.test_render_fixtures import (
    AUTOSCALING,
    GPU_MESSAGE,
    HPA_OK,
    NOW,
    crash,
    deployment,
    event,
    hpa,
    md_body,
    pod,
    progressing,
    replica_failure,
    waiting,
)

STATUS_SCHEMA = root_schema(MODEL_DEPLOYMENT)["properties"]["status"]


def derive(
    body: dict[str, Any] | None = None,
    *,
    dep: dict[str, Any] | None = None,
    pods: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    autoscaler: dict[str, Any] | None = None,
    keda_missing: bool = False,
    drift: dict[str, Any] | None = None,
    previous: list[dict[str, Any]] | None = None,
    rollout: dict[str, Any] | None = None,
    now=NOW,
) -> dict[str, Any]:
    status = derive_status(
        body or md_body(),
        deployment=dep,
        pods=pods or [],
        events=events or [],
        autoscaler=autoscaler,
        keda_missing=keda_missing,
        drift=drift,
        now=now,
        previous_conditions=previous,
        rollout=rollout,
    )
    # Whatever the branch, the status must be storable: the API server validates
    # status updates against the CRD schema too.
    jsonschema.Draft4Validator(STATUS_SCHEMA).validate(status)
    ModelDeploymentStatus.model_validate(status)
    # ... and every reason is one docs/api.md explains.
    for c in status["conditions"]:
        if c["type"] not in PASSTHROUGH:
            assert c["reason"] in CONDITIONS[c["type"]][1], (c["type"], c["reason"])
    return status


def cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    found = [c for c in status["conditions"] if c["type"] == ctype]
    assert found, f"no {ctype} condition in {status['conditions']}"
    return found[0]


def summary(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: f"{c['status']}/{c['reason']}" for c in status["conditions"]}


# --- steady state ------------------------------------------------------------------


def test_steady_state_is_ready_and_complete():
    s = derive(dep=deployment(), pods=[pod()])
    assert summary(s) == {
        "Ready": "True/Serving",
        "Reconciling": "False/Reconciled",
        "Stalled": "False/AsExpected",
        "Scheduled": "True/Scheduled",
        "ModelLoaded": "True/Loaded",
    }
    assert cond(s, "Ready")["message"] == "serving model fraud version 3 on 1/1 replicas"
    assert s["observedGeneration"] == 4
    assert all(c["observedGeneration"] == 4 for c in s["conditions"])
    assert s["replicas"] == 1 and s["readyReplicas"] == 1 and s["updatedReplicas"] == 1
    assert s["servedVersion"] == "3" and s["desiredVersion"] == "3"
    assert s["gpus"] == 1
    assert s["selector"] == "modelops.io/model-deployment=fraud"
    assert s["endpoints"] == {
        "http": "http://fraud.ml.svc:8000",
        "grpc": "fraud.ml.svc:8001",
        "metrics": "http://fraud.ml.svc:8002/metrics",
    }
    assert "kopf" not in s


def test_steady_state_rederives_identically_so_nothing_is_written():
    first = derive(dep=deployment(), pods=[pod()])
    later = derive(
        dep=deployment(), pods=[pod()], previous=first["conditions"], now=NOW + timedelta(hours=1)
    )
    assert later == first


def test_transition_time_moves_only_when_status_changes():
    loading = derive(dep=deployment(ready=0), pods=[pod(loading=True)])
    ready = derive(
        dep=deployment(),
        pods=[pod()],
        previous=loading["conditions"],
        now=NOW + timedelta(minutes=5),
    )
    assert cond(loading, "Ready")["lastTransitionTime"] == "2026-11-25T12:00:00Z"
    assert cond(ready, "Ready")["lastTransitionTime"] == "2026-11-25T12:05:00Z"
    # Stalled was False before and after: its time stays although we re-derived later.
    assert cond(ready, "Stalled")["lastTransitionTime"] == "2026-11-25T12:00:00Z"


def test_message_change_keeps_transition_time():
    one = derive(dep=deployment(), pods=[pod()])
    body = md_body(replicas=2)
    two = derive(
        body,
        dep=deployment(desired=2, replicas=2, ready=2),
        pods=[pod(), pod("fraud-7d9f8c6b5-b8k2m")],
        previous=one["conditions"],
        now=NOW + timedelta(minutes=1),
    )
    assert cond(two, "Ready")["message"].endswith("on 2/2 replicas")
    assert cond(two, "Ready")["lastTransitionTime"] == cond(one, "Ready")["lastTransitionTime"]


def test_foreign_previous_conditions_are_dropped():
    previous = [
        {
            "type": "Custom",
            "status": "True",
            "reason": "X",
            "message": "",
            "lastTransitionTime": "x",
        }
    ]
    s = derive(dep=deployment(), pods=[pod()], previous=previous)
    assert "Custom" not in summary(s)


# --- rollouts ---------------------------------------------------------------------


def old_and_new(new: dict[str, Any]) -> list[dict[str, Any]]:
    return [pod("fraud-7d9f8c6b5-x2x4q", version="3"), new]


def test_rollout_keeps_serving_old_version_ready():
    """KServe #5443: the old version still serves while the new one loads."""
    new = pod("fraud-5c4b7d9e8-q7w2z", version="4", template_hash="5c4b7d9e8", loading=True)
    s = derive(dep=deployment(replicas=2, updated=1, ready=1, version="4"), pods=old_and_new(new))
    ready = cond(s, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Serving")
    assert ready["message"].startswith("serving version 3 while rolling out 4")
    assert cond(s, "Reconciling")["status"] == "True"
    assert cond(s, "Reconciling")["reason"] == "RollingOut"
    assert "1/1 replicas updated; loading the model" in cond(s, "Reconciling")["message"]
    assert cond(s, "Stalled")["status"] == "False"
    assert s["servedVersion"] == "3" and s["desiredVersion"] == "4"


def test_both_versions_ready_are_listed():
    new = pod("fraud-5c4b7d9e8-q7w2z", version="4", template_hash="5c4b7d9e8")
    s = derive(dep=deployment(replicas=2, updated=1, ready=2, version="4"), pods=old_and_new(new))
    assert s["servedVersion"] == "3,4"
    assert cond(s, "Ready")["status"] == "True"


def test_deployment_not_yet_observed_counts_as_rolling_out():
    s = derive(dep=deployment(generation=3, observed=2), pods=[pod()])
    assert cond(s, "Ready")["status"] == "True"
    assert cond(s, "Reconciling")["reason"] == "RollingOut"


def test_surge_pod_waiting_for_gpu_within_grace_is_progress_not_stall():
    new = pod(
        "fraud-5c4b7d9e8-q7w2z",
        version="4",
        template_hash="5c4b7d9e8",
        unschedulable=GPU_MESSAGE,
        unschedulable_for=30,
    )
    s = derive(dep=deployment(replicas=2, updated=1, ready=1, version="4"), pods=old_and_new(new))
    assert summary(s)["Stalled"] == "False/AsExpected"
    assert summary(s)["Ready"] == "True/Serving"
    assert "waiting for a node: 0/6 nodes are available" in cond(s, "Reconciling")["message"]
    assert summary(s)["Scheduled"] == "False/Unschedulable"
    assert cond(s, "Scheduled")["message"] == GPU_MESSAGE


def test_replace_in_place_reports_the_decision_instead_of_stalling():
    new = pod(
        "fraud-5c4b7d9e8-q7w2z",
        version="4",
        template_hash="5c4b7d9e8",
        unschedulable=GPU_MESSAGE,
        unschedulable_for=300,
    )
    decision = {"replaceInPlace": True, "reason": "surge pod fraud-5c4b7d9e8-q7w2z stayed ..."}
    s = derive(
        dep=deployment(replicas=2, updated=1, ready=1, version="4"),
        pods=old_and_new(new),
        rollout=decision,
    )
    assert summary(s)["Stalled"] == "False/AsExpected"
    assert summary(s)["Reconciling"] == "True/ReplacingInPlace"
    assert cond(s, "Reconciling")["message"] == decision["reason"]
    assert s["rollout"] == decision


def test_single_replica_replaced_in_place_is_not_ready_while_down():
    # The old pod is gone (maxUnavailable 1), the new one loads: nothing serves.
    new = pod("fraud-5c4b7d9e8-q7w2z", version="4", template_hash="5c4b7d9e8", loading=True)
    s = derive(
        dep=deployment(replicas=1, updated=1, ready=0, version="4"),
        pods=[new],
        rollout={"replaceInPlace": True, "reason": "r"},
    )
    assert summary(s)["Ready"] == "False/ModelLoading"


def test_rollout_status_without_reason():
    s = derive(dep=deployment(), pods=[pod()], rollout={"replaceInPlace": False})
    assert s["rollout"] == {"replaceInPlace": False}


# --- stalls --------------------------------------------------------------------------


def test_unschedulable_beyond_grace_is_stalled_with_the_scheduler_message():
    s = derive(
        dep=deployment(ready=0, available=0),
        pods=[pod(unschedulable=GPU_MESSAGE, unschedulable_for=120)],
    )
    assert summary(s)["Stalled"] == "True/Unschedulable"
    assert cond(s, "Stalled")["message"] == GPU_MESSAGE
    assert summary(s)["Ready"] == "False/Unschedulable"
    assert summary(s)["Reconciling"] == "False/Stalled"
    assert summary(s)["ModelLoaded"] == "Unknown/PodsNotRunning"


def test_unschedulable_within_grace_is_not_ready_yet_but_not_stalled():
    s = derive(
        dep=deployment(ready=0, available=0),
        pods=[pod(unschedulable=GPU_MESSAGE, unschedulable_for=10)],
    )
    assert summary(s)["Ready"] == "False/WaitingForNode"
    assert summary(s)["Stalled"] == "False/AsExpected"
    assert summary(s)["Reconciling"] == "True/ScalingUp"


@pytest.mark.parametrize(
    ("surge", "scheduling", "stalled"), [("10m", "1m", "True"), ("30s", "10m", "False")]
)
def test_v1beta1_scheduling_timeout_is_the_grace_before_unschedulable(surge, scheduling, stalled):
    """v1beta1 split surgeTimeoutSeconds: the Stalled grace is schedulingTimeout's,
    whatever surgeTimeout (the switch to in-place replacement) says."""
    body = to_v1beta1(md_body())
    body["spec"]["rollout"].update(surgeTimeout=surge, schedulingTimeout=scheduling)
    s = derive(
        body,
        dep=deployment(ready=0, available=0),
        pods=[pod(unschedulable=GPU_MESSAGE, unschedulable_for=120)],
    )
    assert summary(s)["Stalled"].startswith(stalled + "/")


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_image_pull_failure_is_one_stable_stall(reason):
    triton = waiting(reason, 'Back-off pulling image "nvcr.io/nvidia/tritonserver:99.99-py3"')
    events = [
        event(
            "Failed",
            'Failed to pull image "nvcr.io/nvidia/tritonserver:99.99-py3": '
            "rpc error: code = NotFound desc = manifest unknown",
        ),
        event("BackOff", 'Back-off pulling image "nvcr.io/nvidia/tritonserver:99.99-py3"'),
    ]
    s = derive(dep=deployment(ready=0, available=0), pods=[pod(triton=triton)], events=events)
    stalled = cond(s, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ImagePullBackOff")
    assert "container triton cannot pull image" in stalled["message"]
    assert "manifest unknown" in stalled["message"]
    assert summary(s)["Ready"] == "False/ImagePullBackOff"


def test_triton_crash_loop_names_container_and_last_termination():
    triton = crash("OOMKilled", 137)
    s = derive(dep=deployment(ready=0, available=0), pods=[pod(triton=triton)])
    assert summary(s)["Stalled"] == "True/CrashLoopBackOff"
    assert cond(s, "Stalled")["message"] == (
        "pod fraud-7d9f8c6b5-x2x4q: container triton keeps crashing: last exit OOMKilled (code 137)"
    )
    assert summary(s)["ModelLoaded"] == "False/LoadFailed"


def test_crash_between_backoffs_still_counts_as_crash_loop():
    # Right after a restart the kubelet reports "running"; the restart history decides.
    triton = {
        "state": {"running": {"startedAt": "2026-11-25T11:59:55Z"}},
        "lastState": {
            "terminated": {"exitCode": 1, "reason": "Error", "message": "failed to load"}
        },
        "restartCount": 4,
    }
    s = derive(dep=deployment(ready=0, available=0), pods=[pod(triton=triton)])
    assert summary(s)["Stalled"] == "True/CrashLoopBackOff"
    assert "failed to load" in cond(s, "Stalled")["message"]


def test_failed_model_pull_shows_the_pull_error_from_the_logs():
    init = crash(message="botocore.exceptions.ClientError: NoSuchBucket: models does not exist")
    s = derive(dep=deployment(ready=0, available=0), pods=[pod(init=init)])
    assert summary(s)["Stalled"] == "True/ModelPullFailed"
    assert "container pull-model keeps crashing" in cond(s, "Stalled")["message"]
    assert "NoSuchBucket" in cond(s, "Stalled")["message"]
    assert summary(s)["ModelLoaded"] == "False/PullFailed"
    assert summary(s)["Ready"] == "False/ModelPullFailed"


def test_missing_credentials_secret_is_a_stall_not_a_crash():
    init = waiting("CreateContainerConfigError", 'secret "s3-creds" not found')
    s = derive(dep=deployment(ready=0, available=0), pods=[pod(init=init)])
    assert summary(s)["Stalled"] == "True/CreateContainerConfigError"
    assert 'secret "s3-creds" not found' in cond(s, "Stalled")["message"]


def test_progress_deadline_exceeded_without_a_more_specific_cause():
    dep = deployment(
        ready=0,
        available=0,
        conditions=[
            progressing(
                "False",
                "ProgressDeadlineExceeded",
                'ReplicaSet "fraud-7d9f8c6b5" has timed out progressing.',
            )
        ],
    )
    s = derive(dep=dep, pods=[pod(loading=True)])
    assert summary(s)["Stalled"] == "True/ProgressDeadlineExceeded"
    assert "timed out progressing" in cond(s, "Stalled")["message"]


def test_replica_failure_quota_is_a_stall():
    quota = (
        'pods "fraud-7d9f8c6b5-x2x4q" is forbidden: exceeded quota: gpu-quota, requested: '
        "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=8, "
        "limited: requests.nvidia.com/gpu=8"
    )
    dep = deployment(replicas=0, ready=0, available=0, conditions=[replica_failure(quota)])
    s = derive(dep=dep, pods=[])
    assert summary(s)["Stalled"] == "True/FailedCreate"
    assert "exceeded quota" in cond(s, "Stalled")["message"]
    assert summary(s)["Scheduled"] == "Unknown/NoPods"


def test_recent_failed_create_event_is_a_stall_and_old_one_is_not():
    msg = 'pods "fraud-7d9f8c6b5-" is forbidden: violates PodSecurity "restricted:latest"'
    dep = deployment(replicas=0, ready=0, available=0)
    recent = [event("FailedCreate", msg, kind="ReplicaSet", name="fraud-7d9f8c6b5", seconds_ago=20)]
    old = [event("FailedCreate", msg, kind="ReplicaSet", name="fraud-7d9f8c6b5", seconds_ago=3600)]
    assert summary(derive(dep=dep, events=recent))["Stalled"] == "True/FailedCreate"
    assert summary(derive(dep=dep, events=old))["Stalled"] == "False/AsExpected"


def test_terminating_and_evicted_pods_are_ignored():
    dying = pod("fraud-6a5b4c3d2-old01", triton=crash(), terminating=True)
    evicted = pod("fraud-6a5b4c3d2-old02", phase="Failed", ready=False)
    s = derive(dep=deployment(), pods=[pod(), dying, evicted])
    assert summary(s)["Stalled"] == "False/AsExpected"
    assert cond(s, "Scheduled")["message"] == "all 1 pods are on nodes"


# --- other states ---------------------------------------------------------------------


def test_missing_deployment():
    s = derive(dep=None)
    assert summary(s)["Ready"] == "False/DeploymentMissing"
    assert summary(s)["Reconciling"] == "True/Creating"
    assert s["replicas"] == 0 and s["gpus"] == 0
    assert "desiredVersion" not in s and "servedVersion" not in s


def test_scaled_to_zero():
    s = derive(md_body(replicas=0), dep=deployment(desired=0, replicas=0, ready=0), pods=[])
    assert summary(s)["Ready"] == "True/ScaledToZero"
    assert summary(s)["Scheduled"] == "Unknown/NoPods"
    assert summary(s)["ModelLoaded"] == "Unknown/NoPods"


def test_first_load():
    s = derive(dep=deployment(ready=0, available=0), pods=[pod(loading=True)])
    assert summary(s)["Ready"] == "False/ModelLoading"
    assert summary(s)["ModelLoaded"] == "False/Loading"
    assert summary(s)["Reconciling"] == "True/ScalingUp"
    assert cond(s, "Reconciling")["message"] == "0/1 replicas available; loading the model"


def test_model_download_in_progress():
    s = derive(dep=deployment(ready=0, available=0), pods=[pod(pulling=True)])
    assert summary(s)["Ready"] == "False/PullingModel"
    assert summary(s)["ModelLoaded"] == "False/Pulling"
    assert cond(s, "Reconciling")["message"].endswith("downloading the model")


def test_lost_replica_below_promised_capacity_is_not_ready():
    body = md_body(replicas=3)
    pods = [pod(), pod("fraud-7d9f8c6b5-b8k2m"), pod("fraud-7d9f8c6b5-c9d3n", loading=True)]
    s = derive(body, dep=deployment(desired=3, replicas=3, ready=2), pods=pods)
    assert summary(s)["Ready"] == "False/InsufficientReplicas"
    assert cond(s, "Ready")["message"] == "2/3 replicas available, 3 needed"
    assert summary(s)["ModelLoaded"] == "True/Loaded"


def test_autoscaler_scale_up_keeps_serving_ready():
    body = md_body(autoscaling=AUTOSCALING)
    pods = [pod(), pod("fraud-7d9f8c6b5-b8k2m"), pod("fraud-7d9f8c6b5-c9d3n", loading=True)]
    s = derive(
        body,
        dep=deployment(desired=4, replicas=3, ready=2),
        pods=pods,
        autoscaler=hpa(*HPA_OK),
    )
    assert summary(s)["Ready"] == "True/Serving"
    assert "on 2/4 replicas" in cond(s, "Ready")["message"]
    assert summary(s)["Reconciling"] == "True/ScalingUp"
    assert s["gpus"] == 3


def test_scale_down_in_progress():
    body = md_body(replicas=1)
    s = derive(body, dep=deployment(desired=1, replicas=2, ready=2, updated=2), pods=[pod()])
    assert summary(s)["Reconciling"] == "True/ScalingDown"


# --- autoscaler ------------------------------------------------------------------------


def autoscaled(engine: str = "hpa", **kw: Any) -> dict[str, Any]:
    body = md_body(autoscaling={**AUTOSCALING, "engine": engine})
    return derive(body, dep=deployment(desired=2, replicas=2, ready=2), pods=[pod()], **kw)


def test_no_autoscaler_condition_without_autoscaling():
    assert "AutoscalerReady" not in summary(derive(dep=deployment(), pods=[pod()]))


def test_hpa_active():
    s = autoscaled(autoscaler=hpa(*HPA_OK))
    assert summary(s)["AutoscalerReady"] == "True/ScalingActive"
    assert "triton_queue_time_per_request_us" in cond(s, "AutoscalerReady")["message"]


def test_hpa_without_metrics_says_why():
    missing = (
        "ScalingActive",
        "False",
        "FailedGetPodsMetric",
        "the HPA was unable to compute the replica count: unable to get metric "
        "triton_queue_time_per_request_us: no metrics returned from custom metrics API",
    )
    s = autoscaled(autoscaler=hpa(HPA_OK[0], missing))
    assert summary(s)["AutoscalerReady"] == "False/FailedGetPodsMetric"
    assert "no metrics returned" in cond(s, "AutoscalerReady")["message"]


def test_hpa_at_max_replicas_is_reported():
    limited = (
        "ScalingLimited",
        "True",
        "TooManyReplicas",
        "the desired replica count is more than the maximum replica count",
    )
    s = autoscaled(autoscaler=hpa(HPA_OK[0], HPA_OK[1], limited))
    assert summary(s)["AutoscalerReady"] == "True/ScalingLimited"


def test_hpa_not_reported_yet_and_missing():
    assert summary(autoscaled(autoscaler=hpa()))["AutoscalerReady"] == "Unknown/Pending"
    assert summary(autoscaled(autoscaler=None))["AutoscalerReady"] == "Unknown/Pending"


def test_keda_not_installed():
    s = autoscaled("keda", keda_missing=True)
    assert summary(s)["AutoscalerReady"] == "False/KEDANotInstalled"


def test_keda_scaled_object_conditions():
    def scaled_object(status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "status": {
                "conditions": [
                    {"type": "Ready", "status": status, "reason": reason, "message": message}
                ]
            },
        }

    ok = scaled_object(
        "True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling"
    )
    bad = scaled_object("False", "ScaledObjectCheckFailed", "Target resource doesn't exist")
    assert summary(autoscaled("keda", autoscaler=ok))["AutoscalerReady"] == "True/ScaledObjectReady"
    assert (
        summary(autoscaled("keda", autoscaler=bad))["AutoscalerReady"]
        == "False/ScaledObjectCheckFailed"
    )
    unknown = scaled_object("Unknown", "Unknown", "")
    assert summary(autoscaled("keda", autoscaler=unknown))["AutoscalerReady"] == "Unknown/Pending"


# --- drift ------------------------------------------------------------------------------

DRIFT_SPEC = {
    "enabled": True,
    "reference": {"uri": "s3://models/fraud/reference.npz"},
    "method": "psi",
    "threshold": 0.2,
    "window": 1000,
}


def drifting(drift: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
    return derive(
        md_body(driftMonitor=DRIFT_SPEC), dep=deployment(), pods=[pod()], drift=drift, **kw
    )


def test_no_drift_condition_when_monitor_disabled():
    s = derive(
        md_body(driftMonitor={**DRIFT_SPEC, "enabled": False}), dep=deployment(), pods=[pod()]
    )
    assert "Drifted" not in summary(s) and "drift" not in s


def test_drift_no_data_yet():
    s = drifting(None)
    assert summary(s)["Drifted"] == "Unknown/NoData"
    assert "1000 requests" in cond(s, "Drifted")["message"]
    assert "drift" not in s


def test_drift_detected_reports_top_features_and_since():
    features = {f"f{i}": i / 100 for i in range(40)} | {"amount": 0.52, "merchant": 0.33}
    s = drifting({"score": 0.52, "drifted": True, "features": features})
    assert summary(s)["Drifted"] == "True/DriftDetected"
    assert cond(s, "Drifted")["message"] == (
        "input drift detected (psi score 0.52, threshold 0.2); "
        "most drifted: amount (0.52), f39 (0.39), f38 (0.38)"
    )
    assert s["drift"]["drifted"] is True
    assert s["drift"]["since"] == "2026-11-25T12:00:00Z"
    assert len(s["drift"]["features"]) == 32
    assert s["drift"]["features"][0] == {"name": "amount", "score": 0.52}

    later = drifting(
        {"score": 0.6, "drifted": True, "features": [{"name": "amount", "score": 0.6}]},
        previous=s["conditions"],
        now=NOW + timedelta(minutes=10),
    )
    assert later["drift"]["since"] == "2026-11-25T12:00:00Z"


def test_drift_within_threshold():
    s = drifting({"score": 0.05, "drifted": False, "features": []})
    assert summary(s)["Drifted"] == "False/NoDrift"
    assert cond(s, "Drifted")["message"] == "no input drift (psi score 0.05, threshold 0.2)"
    assert s["drift"] == {"score": 0.05, "drifted": False}


def test_monitor_summary_wins_and_is_normalised():
    """The sidecar's /drift document: its since, method and threshold in force."""
    summary_doc = {
        "schema": "modelops.drift.summary/v1",
        "method": "ks",
        "threshold": 0.001,
        "score": 0.31,
        "drifted": True,
        "since": "2026-11-25T11:00:00.123456Z",
        "features": [{"name": "f3", "score": 0.31, "drifted": True, "psi": 0.4, "n": 1000}],
    }
    s = drifting(summary_doc)
    assert s["drift"]["since"] == "2026-11-25T11:00:00Z"
    assert s["drift"]["features"] == [{"name": "f3", "score": 0.31}]
    assert cond(s, "Drifted")["message"].startswith(
        "input drift detected (ks score 0.31, threshold 0.001)"
    )


def test_accepts_a_parsed_model_deployment():
    from modelops.api.modeldeployment import ModelDeployment

    parsed = ModelDeployment.from_body(md_body())
    assert derive(parsed, dep=deployment(), pods=[pod()]) == derive(dep=deployment(), pods=[pod()])


# --- status_patch -------------------------------------------------------------------------


def test_status_patch_is_empty_in_steady_state():
    from modelops.render.merge_patch import status_patch

    s = derive(dep=deployment(), pods=[pod()])
    live = {**s, "kopf": {"progress": {}}}
    assert status_patch(live, s) == {}


def test_status_patch_deletes_what_is_gone_and_keeps_kopf():
    from modelops.render.merge_patch import status_patch

    serving = derive(
        md_body(driftMonitor=DRIFT_SPEC),
        dep=deployment(),
        pods=[pod()],
        drift={"score": 0.3, "drifted": True},
    )
    down = derive(
        md_body(driftMonitor=DRIFT_SPEC),
        dep=deployment(ready=0, available=0),
        pods=[pod(loading=True)],
        drift={"score": 0.1, "drifted": False},
        previous=serving["conditions"],
    )
    patch = status_patch({**serving, "kopf": {"x": 1}}, down)
    assert patch["servedVersion"] is None
    assert patch["drift"] == {"score": 0.1, "drifted": False, "since": None}
    assert "kopf" not in patch
    assert patch["conditions"] == down["conditions"]
    assert "endpoints" not in patch and "selector" not in patch


def test_status_patch_from_nothing_is_the_whole_status():
    from modelops.render.merge_patch import status_patch

    s = derive(dep=deployment(), pods=[pod()])
    assert status_patch(None, s) == s

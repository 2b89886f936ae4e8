"""derive_trainingjob_status: every situation, from realistic Job and Pod objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest

from modelops.api.conditions import PLANNER_REASONS, TRAINING_JOB_CONDITIONS
from modelops.api.crd import TRAINING_JOB, root_schema
from modelops.api.trainingjob import TrainingJobStatus
from modelops.render.merge_patch import status_patch
from modelops.render.training import derive_trainingjob_status
from tests.unit.test_render_fixtures import GPU_MESSAGE, ts
from tests.unit.test_render_trainingjob_fixtures import NOW, job, pod, tj_body

STATUS_SCHEMA = root_schema(TRAINING_JOB)["properties"]["status"]
RESULT = {
    "outputVersion": 8,
    "outputUri": "s3://models/fraud",
    "model": "fraud-retrain",
    "resumedFromEpoch": 0,
    "metrics": {"loss": 0.0213456789, "accuracy": 0.93, "epochs": 5, "worldSize": 2},
}
EMITTED: set[tuple[str, str]] = set()


def derive(
    body: dict[str, Any] | None = None,
    *,
    live_job: dict[str, Any] | None = None,
    pods: list[dict[str, Any]] | None = None,
    previous: dict[str, Any] | None = None,
    restarts: int = 0,
    now=NOW,
    **kw: Any,
) -> dict[str, Any]:
    status = derive_trainingjob_status(
        body or tj_body(),
        job=live_job,
        pods=pods or [],
        previous_status=previous,
        now=now,
        restarts=restarts,
        **kw,
    )
    # Storable: the API server validates status writes against the schema too.
    jsonschema.Draft4Validator(STATUS_SCHEMA).validate(status)
    TrainingJobStatus.model_validate(status)
    # Every reason is one docs/api.md explains.
    for c in status["conditions"]:
        assert c["reason"] in TRAINING_JOB_CONDITIONS[c["type"]][1], (c["type"], c["reason"])
        EMITTED.add((c["type"], c["reason"]))
    assert [c["type"] for c in status["conditions"]] == list(TRAINING_JOB_CONDITIONS)
    return status


def cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    [found] = [c for c in status["conditions"] if c["type"] == ctype]
    return found


def summary(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: f"{c['status']}/{c['reason']}" for c in status["conditions"]}


def running_pods(attempt: int = 0) -> list[dict[str, Any]]:
    return [pod(0, attempt=attempt), pod(1, attempt=attempt)]


# --- before and while training --------------------------------------------------------------


def test_no_job_yet_is_pending_creating():
    s = derive()
    assert s["phase"] == "Pending"
    assert summary(s) == {
        "Ready": "False/Creating",
        "Reconciling": "True/Creating",
        "Stalled": "False/AsExpected",
        "Created": "False/JobMissing",
        "Running": "False/NotStarted",
        "Succeeded": "False/NotFinished",
        "Failed": "False/NoFailure",
        "Suspended": "False/NotSuspended",
    }
    assert cond(s, "Ready")["message"] == "creating Job fraud-retrain-a0"
    assert s["observedGeneration"] == 2 and s["jobName"] == "fraud-retrain-a0"
    assert (s["restarts"], s["activeNodes"], s["gpus"]) == (0, 0, 0)
    assert "startTime" not in s and "completionTime" not in s


def test_running_only_when_every_node_runs():
    s = derive(live_job=job(), pods=running_pods())
    assert s["phase"] == "Running"
    assert summary(s)["Running"] == "True/AllNodesRunning"
    assert summary(s)["Ready"] == "False/Running"
    assert summary(s)["Reconciling"] == "True/Running"
    assert summary(s)["Created"] == "True/JobCreated"
    assert cond(s, "Created")["message"] == "Job fraud-retrain-a0 (attempt 0)"
    assert cond(s, "Running")["message"] == (
        "training on 2 nodes x 1 processes (world size 2), attempt 0"
    )
    assert (s["activeNodes"], s["gpus"]) == (2, 2)
    assert s["startTime"] == ts(600)


def test_a_partly_scheduled_gang_is_not_running_and_says_why():
    s = derive(live_job=job(), pods=[pod(0), pod(1, unschedulable=GPU_MESSAGE)])
    assert s["phase"] == "Pending"
    assert summary(s)["Running"] == "False/WaitingForNodes"
    assert summary(s)["Stalled"] == "False/AsExpected"  # waiting for GPUs is not a stall
    assert cond(s, "Ready")["message"] == f"1/2 nodes running; waiting for a node: {GPU_MESSAGE}"
    # Both pods hold (or will hold) their GPU: the first one idles meanwhile.
    assert (s["activeNodes"], s["gpus"]) == (1, 2)


def test_pods_not_created_yet_wait_for_the_scheduler():
    s = derive(live_job=job(), pods=[pod(0)])
    assert summary(s)["Ready"] == "False/WaitingForNodes"
    assert cond(s, "Ready")["message"] == "1/2 nodes running; waiting for the scheduler"


def test_scheduled_pods_whose_containers_start_are_starting():
    creating = ("ContainerCreating", "")
    s = derive(live_job=job(), pods=[pod(0), pod(1, waiting=creating)])
    assert summary(s)["Ready"] == "False/Starting"
    assert cond(s, "Ready")["message"] == "1/2 nodes running; starting containers"


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        (("ImagePullBackOff", 'Back-off pulling image "ghcr.io/x:9"'), "ImagePullBackOff"),
        (
            ("CreateContainerConfigError", 'secret "s3-creds" not found'),
            "CreateContainerConfigError",
        ),
    ],
)
def test_a_pod_that_cannot_start_is_stalled(waiting, reason):
    s = derive(live_job=job(), pods=[pod(0), pod(1, waiting=waiting)])
    assert s["phase"] == "Pending"
    assert summary(s)["Stalled"] == f"True/{reason}"
    assert summary(s)["Ready"] == f"False/{reason}"
    assert summary(s)["Reconciling"] == "False/Stalled"
    assert "fraud-retrain-a0-1-x1q" in cond(s, "Stalled")["message"]


def test_pods_that_cannot_be_created_are_stalled():
    event = {
        "involvedObject": {"kind": "Job", "name": "fraud-retrain-a0"},
        "reason": "FailedCreate",
        "message": 'Error creating: pods "fraud-retrain-a0-0-abcde" is forbidden: exceeded quota',
        "lastTimestamp": ts(30),
    }
    s = derive(live_job=job(), pods=[], events=[event])
    assert summary(s)["Stalled"] == "True/FailedCreate"
    assert "exceeded quota" in cond(s, "Stalled")["message"]
    stale = {**event, "lastTimestamp": ts(3600)}
    assert summary(derive(live_job=job(), pods=[], events=[stale]))["Stalled"] == (
        "False/AsExpected"
    )


def test_the_running_attempt_keeps_its_node_count_when_the_spec_changes():
    s = derive(tj_body(nodes=4), live_job=job(), pods=running_pods())
    assert s["phase"] == "Running"
    assert cond(s, "Running")["message"].startswith("training on 2 nodes")


def test_pods_of_other_attempts_are_ignored():
    old = [pod(0, attempt=0, exit_code=1), pod(1, attempt=0, exit_code=1)]
    s = derive(live_job=job(1), pods=old + running_pods(attempt=1), restarts=1)
    assert s["phase"] == "Running" and s["activeNodes"] == 2
    assert s["jobName"] == "fraud-retrain-a1"


# --- suspension and Kueue ------------------------------------------------------------------------


def test_suspended_by_the_spec():
    s = derive(tj_body(suspend=True), live_job=job(state="suspended"))
    assert s["phase"] == "Suspended"
    assert summary(s)["Suspended"] == "True/Suspended"
    assert summary(s)["Reconciling"] == "False/Suspended"
    assert summary(s)["Ready"] == "False/Suspended"
    assert s["gpus"] == 0


def test_queued_job_waits_for_kueue_admission():
    s = derive(tj_body(queueName="gpu-queue"), live_job=job(state="suspended"))
    assert summary(s)["Suspended"] == "True/WaitingForAdmission"
    assert cond(s, "Suspended")["message"] == (
        "waiting for Kueue to admit the Job from queue gpu-queue"
    )


def test_suspending_while_pods_stop():
    pods = [pod(0, terminating=True), pod(1, terminating=True)]
    s = derive(tj_body(suspend=True), live_job=job(state="suspended"), pods=pods)
    assert s["phase"] == "Suspended"
    assert summary(s)["Suspended"] == "False/Suspending"
    assert summary(s)["Reconciling"] == "True/Suspending"


# --- the outcome -------------------------------------------------------------------------------


def test_success_reads_the_published_version_and_metrics_from_rank_0():
    pods = [pod(0, exit_code=0, result=RESULT), pod(1, exit_code=0)]
    s = derive(live_job=job(state="succeeded"), pods=pods)
    assert s["phase"] == "Succeeded"
    assert summary(s) == {
        "Ready": "True/Succeeded",
        "Reconciling": "False/Finished",
        "Stalled": "False/AsExpected",
        "Created": "True/JobCreated",
        "Running": "False/Completed",
        "Succeeded": "True/Completed",
        "Failed": "False/NoFailure",
        "Suspended": "False/NotSuspended",
    }
    assert cond(s, "Ready")["message"] == (
        "training finished; published model fraud-retrain version 8"
    )
    assert s["outputVersion"] == "8"
    assert s["metrics"] == {"accuracy": 0.93, "epochs": 5.0, "loss": 0.0213457, "worldSize": 2.0}
    assert s["completionTime"] == ts(10)
    assert (s["activeNodes"], s["gpus"]) == (0, 0)


def test_reported_values_win_over_the_termination_message():
    pods = [pod(0, exit_code=0, result=RESULT), pod(1, exit_code=0)]
    s = derive(
        live_job=job(state="succeeded"), pods=pods, output_version="9", metrics={"loss": "0.5"}
    )
    assert (s["outputVersion"], s["metrics"]) == ("9", {"loss": 0.5})


def test_metrics_are_finite_numbers_bounded_and_rounded():
    noisy = {f"m{i:02d}": i for i in range(40)}
    noisy.update({"a_nan": float("nan"), "a_flag": True, "a_word": "high", "a_text": "1.5"})
    s = derive(live_job=job(), pods=running_pods(), metrics=noisy)
    assert len(s["metrics"]) == 32
    assert s["metrics"]["a_text"] == 1.5
    assert not {"a_nan", "a_flag", "a_word"} & set(s["metrics"])


def test_failed_node_restarts_the_whole_group_while_restarts_remain():
    pods = [
        pod(0, terminating=True, exit_code=143, finished_ago=5),  # stopped by the Job: collateral
        pod(1, exit_code=1, message="RuntimeError: CUDA error: an illegal memory access"),
    ]
    s = derive(live_job=job(state="failing"), pods=pods)
    assert s["phase"] == "Pending"
    assert summary(s)["Reconciling"] == "True/Restarting"
    assert summary(s)["Failed"] == "False/Restarting"
    assert summary(s)["Stalled"] == "False/AsExpected"
    assert cond(s, "Ready")["message"] == (
        "attempt 0 failed: rank 1 (pod fraud-retrain-a0-1-x1q) failed: Error (exit code 1): "
        "RuntimeError: CUDA error: an illegal memory access; restarting all 2 nodes "
        "(restart 1 of 3)"
    )
    assert s["failedPods"] == [
        {
            "pod": "fraud-retrain-a0-1-x1q",
            "attempt": 0,
            "rank": 1,
            "reason": "Error",
            "exitCode": 1,
            "message": "RuntimeError: CUDA error: an illegal memory access",
        }
    ]


def test_the_restart_chain_keeps_the_failed_attempt_s_pods_in_status():
    failed = derive(live_job=job(state="failed"), pods=[pod(0), pod(1, exit_code=1)])
    restarted = derive(previous=failed, restarts=1, now=NOW + timedelta(seconds=5))
    assert summary(restarted)["Ready"] == "False/Creating"
    assert restarted["restarts"] == 1 and restarted["jobName"] == "fraud-retrain-a1"
    assert restarted["failedPods"] == failed["failedPods"]
    assert restarted["failedPods"][0]["attempt"] == 0
    done = derive(
        live_job=job(1, state="succeeded"),
        pods=[pod(0, attempt=1, exit_code=0), pod(1, attempt=1, exit_code=0)],
        previous=restarted,
        restarts=1,
    )
    assert cond(done, "Ready")["message"] == "training finished after 1 restart"
    second = job(1)
    second["status"]["startTime"] = ts(1)
    running = derive(live_job=second, pods=running_pods(1), previous=restarted, restarts=1)
    assert running["phase"] == "Running"
    assert running["failedPods"] == failed["failedPods"]
    # The TrainingJob started with its first attempt (activeDeadlineSeconds counts from it).
    assert running["startTime"] == failed["startTime"] == ts(600)


def test_failure_after_the_last_restart_is_final_and_names_the_rank():
    pods = [pod(0, exit_code=0), pod(1, attempt=3, exit_code=137, reason="OOMKilled")]
    pods[1]["metadata"]["labels"]["batch.kubernetes.io/job-name"] = "fraud-retrain-a3"
    s = derive(live_job=job(3, state="failed"), pods=[*pods, pod(0, attempt=3)], restarts=3)
    assert s["phase"] == "Failed"
    assert summary(s)["Failed"] == "True/BackoffLimitExceeded"
    assert summary(s)["Stalled"] == "True/BackoffLimitExceeded"
    assert summary(s)["Ready"] == "False/BackoffLimitExceeded"
    assert summary(s)["Reconciling"] == "False/Finished"
    message = cond(s, "Failed")["message"]
    assert message.startswith("attempt 3 failed and all 3 restarts of spec.backoffLimit are used")
    assert "rank 1 (pod fraud-retrain-a3-1-x1q) failed: OOMKilled (exit code 137)" in message
    assert s["completionTime"] == ts(15)


def test_deadline_is_final_even_with_restarts_left():
    body = tj_body(activeDeadlineSeconds=3600)
    s = derive(body, live_job=job(state="failed", reason="DeadlineExceeded"))
    assert summary(s)["Failed"] == "True/DeadlineExceeded"
    assert cond(s, "Failed")["message"] == "spec.activeDeadlineSeconds (3600s) passed"


def test_a_mistake_no_retry_fixes_fails_at_once_with_the_trainer_s_reason():
    error = {"error": {"reason": "InvalidHyperparameter", "message": "lr: 'fast' is no number"}}
    pods = [pod(0, exit_code=1, result=error), pod(1, exit_code=1, result=error)]
    s = derive(live_job=job(state="failed"), pods=pods)
    assert s["phase"] == "Failed"
    assert summary(s)["Failed"] == "True/InvalidHyperparameter"
    assert s["failedPods"][0]["reason"] == "InvalidHyperparameter"
    assert s["failedPods"][0]["message"] == "lr: 'fast' is no number"
    assert cond(s, "Failed")["message"].endswith("not restarted: retrying cannot help")


def test_trainer_errors_name_the_storage_problem():
    error = {"error": {"reason": "AccessDenied", "message": "uploading s3://models/fraud/9"}}
    s = derive(live_job=job(state="failing"), pods=[pod(0, exit_code=1, result=error), pod(1)])
    assert summary(s)["Failed"] == "False/Restarting"  # retried: the Secret may get fixed
    assert s["failedPods"][0]["reason"] == "AccessDenied"


def test_the_first_failure_is_reported_first_and_preemption_counts():
    pods = [
        pod(0, exit_code=1, finished_ago=5),
        pod(1, phase="Failed", exit_code=143, finished_ago=40, disruption="PreemptionByScheduler"),
    ]
    s = derive(live_job=job(state="failing"), pods=pods)
    assert [f["rank"] for f in s["failedPods"]] == [1, 0]
    assert s["failedPods"][0]["reason"] == "PreemptionByScheduler"


def test_a_failed_node_before_the_job_notices():
    s = derive(live_job=job(), pods=[pod(0), pod(1, exit_code=1, message="boom")])
    assert s["phase"] == "Pending"
    assert summary(s)["Running"] == "False/NodeFailed"
    assert summary(s)["Failed"] == "False/NodeFailed"
    assert cond(s, "Ready")["message"].endswith("; ending attempt")


# --- writes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "situation",
    ["creating", "running", "waiting", "suspended", "restarting", "succeeded", "failed"],
)
def test_steady_state_rederives_identically_so_nothing_is_written(situation):
    kw = SCENARIOS[situation]
    first = derive(**kw)
    later = derive(**{**kw, "previous": first, "now": NOW + timedelta(hours=1)})
    assert later == first
    assert status_patch(first, later) == {}


def test_transition_time_moves_only_when_status_changes():
    waiting = derive(live_job=job(), pods=[pod(0), pod(1, unschedulable=GPU_MESSAGE)])
    later = NOW + timedelta(minutes=5)
    running = derive(live_job=job(), pods=running_pods(), previous=waiting, now=later)
    times = {c["type"]: c["lastTransitionTime"] for c in running["conditions"]}
    assert times["Running"] == "2026-11-25T12:05:00Z"  # False -> True
    assert times["Reconciling"] == ts(0)  # True throughout, reason changed
    assert times["Succeeded"] == ts(0)


def test_the_outcome_survives_the_job_s_ttl_deletion():
    pods = [pod(0, exit_code=0, result=RESULT), pod(1, exit_code=0)]
    done = derive(live_job=job(state="succeeded"), pods=pods)
    later = NOW + timedelta(days=1)
    after = derive(previous=done, now=later)
    assert after["phase"] == "Succeeded"
    assert summary(after)["Succeeded"] == "True/Completed"
    assert summary(after)["Created"] == "False/JobDeleted"
    assert cond(after, "Ready") == cond(done, "Ready")
    assert (after["outputVersion"], after["completionTime"]) == ("8", done["completionTime"])
    assert after["metrics"] == done["metrics"]


def test_a_final_failure_stays_final():
    failed = derive(
        live_job=job(3, state="failed"), pods=[pod(1, attempt=3, exit_code=1)], restarts=3
    )
    again = derive(previous=failed, restarts=3, now=NOW + timedelta(hours=2))
    assert again["phase"] == "Failed"
    assert cond(again, "Failed") == cond(failed, "Failed")


SCENARIOS: dict[str, dict[str, Any]] = {
    "creating": {},
    "running": {"live_job": job(), "pods": running_pods()},
    "waiting": {"live_job": job(), "pods": [pod(0), pod(1, unschedulable=GPU_MESSAGE)]},
    "starting": {"live_job": job(), "pods": [pod(0), pod(1, waiting=("ContainerCreating", ""))]},
    "suspended": {"body": tj_body(suspend=True), "live_job": job(state="suspended")},
    "admission": {"body": tj_body(queueName="q"), "live_job": job(state="suspended")},
    "suspending": {
        "body": tj_body(suspend=True),
        "live_job": job(state="suspended"),
        "pods": [pod(0, terminating=True)],
    },
    "stalled": {"live_job": job(), "pods": [pod(0, waiting=("ImagePullBackOff", "no such tag"))]},
    "node-failed": {"live_job": job(), "pods": [pod(0), pod(1, exit_code=1)]},
    "restarting": {"live_job": job(state="failing"), "pods": [pod(0), pod(1, exit_code=1)]},
    "succeeded": {
        "live_job": job(state="succeeded"),
        "pods": [pod(0, exit_code=0, result=RESULT), pod(1, exit_code=0)],
    },
    "failed": {
        "live_job": job(3, state="failed"),
        "pods": [pod(1, attempt=3, exit_code=1)],
        "restarts": 3,
    },
    "deadline": {"live_job": job(state="failed", reason="DeadlineExceeded")},
    "deleted": {
        "previous": {
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "True",
                    "reason": "Completed",
                    "message": "training finished",
                    "lastTransitionTime": ts(60),
                }
            ]
        }
    },
}


def test_every_situation_has_its_phase():
    phases = {name: derive(**kw)["phase"] for name, kw in SCENARIOS.items()}
    assert phases == {
        "creating": "Pending",
        "running": "Running",
        "waiting": "Pending",
        "starting": "Pending",
        "suspended": "Suspended",
        "admission": "Suspended",
        "suspending": "Suspended",
        "stalled": "Pending",
        "node-failed": "Pending",
        "restarting": "Pending",
        "succeeded": "Succeeded",
        "failed": "Failed",
        "deadline": "Failed",
        "deleted": "Succeeded",
    }


def test_kstatus_abnormal_true_conditions_are_never_both_true():
    for name, kw in SCENARIOS.items():
        s = summary(derive(**kw))
        assert not (s["Reconciling"].startswith("True") and s["Stalled"].startswith("True")), name
        assert s["Ready"].startswith("True") == s["Succeeded"].startswith("True"), name


def test_documented_reasons_are_all_reachable():
    for kw in SCENARIOS.values():
        derive(**kw)
    error = {"error": {"reason": "InvalidArgument", "message": "bad"}}
    for reason in (
        "InvalidArgument",
        "InvalidTrainingModule",
        "InvalidHyperparameter",
        "CheckpointMismatch",
        "InvalidOutput",
    ):
        error["error"]["reason"] = reason
        derive(live_job=job(state="failed"), pods=[pod(0, exit_code=1, result=error)])
    derive(live_job=job(), pods=[pod(0, waiting=("CreateContainerConfigError", "no secret"))])
    derive(live_job=job(), pods=[pod(0, waiting=("CreateContainerError", "x"))])
    derive(live_job=job(), pods=[pod(0, waiting=("RunContainerError", "x"))])
    derive(live_job=job(), pods=[], events=[FAILED_CREATE])
    derive(
        live_job=job(3, state="failed", reason="DeadlineExceeded"),
        pods=[pod(0, attempt=3, exit_code=1)],
        restarts=3,
    )
    documented = {
        (ctype, reason)
        for ctype, (_, reasons) in TRAINING_JOB_CONDITIONS.items()
        for reason in reasons
        if reason not in PLANNER_REASONS  # forced by the planner: test_tj_planner covers them
    }
    assert documented - EMITTED == set()


FAILED_CREATE = {
    "involvedObject": {"kind": "Job", "name": "fraud-retrain-a0"},
    "reason": "FailedCreate",
    "message": "forbidden",
    "eventTime": ts(5),
}


def test_accepts_the_raw_body_and_the_parsed_object():
    from modelops.api.trainingjob import TrainingJob

    parsed = TrainingJob.from_body(tj_body())
    assert (
        derive_trainingjob_status(
            parsed, job=None, pods=[], previous_status=None, now=NOW, restarts=0
        )
        == derive()
    )

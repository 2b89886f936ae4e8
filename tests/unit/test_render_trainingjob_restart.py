"""decide_restart and the helpers of the whole-group restart loop."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelops.render.training import decide_restart, elapsed_seconds, is_finished
from tests.unit.test_render_trainingjob_fixtures import NOW, job, pod, tj_body, ts

FAILED_PODS = [pod(0, exit_code=0), pod(1, exit_code=1)]


def test_restarts_once_the_failed_attempt_has_fully_stopped():
    assert decide_restart(tj_body(), job(state="failed"), FAILED_PODS, 0) is True
    assert decide_restart(tj_body(), job(2, state="failed"), _attempt(2, FAILED_PODS), 2) is True


def _attempt(attempt: int, pods: list) -> list:
    out = []
    for p in pods:
        p = {**p, "metadata": {**p["metadata"], "labels": dict(p["metadata"]["labels"])}}
        p["metadata"]["labels"]["batch.kubernetes.io/job-name"] = f"fraud-retrain-a{attempt}"
        out.append(p)
    return out


@pytest.mark.parametrize(
    ("live_job", "pods"),
    [
        (None, []),
        (job(), [pod(0), pod(1)]),
        (job(state="succeeded"), [pod(0, exit_code=0), pod(1, exit_code=0)]),
        (job(state="suspended"), []),
        # FailureTarget only: the Job controller is still stopping the pods.
        (job(state="failing"), FAILED_PODS),
        # Failed, but a pod of the attempt is still terminating on its GPU.
        (job(state="failed"), [pod(0, terminating=True), pod(1, exit_code=1)]),
    ],
    ids=["no-job", "running", "succeeded", "suspended", "failing", "pod-still-stopping"],
)
def test_no_restart_while_the_attempt_is_not_over(live_job, pods):
    assert decide_restart(tj_body(), live_job, pods, 0) is False


def test_no_restart_once_backoff_limit_restarts_are_used():
    assert decide_restart(tj_body(backoffLimit=3), job(3, state="failed"), [], 3) is False
    assert decide_restart(tj_body(backoffLimit=0), job(state="failed"), FAILED_PODS, 0) is False
    assert decide_restart(tj_body(backoffLimit=1), job(state="failed"), FAILED_PODS, 0) is True


def test_no_restart_after_the_deadline():
    expired = job(state="failed", reason="DeadlineExceeded")
    assert decide_restart(tj_body(activeDeadlineSeconds=60), expired, FAILED_PODS, 0) is False


def test_no_restart_after_a_mistake_every_attempt_would_repeat():
    error = {"error": {"reason": "InvalidTrainingModule", "message": "no build()"}}
    pods = [pod(0, exit_code=1, result=error), pod(1, exit_code=1, result=error)]
    assert decide_restart(tj_body(), job(state="failed"), pods, 0) is False
    storage = {"error": {"reason": "AccessDenied", "message": "s3"}}
    assert decide_restart(tj_body(), job(state="failed"), [pod(0, exit_code=1, result=storage)], 0)


def test_elapsed_seconds_counts_from_the_first_attempt():
    assert elapsed_seconds(None, NOW) == 0
    assert elapsed_seconds({"startTime": ts(600)}, NOW) == 600
    assert elapsed_seconds({"startTime": ts(0)}, NOW - timedelta(seconds=5)) == 0


def test_is_finished():
    def status(ctype: str, value: str) -> dict:
        return {"conditions": [{"type": ctype, "status": value}]}

    assert is_finished(status("Succeeded", "True"))
    assert is_finished(status("Failed", "True"))
    assert not is_finished(status("Failed", "False"))
    assert not is_finished(status("Ready", "True"))  # Ready alone is not read
    assert not is_finished(None)

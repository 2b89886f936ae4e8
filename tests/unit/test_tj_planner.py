"""The TrainingJob planner: attempts, the rendezvous Service, ownership, ordering."""

from __future__ import annotations

from typing import Any

from modelops.render.outcome import digest
from modelops.render.ownership import Applied, fingerprint
from modelops.render.plan import Failure
from modelops.render.projections import project_job, project_owned, project_pod
from modelops.render.training import planner, render_headless_service
from tests.unit.test_render_trainingjob_fixtures import NOW, job, pod, tj_body

UID = tj_body()["metadata"]["uid"]


def service(owner: str | None = UID) -> dict[str, Any]:
    body = render_headless_service(planner.parse(tj_body()))
    body["metadata"] = {**body["metadata"], "uid": "uid-svc", "resourceVersion": "7"}
    body["metadata"]["ownerReferences"] = (
        [] if owner is None else [{"uid": owner, "controller": True}]
    )
    return project_owned(body)


def plan(body=None, *, jobs=(), pods=(), svc=None, applied=None):
    body = body or tj_body()
    obs = planner.Observed(
        body=body,
        jobs=[project_job(j) for j in jobs],
        pods=[project_pod(p) for p in pods],
        service=svc,
        now=NOW,
    )
    return planner.plan(obs, planner.parse(body), applied), obs


def applied_with(svc: dict[str, Any]) -> Applied:
    return Applied(
        digest(render_headless_service(planner.parse(tj_body()))), {"Service": fingerprint(svc)}
    )


def reason(status: dict[str, Any], ctype: str) -> tuple[str, str]:
    cond = next(c for c in status["conditions"] if c["type"] == ctype)
    return cond["status"], cond["reason"]


def test_new_training_job_applies_its_service_and_creates_attempt_zero_after_status():
    p, _ = plan()
    assert [a.kind for a in p.applies] == ["Service"]
    assert p.applies[0].expect_uid is None
    assert [c.obj["metadata"]["name"] for c in p.creates] == ["fraud-retrain-a0"]
    assert p.status_first  # the attempt counter is recorded before its Job exists


def test_running_attempt_makes_no_write():
    svc = service()
    body = tj_body()
    first, _ = plan(body, jobs=[job()], pods=[pod(0), pod(1)], svc=svc, applied=applied_with(svc))
    body["status"] = first.status
    p, _ = plan(body, jobs=[job()], pods=[pod(0), pod(1)], svc=svc, applied=applied_with(svc))
    assert p.writes == 0


def test_deleted_rendezvous_service_is_recreated():
    svc = service()
    p, _ = plan(jobs=[job()], pods=[pod(0), pod(1)], svc=None, applied=applied_with(svc))
    assert [a.kind for a in p.applies] == ["Service"]
    assert p.creates == []


def test_foreign_service_is_not_taken_over():
    p, _ = plan(jobs=[job()], pods=[pod(0), pod(1)], svc=service(owner="someone-else"))
    assert p.applies == []
    assert reason(p.status, "Stalled") == ("True", "OwnershipConflict")


def test_failed_attempt_restarts_the_whole_group_as_the_next_attempt():
    svc = service()
    failed = [pod(0, exit_code=0), pod(1, exit_code=1)]  # every pod of it has stopped
    p, _ = plan(jobs=[job(state="failed")], pods=failed, svc=svc, applied=applied_with(svc))
    assert [c.obj["metadata"]["name"] for c in p.creates] == ["fraud-retrain-a1"]
    assert p.status["restarts"] == 1
    assert "Restarting" in [r for _, r, _ in p.events]


def test_suspend_patches_the_live_job():
    svc = service()
    body = tj_body(suspend=True)
    p, _ = plan(body, jobs=[job()], pods=[pod(0), pod(1)], svc=svc, applied=applied_with(svc))
    assert [(x.kind, dict(x.patch)) for x in p.patches] == [("Job", {"spec": {"suspend": True}})]


def test_refused_create_is_revised_into_a_stall():
    p, obs = plan()
    revised = planner.revise(obs, p, [Failure("Job", "Forbidden", "Job: exceeded quota")])
    assert reason(revised.status, "Stalled") == ("True", "Forbidden")
    assert revised.failed


def test_invalid_stored_spec_is_refused_with_the_field():
    p, _ = plan(tj_body(nodes="two"))
    assert p.applies == [] and p.creates == []
    assert reason(p.status, "Stalled") == ("True", "InvalidSpec")

"""Plan.decision: the one line a reconcile logs about what it decided."""

from __future__ import annotations

from modelops.render.plan import Apply, Delete, Plan


def test_steady_state_says_no_change():
    assert Plan().decision == "no change"
    assert Plan(requeue_after=30).decision == "requeue 30s"


def test_a_plan_that_writes_names_each_write_and_the_ready_condition():
    deployment = {"kind": "Deployment", "metadata": {"name": "fraud"}}
    plan = Plan(
        applies=[Apply(deployment, expect_uid=None)],
        deletes=[Delete("apps/v1", "Deployment", "ml", "fraud-b", "uid-1")],
        status={"conditions": [{"type": "Ready", "status": "False", "reason": "Unschedulable"}]},
        status_patch={"conditions": []},
        events=[("Warning", "Unschedulable", "0/3 nodes")],
        requeue_after=2.5,
    )
    assert plan.decision == (
        "apply Deployment fraud; delete Deployment fraud-b; event Unschedulable; "
        "status Ready=False/Unschedulable; requeue 2.5s"
    )


def test_a_failed_plan_says_it_backs_off_instead_of_requeueing():
    assert Plan(failed=True, requeue_after=30).decision == "retry with back-off"

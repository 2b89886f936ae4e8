"""The ModelDeployment planner: every decision of a reconcile, from observed snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.render import md_planner
from modelops.render.children import render_children
from modelops.render.outcome import digest
from modelops.render.ownership import Applied, fingerprint
from modelops.render.plan import REPLICAS_MANAGER, Failure
from modelops.render.projections import (
    OWNS_REPLICAS,
    project_autoscaler,
    project_deployment,
    project_owned,
    project_pod,
)
from tests.unit.test_render_fixtures import AUTOSCALING, NOW, deployment, md_body, pod

SETTINGS = md_planner.Settings(operator_image="modelops:test")
UID = "5b1f3f0e-2c1a-4d0e-9a57-0c9d8f0f7a11"  # md_body's uid
PROJECT = {
    "Deployment": project_deployment,
    "HorizontalPodAutoscaler": project_autoscaler,
    "ScaledObject": project_autoscaler,
}


def live(child: dict[str, Any], *, owner: str | None = UID, generation: int = 1) -> dict[str, Any]:
    """A rendered child as the API server would hold it after our apply."""
    body = {**child, "metadata": {**child["metadata"]}}
    body["metadata"]["uid"] = f"uid-{child['kind']}"
    if child["kind"] != "Service":  # a Service has no generation, only resourceVersions
        body["metadata"]["generation"] = generation
    body["metadata"]["resourceVersion"] = str(100 + generation)
    refs = [] if owner is None else [{"uid": owner, "controller": True}]
    body["metadata"]["ownerReferences"] = refs
    return PROJECT.get(child["kind"], project_owned)(body)


def rendered(body: dict[str, Any]) -> list[dict[str, Any]]:
    md = md_planner.parse(body)
    assert not isinstance(md, str)
    return render_children(
        md,
        operator_image=SETTINGS.operator_image,
        model_version="latest",
        triton_image=SETTINGS.triton_image,
    )


def cluster(body: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """kind -> live child, as if every rendered child was applied; overrides replace kinds."""
    children: dict[str, Any] = {c["kind"]: live(c) for c in rendered(body)}
    if "Deployment" in children:
        # The Deployment controller's status: one ready replica of version 3.
        status_source = deployment(version="3")
        children["Deployment"]["status"] = project_deployment(status_source)["status"]
        children["Deployment"]["spec"] = {
            **children["Deployment"]["spec"],
            **project_deployment(status_source)["spec"],
        }
        children["Deployment"]["metadata"]["generation"] = status_source["metadata"]["generation"]
    children.update(overrides)
    return children


def record(children: dict[str, Any], body: dict[str, Any]) -> Applied:
    return Applied(
        digest(rendered(body)),
        {k: fingerprint(v) for k, v in children.items() if v is not None},
    )


def observed(
    body: dict[str, Any], children: dict[str, Any], pods: list[dict[str, Any]] | None = None, **kw
) -> md_planner.Observed:
    return md_planner.Observed(
        body=body,
        children=children,
        pods=[project_pod(p) for p in (pods if pods is not None else [pod(version="3")])],
        now=NOW,
        **kw,
    )


def plan(body, children, applied, pods=None, **kw):
    obs = observed(body, children, pods, **kw)
    return md_planner.plan(obs, md_planner.parse(body), applied, SETTINGS)


def settle(body: dict[str, Any], children: dict[str, Any], applied: Applied | None) -> dict:
    """The body with the status a first reconcile wrote, so the next one starts steady."""
    first = plan(body, children, applied)
    return {**body, "status": first.status}


def kinds(actions) -> list[str]:
    return [a.kind for a in actions]


def reason(status: dict[str, Any], ctype: str) -> tuple[str, str]:
    cond = next(c for c in status["conditions"] if c["type"] == ctype)
    return cond["status"], cond["reason"]


# -- applies --------------------------------------------------------------------------


def test_new_model_deployment_creates_every_child_expecting_none_to_exist():
    body = md_body()
    p = plan(body, {}, None, pods=[])
    assert kinds(p.applies) == ["Deployment", "Service"]
    assert all(a.expect_uid is None for a in p.applies)
    assert p.deletes == [] and p.creates == []
    assert reason(p.status, "Ready") == ("False", "DeploymentMissing")


def test_steady_state_makes_no_write_at_all():
    body = md_body()
    children = cluster(body)
    applied = record(children, body)
    body = settle(body, children, applied)
    p = plan(body, children, applied)
    assert p.writes == 0
    assert reason(p.status, "Ready") == ("True", "Serving")


def test_after_a_restart_each_child_is_applied_once_to_its_own_uid():
    body = md_body()
    children = cluster(body)
    p = plan(settle(body, children, None), children, None)
    assert kinds(p.applies) == ["Deployment", "Service"]
    assert [a.expect_uid for a in p.applies] == ["uid-Deployment", "uid-Service"]


@pytest.mark.parametrize("kind", ["Service", "Deployment"])
def test_deleted_child_is_recreated_at_once(kind):
    body = md_body()
    children = cluster(body)
    applied = record(children, body)
    body = settle(body, children, applied)
    p = plan(body, {**children, kind: None}, applied)
    assert kinds(p.applies) == [kind]
    assert p.applies[0].expect_uid is None


def test_child_edited_behind_our_back_is_applied_again():
    body = md_body()
    children = cluster(body)
    applied = record(children, body)
    body = settle(body, children, applied)
    edited = {**children["Service"], "metadata": {**children["Service"]["metadata"]}}
    edited["metadata"]["resourceVersion"] = "999"  # e.g. its ports were changed
    p = plan(body, {**children, "Service": edited}, applied)
    assert kinds(p.applies) == ["Service"]
    assert p.applies[0].expect_uid == "uid-Service"


def test_removed_owner_reference_of_our_own_child_is_put_back():
    body = md_body()
    children = cluster(body)
    applied = record(children, body)
    body = settle(body, children, applied)
    orphan = {**children["Service"], "metadata": {**children["Service"]["metadata"]}}
    orphan["metadata"].pop("ownerReferences")
    p = plan(body, {**children, "Service": orphan}, applied)
    assert kinds(p.applies) == ["Service"]
    assert p.problems == []


@pytest.mark.parametrize("owner", [None, "someone-else"])
def test_same_named_object_we_do_not_own_is_never_adopted(owner):
    body = md_body()
    children = cluster(body)
    applied = record({k: v for k, v in children.items() if k != "Service"}, body)
    foreign = live(rendered(body)[1], owner=owner)
    foreign["metadata"]["uid"] = "uid-hand-made"
    p = plan(body, {**children, "Service": foreign}, applied)
    assert "Service" not in kinds(p.applies)
    assert p.deletes == []
    assert reason(p.status, "Stalled") == ("True", "OwnershipConflict")
    assert reason(p.status, "Ready") == ("False", "OwnershipConflict")
    message = next(c["message"] for c in p.status["conditions"] if c["type"] == "Stalled")
    assert "Service ml/fraud" in message
    assert p.failed


# -- deletes -------------------------------------------------------------------------


def test_autoscaler_no_longer_wanted_is_deleted_with_its_uid():
    scaled = md_body(autoscaling=AUTOSCALING)
    children = cluster(scaled)
    body = md_body()  # autoscaling removed: one replica, so no PodDisruptionBudget either
    p = plan(body, children, record(children, scaled))
    assert [(d.kind, d.uid) for d in p.deletes] == [
        ("HorizontalPodAutoscaler", "uid-HorizontalPodAutoscaler"),
        ("PodDisruptionBudget", "uid-PodDisruptionBudget"),
    ]


def test_foreign_object_of_an_unwanted_kind_is_not_deleted():
    scaled = md_body(autoscaling=AUTOSCALING)
    hpa = next(c for c in rendered(scaled) if c["kind"] == "HorizontalPodAutoscaler")
    body = md_body()
    children = {**cluster(body), "HorizontalPodAutoscaler": live(hpa, owner="someone-else")}
    assert plan(body, children, None).deletes == []


# -- replicas --------------------------------------------------------------------------


def test_deployment_scaled_to_zero_under_an_hpa_is_restored_to_min_replicas():
    body = md_body(autoscaling=AUTOSCALING)
    children = cluster(body)
    applied = record(children, body)
    zero = {**children["Deployment"], "spec": {**children["Deployment"]["spec"], "replicas": 0}}
    p = plan(body, {**children, "Deployment": zero}, applied, pods=[])
    restore = [a for a in p.applies if a.field_manager == REPLICAS_MANAGER]
    assert [a.obj["spec"]["replicas"] for a in restore] == [AUTOSCALING["minReplicas"]]
    status, why = reason(p.status, "Ready")
    assert (status, why) == ("False", "InsufficientReplicas")


def test_scaled_to_zero_without_autoscaler_is_not_ready_and_reapplied():
    body = md_body()
    children = cluster(body)
    applied = record(children, body)
    body = settle(body, children, applied)
    dep = children["Deployment"]
    zero = {
        **dep,
        "spec": {**dep["spec"], "replicas": 0},
        "metadata": {**dep["metadata"], "generation": dep["metadata"]["generation"] + 1},
    }
    p = plan(body, {**children, "Deployment": zero}, applied, pods=[])
    assert kinds(p.applies) == ["Deployment"]
    assert p.applies[0].obj["spec"]["replicas"] == 1
    assert reason(p.status, "Ready") == ("False", "InsufficientReplicas")
    assert ("Warning", "InsufficientReplicas") in [(t, r) for t, r, _ in p.events]


def test_switching_autoscaling_on_hands_replicas_over_before_the_apply():
    plain = md_body(replicas=3)
    children = cluster(plain)
    children["Deployment"][OWNS_REPLICAS] = True
    children["Deployment"]["spec"]["replicas"] = 3
    body = md_body(autoscaling=AUTOSCALING)
    p = plan(body, children, record(children, plain))
    managers = [(a.kind, a.field_manager) for a in p.applies]
    assert managers[0] == ("Deployment", REPLICAS_MANAGER)
    assert p.applies[0].obj["spec"]["replicas"] == 3
    assert ("Deployment", "modelops") in managers


# -- truthful status ---------------------------------------------------------------------


def test_ready_pods_that_cannot_name_their_version_are_not_serving():
    body = md_body()
    children = cluster(body)
    unnamed = pod(version="3")
    unnamed["metadata"]["annotations"].pop("modelops.io/model-version")
    p = plan(body, children, record(children, body), pods=[unnamed])
    assert reason(p.status, "Ready") == ("False", "VersionUnknown")


def test_keda_missing_renders_no_scaled_object_and_says_so():
    body = md_body(autoscaling={**AUTOSCALING, "engine": "keda"})
    p = plan(body, {}, None, pods=[], keda=False)
    assert "ScaledObject" not in kinds(p.applies)
    assert reason(p.status, "AutoscalerReady") == ("False", "KEDANotInstalled")


def test_keda_missing_looks_again_even_when_serving():
    """KEDA's CRD events can arrive before discovery serves the API; without a
    requeue the model would wait for the next full resync (minutes)."""
    body = md_body(autoscaling={**AUTOSCALING, "engine": "keda", "minReplicas": 1})
    children = cluster(body)
    children.pop("ScaledObject", None)
    applied = record(children, body)
    pods = [pod(version="3")]
    body = {**body, "status": plan(body, children, applied, pods=pods, keda=False).status}
    p = plan(body, children, applied, pods=pods, keda=False)
    assert reason(p.status, "Ready") == ("True", "Serving")
    assert p.requeue_after == md_planner.REQUEUE_FOR_KEDA_S
    plain = md_body()
    steady = {**plain, "status": plan(plain, cluster(plain), None, pods=pods).status}
    assert plan(steady, cluster(plain), None, pods=pods).requeue_after is None


def test_invalid_stored_spec_renders_nothing_and_names_the_field():
    body = md_body(replicas="many")
    p = md_planner.plan(observed(body, {}), md_planner.parse(body), None, SETTINGS)
    assert p.applies == [] and p.deletes == []
    assert reason(p.status, "Stalled") == ("True", "InvalidSpec")
    assert "spec.replicas" in p.status_patch["conditions"][1]["message"]


# -- revising after the shell acted ----------------------------------------------------------


def test_refused_apply_becomes_a_stall_with_the_api_servers_words():
    body = md_body()
    obs = observed(body, {}, [])
    done = md_planner.plan(obs, md_planner.parse(body), None, SETTINGS)
    failure = Failure("Service", "Invalid", "Service: spec.ports[0].port: Invalid value: 0")
    p = md_planner.revise(obs, done, [failure])
    assert reason(p.status, "Stalled") == ("True", "Invalid")
    assert p.failed
    assert ("Warning", "Invalid") in [(t, r) for t, r, _ in p.events]


def test_an_api_server_that_cannot_answer_changes_no_condition_and_writes_nothing():
    """Found by the fault soak (bench/operator/soak.py): during an API-server
    restart every reconcile's apply failed with Unreachable, and each object's
    Ready went False for the operator's own connection trouble."""
    body = settle(md_body(), {}, None)
    obs = observed(body, {}, [])
    done = md_planner.plan(obs, md_planner.parse(body), None, SETTINGS)
    unreachable = Failure("Deployment", "Unreachable", "Deployment: no connection", transient=True)
    p = md_planner.revise(obs, done, [unreachable])
    assert p.failed  # retried with back-off
    assert p.status_patch == {} and p.events == []
    # With a lasting problem beside it, the lasting one is what the status says.
    refused = Failure("Service", "Invalid", "Service: spec.ports[0].port: Invalid value: 0")
    p = md_planner.revise(obs, done, [unreachable, refused])
    assert reason(p.status, "Stalled") == ("True", "Invalid")
    assert "no connection" not in str(p.status["conditions"])


def test_status_patch_only_holds_what_changed():
    body = md_body()
    children = cluster(body)
    applied = record(children, body)
    body = settle(body, children, applied)
    two = [pod(version="3", name="fraud-7d9f8c6b5-a"), pod(version="3", name="fraud-7d9f8c6b5-b")]
    bigger = {**children["Deployment"]}
    bigger["status"] = {**bigger["status"], "readyReplicas": 2, "replicas": 2}
    p = plan(body, {**children, "Deployment": bigger}, applied, pods=two)
    assert set(p.status_patch) <= {"conditions", "replicas", "readyReplicas", "gpus"}


def test_keda_steady_state_makes_no_write():
    """The old controller compared an applied ScaledObject's generation with the HPA
    index (ScaledObjects were not indexed) and re-applied on every reconcile; every
    kind now has its own index entry and fingerprint."""
    body = md_body(autoscaling={**AUTOSCALING, "engine": "keda"})
    children = cluster(body)
    assert "ScaledObject" in children and "HorizontalPodAutoscaler" not in children
    applied = record(children, body)
    first = plan(body, children, applied, keda=True)
    assert first.applies == []
    body = {**body, "status": first.status}
    assert plan(body, children, applied, keda=True).writes == 0


def test_model_deployment_being_deleted_heals_nothing():
    body = md_body()
    body["metadata"]["deletionTimestamp"] = "2026-11-25T12:00:00Z"
    p = plan(body, {}, None, pods=[])  # every child already gone
    assert p.applies == [] and p.writes == 0

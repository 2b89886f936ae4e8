"""render/wake.py: what the operator renders for the activator, and its pure decisions."""

from __future__ import annotations

from typing import Any

from modelops.render.autoscaler import render_autoscaler
from modelops.render.children import render_children
from modelops.render.status import derive_status
from modelops.render.wake import (
    ACTIVATOR_MANAGER,
    ANNOTATION_WAKE_DEPLOYMENT,
    LABEL_WAKE,
    WakeTarget,
    activator_slice,
    deployment_owned_by,
    ready_upstreams,
    scaled_to_zero_condition,
    slice_points_at,
    slice_wanted,
    wake_enabled,
    wake_target,
)
from tests.unit.test_render_fixtures import NOW, deployment, md, md_body

ACTIVATOR = "http://modelops-activator.modelops-system.svc:8080"
MD_UID = "5b1f3f0e-2c1a-4d0e-9a57-0c9d8f0f7a11"


def keda(min_replicas: int = 0, engine: str = "keda") -> dict[str, Any]:
    return {
        "minReplicas": min_replicas,
        "maxReplicas": 3,
        "engine": engine,
        "metric": {"type": "concurrency", "target": 2},
    }


def service_of(children: list[dict[str, Any]]) -> dict[str, Any]:
    [service] = [c for c in children if c["kind"] == "Service"]
    return service


def test_wake_only_where_keda_may_reach_zero():
    assert wake_enabled(md(autoscaling=keda(0)))
    assert not wake_enabled(md(autoscaling=keda(1)))
    assert not wake_enabled(md(autoscaling=keda(1, engine="hpa")))
    assert not wake_enabled(md())


def test_service_is_marked_for_the_activator_only_with_one_installed():
    body = md_body(autoscaling=keda(0))
    marked = service_of(
        render_children(body, operator_image="op:1", model_version="1", activator_url=ACTIVATOR)
    )
    assert marked["metadata"]["labels"][LABEL_WAKE] == "on"
    assert marked["metadata"]["annotations"][ANNOTATION_WAKE_DEPLOYMENT] == "fraud"
    plain = service_of(render_children(body, operator_image="op:1", model_version="1"))
    assert LABEL_WAKE not in plain["metadata"]["labels"]
    # A model that never reaches zero is never in the activator's care.
    floor = service_of(
        render_children(
            md_body(autoscaling=keda(1)),
            operator_image="op:1",
            model_version="1",
            activator_url=ACTIVATOR,
        )
    )
    assert LABEL_WAKE not in floor["metadata"]["labels"]


def test_scaled_object_follows_the_held_requests():
    so = render_autoscaler(md_body(autoscaling=keda(0)), activator_url=ACTIVATOR + "/")
    assert so is not None
    prometheus, wake = so["spec"]["triggers"]
    assert prometheus["type"] == "prometheus"
    assert wake["type"] == "metrics-api"
    assert wake["metadata"]["url"] == f"{ACTIVATOR}/wake/ml/fraud"
    assert wake["metadata"]["valueLocation"] == "held"
    assert wake["metadata"]["activationTargetValue"] == "0"
    without = render_autoscaler(md_body(autoscaling=keda(1)), activator_url=ACTIVATOR)
    assert without is not None and len(without["spec"]["triggers"]) == 1


def marked_service(**meta: Any) -> dict[str, Any]:
    base = {
        "name": "fraud",
        "namespace": "ml",
        "uid": "svc-uid",
        "labels": {LABEL_WAKE: "on"},
        "annotations": {ANNOTATION_WAKE_DEPLOYMENT: "fraud"},
        "ownerReferences": [
            {"kind": "ModelDeployment", "name": "fraud", "uid": MD_UID, "controller": True}
        ],
    }
    base.update(meta)
    return {"metadata": base}


def test_a_marked_service_qualifies_only_when_a_model_deployment_controls_it():
    target = wake_target(marked_service())
    assert target is not None
    assert (target.namespace, target.service, target.deployment) == ("ml", "fraud", "fraud")
    assert target.owner_uid == MD_UID
    assert wake_target(marked_service(ownerReferences=[])) is None
    assert wake_target(marked_service(labels={})) is None
    assert wake_target(marked_service(annotations={})) is None
    not_controller = [{"kind": "ModelDeployment", "uid": MD_UID, "controller": False}]
    assert wake_target(marked_service(ownerReferences=not_controller)) is None


def test_the_activator_scales_only_the_deployment_of_the_same_owner():
    owned = {
        "metadata": {
            "ownerReferences": [{"kind": "ModelDeployment", "uid": MD_UID, "controller": True}]
        }
    }
    other = {
        "metadata": {
            "ownerReferences": [
                {"kind": "ModelDeployment", "uid": "someone-else", "controller": True}
            ]
        }
    }
    assert deployment_owned_by(owned, MD_UID)
    assert not deployment_owned_by(other, MD_UID)
    assert not deployment_owned_by({"metadata": {}}, MD_UID)


def pod_slice(*endpoints: tuple[str, bool], port: int = 8000, manager: str = "x") -> dict:
    return {
        "metadata": {"labels": {"endpointslice.kubernetes.io/managed-by": manager}},
        "ports": [{"name": "grpc", "port": 8001}, {"name": "http", "port": port}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in endpoints
        ],
    }


def test_ready_upstreams_skip_unready_pods_bad_addresses_and_the_activator_itself():
    slices = [
        pod_slice(("10.0.0.2", True), ("10.0.0.3", False), ("not-an-ip", True)),
        pod_slice(("10.0.0.9", True), manager=ACTIVATOR_MANAGER),
        pod_slice(("10.0.0.4", True), port=70000),
    ]
    assert ready_upstreams(slices) == [("10.0.0.2", 8000)]
    assert not slice_wanted(ready_upstreams(slices))
    assert slice_wanted(ready_upstreams(slices[1:]))


def test_activator_slice_joins_the_service_by_name_and_port_name():
    target = wake_target(marked_service())
    assert target is not None
    sl = activator_slice(target, "10.201.3.1", 18080)
    assert sl["metadata"]["name"] == "fraud-wake"
    assert sl["metadata"]["labels"] == {
        "kubernetes.io/service-name": "fraud",
        "endpointslice.kubernetes.io/managed-by": ACTIVATOR_MANAGER,
    }
    assert sl["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    assert sl["addressType"] == "IPv4"
    assert sl["ports"] == [{"name": "http", "port": 18080, "protocol": "TCP"}]
    assert activator_slice(target, "fd00::1", 1)["addressType"] == "IPv6"


def test_scaled_to_zero_condition_reasons():
    m = md(autoscaling=keda(0))
    assert scaled_to_zero_condition(m, desired=0, ready=0)[:2] == (True, "WakeOnRequest")
    assert scaled_to_zero_condition(m, desired=1, ready=0)[:2] == (False, "Waking")
    assert scaled_to_zero_condition(m, desired=2, ready=1)[:2] == (False, "Serving")
    assert scaled_to_zero_condition(md(autoscaling=keda(1)), desired=0, ready=0) is None


def test_status_shows_scaled_to_zero_and_waking():
    body = md_body(autoscaling=keda(0))

    def conditions(replicas: int, ready: int) -> dict[str, str]:
        dep = deployment(desired=replicas, replicas=replicas, ready=ready)
        status = derive_status(
            body,
            deployment=dep,
            pods=[],
            events=[],
            autoscaler=None,
            keda_missing=False,
            drift=None,
            now=NOW,
            previous_conditions=None,
        )
        return {c["type"]: f"{c['status']}/{c['reason']}" for c in status["conditions"]}

    assert conditions(0, 0)["ScaledToZero"] == "True/WakeOnRequest"
    assert conditions(1, 0)["ScaledToZero"] == "False/Waking"
    assert conditions(1, 1)["ScaledToZero"] == "False/Serving"
    assert "ScaledToZero" not in {
        c["type"]
        for c in derive_status(
            md_body(),
            deployment=deployment(desired=1, replicas=1, ready=1),
            pods=[],
            events=[],
            autoscaler=None,
            keda_missing=False,
            drift=None,
            now=NOW,
            previous_conditions=None,
        )["conditions"]
    }


def test_slice_points_at_only_its_own_address_and_port():
    own = activator_slice(WakeTarget("ml", "fraud", "svc-uid", "fraud", MD_UID), "10.1.2.3", 8080)
    assert slice_points_at(own, "10.1.2.3", 8080)
    assert not slice_points_at(own, "10.1.2.4", 8080)
    assert not slice_points_at(own, "10.1.2.3", 8081)
    assert not slice_points_at({}, "10.1.2.3", 8080)

"""The ModelDeployment reconcile shell against an in-memory API that records every
call: each scenario's call count is its API budget."""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from modelops.api.kinds import DEPLOYMENT, HPA, SERVICE
from modelops.controllers import indexes as ix
from modelops.controllers.md_reconcile import ModelDeploymentController
from modelops.kube import KubeApi
from modelops.render.md_planner import Settings
from tests.support.fake_kube import FakeKube
from tests.unit.test_render_fixtures import AUTOSCALING, md_body

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
KEY = ("ml", "fraud")


def views_of(kube: FakeKube) -> dict[str, Any]:
    """kopf's indexes as they would be, computed by the real index functions."""
    views: dict[str, Any] = defaultdict(lambda: defaultdict(list))
    watched = [
        (ix.md_index, "ModelDeployment", None),
        (ix.md_deployments, "Deployment", ix.MANAGED),
        (ix.md_services, "Service", ix.MANAGED),
        (ix.md_configmaps, "ConfigMap", ix.MANAGED),
        (ix.md_hpas, "HorizontalPodAutoscaler", ix.MANAGED),
        (ix.md_pdbs, "PodDisruptionBudget", ix.MANAGED),
        (ix.md_pods, "Pod", ix.OWNED_BY_MD),
        (ix.md_replicasets, "ReplicaSet", ix.OWNED_BY_MD),
        (ix.md_claim_templates, "ResourceClaimTemplate", ix.MANAGED),
        (ix.md_claims, "ResourceClaim", ix.OWNED_BY_MD),
    ]
    for (kind, namespace, name), obj in kube.objects.items():
        labels = obj["metadata"].get("labels") or {}
        for fn, kind_name, selector in watched:
            if kind.kind != kind_name or not all(k in labels for k in (selector or {})):
                continue
            result = fn(namespace=namespace, name=name, labels=labels, body=obj)
            for key, value in result.items():
                views[fn.__name__][key].append(value)
        if kind.kind == "TrainingJob":
            views["tj_index"][(namespace, name)].append(obj)
            for key, value in (
                ix.tj_by_md(namespace=namespace, name=name, spec=obj["spec"]) or {}
            ).items():
                views["tj_by_md"][key].append(value)
    return views


class Harness:
    def __init__(self, body: dict[str, Any], kube: FakeKube | None = None) -> None:
        self.kube = kube or FakeKube()
        self.kube.put(body, uid=body["metadata"]["uid"])
        self.controller = ModelDeploymentController(
            kube=self.kube,
            indexes=ix.Indexes({}),
            settings=Settings(operator_image="modelops:test"),
            clock=lambda: NOW,
        )

    def reconcile(self):
        self.controller.indexes = ix.Indexes(views_of(self.kube))
        self.kube.reset_calls()
        return self.controller.reconcile(KEY)

    def status(self) -> dict[str, Any]:
        return self.kube.live(ix_kind("ModelDeployment"), *KEY)["status"]

    def ready(self) -> tuple[str, str]:
        cond = next(c for c in self.status()["conditions"] if c["type"] == "Ready")
        return cond["status"], cond["reason"]

    def serve(self, replicas: int = 1) -> None:
        """What the Deployment controller, the scheduler and kubelet would do."""
        dep = self.kube.objects[(DEPLOYMENT, *KEY)]
        generation = dep["metadata"]["generation"]
        dep["spec"]["replicas"] = dep["spec"].get("replicas", replicas)
        want = dep["spec"]["replicas"]
        dep["status"] = {
            "observedGeneration": generation,
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": want,
            "availableReplicas": want,
        }
        version = dep["spec"]["template"]["metadata"]["annotations"]["modelops.io/model-version"]
        owner = replica_set_of(self.kube, dep)
        for i in range(want):
            self.kube.put(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"fraud-abc-{i}",
                        "namespace": "ml",
                        "labels": {
                            "modelops.io/model-deployment": "fraud",
                            "pod-template-hash": owner["hash"],
                        },
                        "annotations": {"modelops.io/model-version": version},
                        "ownerReferences": [owner["ref"]],
                    },
                    "spec": {"nodeName": "gpu-0"},
                    "status": {
                        "phase": "Running",
                        "podIP": f"10.0.0.{i + 1}",
                        "conditions": [
                            {"type": "PodScheduled", "status": "True"},
                            {"type": "Ready", "status": "True"},
                        ],
                    },
                }
            )


def replica_set_of(kube: FakeKube, dep: dict[str, Any]) -> dict[str, Any]:
    """What the Deployment controller does: the current ReplicaSet of the Deployment's
    template (revision = generation here), controlled by it; returns the pods' controller
    reference and template hash."""
    revision = str(dep["metadata"]["generation"])
    dep["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = revision
    name = dep["metadata"]["name"]
    template_hash = f"h{revision}"
    labels = dict(dep["spec"]["template"]["metadata"].get("labels") or {})
    labels["pod-template-hash"] = template_hash
    rs = kube.put(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-{template_hash}",
                "namespace": dep["metadata"]["namespace"],
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": dep["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
        }
    )
    ref = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": rs["metadata"]["name"],
        "uid": rs["metadata"]["uid"],
        "controller": True,
    }
    return {"ref": ref, "hash": template_hash}


def ix_kind(name: str):
    from modelops.api.kinds import KINDS

    return next(k for k in KINDS if k.kind == name)


def test_fake_satisfies_the_kube_protocol():
    assert isinstance(FakeKube(), KubeApi)


def test_from_apply_to_ready_within_the_api_budget():
    h = Harness(md_body(model={"storageUri": "s3://models/fraud", "version": "3"}))
    h.reconcile()
    first = h.kube.count()
    # Deployment and Service: one create-only apply each, then one status patch.
    assert h.kube.count("get") == 0 and h.kube.count("apply") == 2
    assert h.kube.count("patch_status") == 1
    assert h.ready() == ("False", "ModelLoading") or h.ready()[0] == "False"
    h.serve()
    h.reconcile()
    second = h.kube.count()
    assert h.ready() == ("True", "Serving")
    assert h.kube.count("apply") == 0  # nothing changed behind our back
    assert first + second <= 12, h.kube.calls
    h.reconcile()
    assert h.kube.count() == 0  # steady state: no call at all


@pytest.mark.parametrize("kind", [SERVICE, DEPLOYMENT])
def test_deleted_child_is_recreated(kind):
    h = Harness(md_body(model={"storageUri": "s3://models/fraud", "version": "3"}))
    h.reconcile()
    h.serve()
    h.reconcile()
    del h.kube.objects[(kind, *KEY)]
    h.reconcile()
    assert h.kube.live(kind, *KEY) is not None
    assert h.kube.count("apply", kind.kind) == 1


def test_deleted_hpa_is_recreated():
    h = Harness(md_body(autoscaling=AUTOSCALING))
    h.reconcile()
    h.serve(2)
    h.reconcile()
    del h.kube.objects[(HPA, *KEY)]
    h.reconcile()
    assert h.kube.live(HPA, *KEY) is not None


def test_hand_made_service_of_the_same_name_is_reported_not_taken_over():
    h = Harness(md_body())
    h.kube.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "fraud", "namespace": "ml"},
            "spec": {"ports": [{"port": 1234}]},
        },
        uid="hand-made",
    )
    result = h.reconcile()
    live = h.kube.live(SERVICE, *KEY)
    assert live["spec"] == {"ports": [{"port": 1234}]}  # untouched
    assert "ownerReferences" not in live["metadata"]
    assert h.ready()[1] == "OwnershipConflict"
    stalled = next(c for c in h.status()["conditions"] if c["type"] == "Stalled")
    assert "Service ml/fraud" in stalled["message"] and stalled["status"] == "True"
    assert result.failed  # retried with back-off
    assert h.kube.live(DEPLOYMENT, *KEY) is not None  # the rest is still applied


def test_own_status_write_is_recognised_so_its_echo_is_not_reconciled():
    h = Harness(md_body())
    h.reconcile()
    rv = h.kube.live(ix_kind("ModelDeployment"), *KEY)["metadata"]["resourceVersion"]
    assert h.controller.delivered(KEY, rv)
    assert not h.controller.delivered(KEY, "another")


DRA_GPU = {
    "count": 1,
    "allocation": "DRA",
    "alternatives": [{"name": "h100", "product": "NVIDIA H100 80GB HBM3"}],
}


def test_dra_claim_template_is_applied_once_and_the_allocation_reaches_status():
    h = Harness(md_body(resources={"gpu": DRA_GPU, "cpu": "2", "memory": "8Gi"}))
    h.reconcile()
    assert h.kube.count("apply", "ResourceClaimTemplate") == 1
    assert h.kube.count("discovery") == 1  # is resource.k8s.io/v1 served? (cached after)
    h.serve()
    # The resource-claim controller's claim and the pod status naming it.
    pod = h.kube.objects[(ix_kind("Pod"), "ml", "fraud-abc-0")]
    pod["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "c-0"}]
    h.kube.put(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {
                "name": "c-0",
                "namespace": "ml",
                "labels": {"modelops.io/model-deployment": "fraud"},
            },
            "status": {
                "allocation": {
                    "devices": {
                        "results": [
                            {"request": "gpu/h100", "pool": "n", "device": "gpu-0", "driver": "d"}
                        ]
                    }
                }
            },
        }
    )
    h.reconcile()
    assert h.status()["gpu"]["allocated"][0]["alternative"] == "h100"
    assert h.kube.count("apply") == 0
    h.reconcile()
    assert h.kube.count() == 0  # steady state: no call at all


def test_dra_on_a_cluster_that_does_not_serve_it_applies_nothing():
    from modelops.api.kinds import KINDS, RESOURCE_CLAIM_TEMPLATE, SCALED_OBJECT

    kube = FakeKube(served=set(KINDS) - {SCALED_OBJECT, RESOURCE_CLAIM_TEMPLATE})
    h = Harness(md_body(resources={"gpu": DRA_GPU, "cpu": "2", "memory": "8Gi"}), kube)
    h.reconcile()
    assert h.kube.count("apply") == 0
    stalled = next(c for c in h.status()["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "DRANotServed")


def test_a_store_behind_our_status_write_causes_no_second_write_or_event():
    """A reconcile woken before the watch delivered our last status patch (a pod event,
    a requeue) decides on what the patch returned: it does not derive the same
    transition again from the older status, nor post its events twice
    (controllers/own_status.py)."""
    h = Harness(md_body(model={"storageUri": "s3://models/fraud", "version": "3"}))
    h.reconcile()
    h.serve()
    stale = copy.deepcopy(h.kube.live(ix_kind("ModelDeployment"), *KEY))
    h.reconcile()
    assert h.ready() == ("True", "Serving")
    assert h.kube.count("patch_status") == 1 and h.kube.count("create_event") >= 1

    def reconcile_with_stale_store() -> None:
        views = views_of(h.kube)
        views["md_index"][KEY] = [ix.md_index(namespace="ml", name="fraud", body=stale)[KEY]]
        h.controller.indexes = ix.Indexes(views)
        h.kube.reset_calls()
        h.controller.reconcile(KEY)

    reconcile_with_stale_store()
    assert h.kube.count("patch_status") == 0, h.kube.calls
    assert h.kube.count("create_event") == 0, h.kube.calls
    # A controller that has not written (a restart) believes the store, as it must.
    h.controller = ModelDeploymentController(
        kube=h.kube,
        indexes=ix.Indexes({}),
        settings=Settings(operator_image="modelops:test"),
        clock=lambda: NOW,
    )
    reconcile_with_stale_store()
    assert h.kube.count("patch_status") == 1

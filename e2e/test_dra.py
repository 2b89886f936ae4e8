"""GPUs through Dynamic Resource Allocation, end to end: the operator (a local
process with the RBAC of manifests/) against the real control plane, whose
kube-scheduler allocates the claims against the ResourceSlices of the local
cluster's DRA pools (hack/cluster/dra.yaml: dra-h100-0 with 2 H100,
dra-l4-0 with 4 L4); the resource-claim controller of kube-controller-manager
makes and deletes the claims; KWOK runs the pods.

The pools are small and shared by the tests of this file, so each test starts
once no claim holds a device from an earlier one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready

pytestmark = pytest.mark.cluster

H100 = {"name": "h100", "product": "NVIDIA H100 80GB HBM3"}
TWO_L4 = {"name": "l4", "count": 2, "product": "NVIDIA L4", "minMemory": "20Gi"}
CLAIMS = ("resource.k8s.io", "v1", "resourceclaims")


def md(name: str, alternatives: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": f"file:///models/{name}", "version": "1"},
            "resources": {
                "gpu": {"allocation": "DRA", "alternatives": alternatives},
                "cpu": "1",
                "memory": "2Gi",
            },
        },
    }
    body["spec"].update(spec)
    return body


def _allocated_claims(cluster: Cluster) -> list[dict[str, Any]]:
    listed = cluster.custom.list_cluster_custom_object(*CLAIMS)
    return [c for c in listed["items"] if (c.get("status") or {}).get("allocation")]


@pytest.fixture(scope="module", autouse=True)
def dra_pools(cluster: Cluster) -> None:
    """These tests need the local cluster's DRA pools; another cluster (kind, a real
    one) may have no NVIDIA DRA driver, or other GPUs."""
    slices = cluster.custom.list_cluster_custom_object("resource.k8s.io", "v1", "resourceslices")
    nodes = {(s.get("spec") or {}).get("nodeName") for s in slices["items"]}
    if not {"dra-h100-0", "dra-l4-0"} <= nodes:
        pytest.skip("no DRA pools of hack/cluster/dra.yaml in this cluster")


@pytest.fixture(autouse=True)
def free_pools(cluster: Cluster) -> Iterator[None]:
    """Wait until the devices of earlier tests (namespaces still going away) are free."""
    wait_for(lambda: not _allocated_claims(cluster), timeout=120, what="free DRA pools")
    yield


def _claims_of(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return cluster.custom.list_namespaced_custom_object(
        *CLAIMS[:2], namespace, CLAIMS[2], label_selector=f"modelops.io/model-deployment={name}"
    )["items"]


def _gpu_rows(cluster: Cluster, namespace: str, name: str, count: int) -> dict[str, Any]:
    """The ModelDeployment once status.gpu lists ``count`` allocated pods and it is Ready."""

    def reported() -> dict | None:
        live = get_md(cluster, namespace, name)
        rows = ((live.get("status") or {}).get("gpu") or {}).get("allocated") or []
        ready = condition(live, "Ready").get("status") == "True"
        return live if len(rows) == count and ready else None

    return wait_for(reported, timeout=120, what=f"status.gpu with {count} allocated pods")


def test_the_preferred_product_is_allocated_and_status_names_it(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("pref", [H100, TWO_L4]), namespace)
    live = _gpu_rows(cluster, namespace, "pref", 1)

    gpu = live["status"]["gpu"]
    assert gpu["allocation"] == "DRA"
    [row] = gpu["allocated"]
    assert row["alternative"] == "h100"
    assert row["devices"][0].startswith("dra-h100-0/gpu-")
    assert gpu["summary"] == "h100: 1"
    assert live["status"]["gpus"] == 1

    [pod] = [
        p
        for p in cluster.core.list_namespaced_pod(
            namespace, label_selector="modelops.io/model-deployment=pref"
        ).items
        if not p.metadata.deletion_timestamp
    ]
    assert pod.metadata.name == row["pod"]
    assert pod.spec.node_name == "dra-h100-0"
    triton = pod.spec.containers[0]
    assert "nvidia.com/gpu" not in (triton.resources.limits or {})
    assert [c.name for c in triton.resources.claims] == ["gpu"]
    template = cluster.custom.get_namespaced_custom_object(
        "resource.k8s.io", "v1", namespace, "resourceclaimtemplates", "pref"
    )
    assert template["metadata"]["ownerReferences"][0]["uid"] == live["metadata"]["uid"]


def test_the_alternative_is_allocated_when_the_preferred_pool_is_full(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    # Three replicas, two H100 in the cluster: the third replica gets two L4.
    cluster.apply(md("fallback", [H100, TWO_L4], replicas=3), namespace)
    live = _gpu_rows(cluster, namespace, "fallback", 3)

    gpu = live["status"]["gpu"]
    assert gpu["summary"] == "h100: 2, l4: 1"
    [l4] = [r for r in gpu["allocated"] if r["alternative"] == "l4"]
    assert len(l4["devices"]) == 2
    assert all(d.startswith("dra-l4-0/") for d in l4["devices"])
    assert live["status"]["gpus"] == 4
    pod = cluster.core.read_namespaced_pod(l4["pod"], namespace)
    assert pod.spec.node_name == "dra-l4-0"


def test_neither_alternative_fits_and_the_conditions_say_why(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    # More devices than either pool has.
    too_many = [{**H100, "count": 4}, {**TWO_L4, "count": 8}]
    cluster.apply(md("nofit", too_many), namespace)

    def unschedulable() -> dict | None:
        live = get_md(cluster, namespace, "nofit")
        return live if condition(live, "Scheduled").get("status") == "False" else None

    live = wait_for(unschedulable, timeout=90, what="Scheduled=False from the scheduler")
    scheduled = condition(live, "Scheduled")
    assert scheduled["reason"] == "Unschedulable"
    assert "cannot allocate all claims" in scheduled["message"]
    assert condition(live, "Ready")["status"] == "False"
    assert (live["status"].get("gpu") or {}).get("allocated") == []
    # The claim exists (made from the template) but holds nothing.
    [claim] = _claims_of(cluster, namespace, "nofit")
    assert not (claim.get("status") or {}).get("allocation")


def test_claims_are_released_when_the_model_deployment_is_deleted(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("gone", [H100, TWO_L4], replicas=2), namespace)
    _gpu_rows(cluster, namespace, "gone", 2)
    assert len(_claims_of(cluster, namespace, "gone")) == 2

    cluster.custom.delete_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "modeldeployments", "gone"
    )
    wait_for(
        lambda: not _claims_of(cluster, namespace, "gone"),
        timeout=120,
        what="the claims to be deleted with their pods",
    )
    templates = cluster.custom.list_namespaced_custom_object(
        "resource.k8s.io", "v1", namespace, "resourceclaimtemplates"
    )["items"]
    assert templates == []


def test_gpu_safe_rollout_completes_on_a_full_dra_pool(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    # One replica with both H100s: a surge pod cannot get a device, so the
    # operator switches to replace-in-place after surgeTimeoutSeconds.
    def full(version: str) -> dict[str, Any]:
        return md(
            "full",
            [{**H100, "count": 2}],
            model={"storageUri": "file:///models/full", "version": version},
            rollout={"maxSurge": 1, "maxUnavailable": 0, "surgeTimeoutSeconds": 3},
        )

    cluster.apply(full("1"), namespace)
    wait_ready(cluster, namespace, "full")
    cluster.apply(full("2"), namespace)

    def rolled() -> dict | None:
        live = get_md(cluster, namespace, "full")
        done = live.get("status", {}).get("servedVersion") == "2"
        rows = ((live.get("status") or {}).get("gpu") or {}).get("allocated") or []
        ready = condition(live, "Ready").get("status") == "True"
        return live if done and ready and len(rows) == 1 else None

    live = wait_for(rolled, timeout=150, what="the rollout to finish on the full DRA pool")
    [row] = live["status"]["gpu"]["allocated"]
    assert row["alternative"] == "h100"
    assert len(row["devices"]) == 2


def test_changing_the_alternatives_replaces_the_template_and_rolls_the_pods(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("switch", [H100]), namespace)
    before = _gpu_rows(cluster, namespace, "switch", 1)["status"]["gpu"]["allocated"][0]
    assert before["alternative"] == "h100"

    # A template's spec is immutable: the operator deletes and re-creates it.
    cluster.apply(md("switch", [TWO_L4]), namespace)

    def on_l4() -> dict | None:
        live = get_md(cluster, namespace, "switch")
        rows = ((live.get("status") or {}).get("gpu") or {}).get("allocated") or []
        ready = condition(live, "Ready").get("status") == "True"
        return live if ready and [r["alternative"] for r in rows] == ["l4"] else None

    live = wait_for(on_l4, timeout=150, what="the pods to roll onto the new alternative")
    [row] = live["status"]["gpu"]["allocated"]
    assert row["pod"] != before["pod"]
    assert len(row["devices"]) == 2
    assert condition(live, "Stalled").get("status") != "True"


def _training(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "nodes": 2,
            "procsPerNode": 2,
            "resources": {
                "gpu": {"allocation": "DRA", "alternatives": [TWO_L4]},
                "cpu": "1",
                "memory": "2Gi",
            },
            "dataset": {"uri": "file:///data/tabular.npz"},
            "output": {"storageUri": "file:///models/tabular"},
            "backoffLimit": 0,
            # The simulated pods keep running (hack/cluster/stages.yaml).
            "podMetadata": {"annotations": {"sim.modelops.io/result": "Hold"}},
        },
    }
    body["spec"].update(spec)
    return body


def test_a_training_job_gets_one_claim_per_node_all_on_the_same_product(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(_training("train"), namespace)

    def running() -> list[dict[str, Any]] | None:
        claims = cluster.custom.list_namespaced_custom_object(
            *CLAIMS[:2], namespace, CLAIMS[2], label_selector="modelops.io/training-job=train"
        )["items"]
        allocated = [c for c in claims if (c.get("status") or {}).get("allocation")]
        pods = cluster.core.list_namespaced_pod(
            namespace, label_selector="modelops.io/training-job=train"
        ).items
        up = [p for p in pods if p.status.phase == "Running"]
        return allocated if len(allocated) == 2 and len(up) == 2 else None

    claims = wait_for(running, timeout=120, what="both nodes running with allocated claims")
    results = [c["status"]["allocation"]["devices"]["results"] for c in claims]
    assert all(len(r) == 2 for r in results)
    assert {d["request"] for r in results for d in r} == {"gpu/l4"}
    assert {d["pool"] for r in results for d in r} == {"dra-l4-0"}
    devices = [d["device"] for r in results for d in r]
    assert len(set(devices)) == 4  # one claim per pod, no device shared
    wait_for(
        lambda: _tj_status(cluster, namespace, "train").get("gpus") == 4,
        timeout=60,
        what="status.gpus of both nodes",
    )

    # The run ends (the simulated pods succeed): the claims go with the finished pods.
    # (Ending it, rather than deleting the namespace, matters here: KWOK does not drop
    # the Job-tracking finalizer of a running pod whose Job is gone.)
    for pod in cluster.core.list_namespaced_pod(
        namespace, label_selector="modelops.io/training-job=train"
    ).items:
        cluster.core.patch_namespaced_pod(
            pod.metadata.name,
            namespace,
            {"metadata": {"annotations": {"sim.modelops.io/result": "Succeeded"}}},
        )
    wait_for(
        lambda: (
            not [
                c
                for c in cluster.custom.list_namespaced_custom_object(
                    *CLAIMS[:2], namespace, CLAIMS[2]
                )["items"]
                if (c.get("status") or {}).get("allocation")
            ]
        ),
        timeout=90,
        what="the finished nodes' devices to be released",
    )


def _tj_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    live = cluster.custom.get_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "trainingjobs", name
    )
    return live.get("status") or {}


def test_a_queued_training_job_holds_no_devices_until_admitted(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    # No Kueue runs here: the Job stays suspended, as Kueue leaves it until admission.
    cluster.apply(_training("queued", queueName="gpu-queue"), namespace)

    def suspended() -> bool:
        jobs = cluster.batch.list_namespaced_job(namespace).items  # none until the operator acts
        return any(j.metadata.name == "queued-a0" and j.spec.suspend for j in jobs)

    wait_for(suspended, timeout=60, what="the suspended Job")
    template = cluster.custom.get_namespaced_custom_object(
        "resource.k8s.io", "v1", namespace, "resourceclaimtemplates", "queued"
    )
    assert template["metadata"]["labels"]["modelops.io/training-job"] == "queued"
    assert not cluster.core.list_namespaced_pod(
        namespace, label_selector="modelops.io/training-job=queued"
    ).items
    assert not cluster.custom.list_namespaced_custom_object(*CLAIMS[:2], namespace, CLAIMS[2])[
        "items"
    ]

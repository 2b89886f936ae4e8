"""The local control plane is a real Kubernetes: scheduling, taints, garbage
collection, Pod Security admission and Job pods behave as upstream does."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from tests.support.cluster import Cluster, fresh_namespace, wait_for

pytestmark = pytest.mark.cluster

PAUSE = "registry.k8s.io/pause:3.10"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(name: str, *, gpus: int = 0, tolerate_gpu: bool = False, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": PAUSE}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }
    if tolerate_gpu:
        body["spec"]["tolerations"] = [GPU_TOLERATION]
    return body


def deployment(name: str, replicas: int, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def test_gpu_nodes_are_registered(cluster: Cluster) -> None:
    nodes = cluster.core.list_node(label_selector="nvidia.com/gpu.present=true").items
    assert len(nodes) >= 4
    for node in nodes:
        assert int(node.status.allocatable["nvidia.com/gpu"]) > 0
        assert node.metadata.labels["nvidia.com/gpu.product"]
        assert any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule" for t in node.spec.taints)
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True"


def test_pod_needing_more_gpus_than_any_node_stays_pending(cluster: Cluster, namespace: str):
    cluster.apply(pod("greedy", gpus=9, tolerate_gpu=True), namespace)

    def failed_scheduling() -> str | None:
        events = cluster.core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=greedy,reason=FailedScheduling"
        ).items
        return events[0].message if events else None

    message = wait_for(failed_scheduling, timeout=60, what="a FailedScheduling event")
    assert "nvidia.com/gpu" in message
    live = cluster.core.read_namespaced_pod("greedy", namespace)
    assert live.status.phase == "Pending"
    assert live.spec.node_name is None


def test_gpu_pod_fits_and_runs(cluster: Cluster, namespace: str):
    cluster.apply(pod("fits", gpus=8, tolerate_gpu=True), namespace)
    live = wait_for(
        lambda: (
            (p := cluster.core.read_namespaced_pod("fits", namespace)).status.phase == "Running"
            and p
        ),
        what="the 8-GPU pod to run",
    )
    node = cluster.core.read_node(live.spec.node_name)
    assert int(node.status.allocatable["nvidia.com/gpu"]) >= 8


def _pods_on_nodes(cluster: Cluster, namespace: str, app: str, count: int) -> list[str]:
    def scheduled() -> list[str] | None:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
        nodes = [p.spec.node_name for p in pods if p.status.phase == "Running"]
        return nodes if len(nodes) == count else None

    return wait_for(scheduled, timeout=90, what=f"{count} running pods of {app}")


def test_pods_land_only_on_nodes_whose_taint_they_tolerate(cluster: Cluster, namespace: str):
    plain = {"containers": [{"name": "main", "image": PAUSE}]}
    cluster.apply(deployment("cpu-only", 6, plain), namespace)
    for node_name in _pods_on_nodes(cluster, namespace, "cpu-only", 6):
        labels = cluster.core.read_node(node_name).metadata.labels
        assert "nvidia.com/gpu.present" not in labels, f"untolerating pod placed on {node_name}"

    gpu_spec = {
        "containers": [
            {"name": "main", "image": PAUSE, "resources": {"limits": {"nvidia.com/gpu": "1"}}}
        ],
        "tolerations": [GPU_TOLERATION],
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"},
    }
    cluster.apply(deployment("on-l4", 2, gpu_spec), namespace)
    for node_name in _pods_on_nodes(cluster, namespace, "on-l4", 2):
        labels = cluster.core.read_node(node_name).metadata.labels
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"


def test_deleting_an_owner_garbage_collects_its_dependents(cluster: Cluster, namespace: str):
    spec = {"containers": [{"name": "main", "image": PAUSE}]}
    cluster.apply(deployment("owned", 2, spec), namespace)
    _pods_on_nodes(cluster, namespace, "owned", 2)
    assert cluster.apps.list_namespaced_replica_set(namespace, label_selector="app=owned").items

    cluster.apps.delete_namespaced_deployment("owned", namespace, propagation_policy="Background")

    def all_gone() -> bool:
        rs = cluster.apps.list_namespaced_replica_set(namespace, label_selector="app=owned").items
        pods = cluster.core.list_namespaced_pod(namespace, label_selector="app=owned").items
        return not rs and not pods

    wait_for(all_gone, timeout=90, what="the ReplicaSet and pods to be collected")


def test_restricted_pod_security_refuses_a_violating_pod(cluster: Cluster):
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    for ns in fresh_namespace(cluster, labels=restricted):
        with pytest.raises(kubernetes.client.ApiException) as refused:
            cluster.core.create_namespaced_pod(ns, pod("privileged"))
        assert refused.value.status == 403
        assert "violates PodSecurity" in refused.value.body
        assert "restricted" in refused.value.body

        compliant = pod("compliant")
        compliant["spec"]["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        compliant["spec"]["containers"][0]["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        cluster.core.create_namespaced_pod(ns, compliant)


@pytest.mark.parametrize(("result", "expected"), [("Succeeded", "Complete"), ("Failed", "Failed")])
def test_job_pods_finish_as_the_test_chooses(
    cluster: Cluster, namespace: str, result: str, expected: str
):
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "run"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"sim.modelops.io/result": result}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": PAUSE}],
                },
            },
        },
    }
    cluster.apply(job, namespace)

    def finished() -> str | None:
        conditions = cluster.batch.read_namespaced_job_status("run", namespace).status.conditions
        done = [c.type for c in conditions or [] if c.status == "True"]
        return next((t for t in done if t in ("Complete", "Failed")), None)

    assert wait_for(finished, timeout=90, what="the Job to finish") == expected

"""TrainingJob end to end: Indexed Job + rendezvous Service, honest Running,
whole-group restart, suspension, and finished children left alone."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition

pytestmark = pytest.mark.cluster


def tj(name: str, *, result: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "nodes": 2,
            "procsPerNode": 1,
            # Kept off the small L4 pool, which the full-pool rollout test fills.
            "resources": {
                "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"},
                "cpu": "1",
                "memory": "2Gi",
            },
            "dataset": {"uri": "file:///data/tabular.npz"},
            "output": {"storageUri": "file:///models/tabular"},
            "backoffLimit": 1,
        },
    }
    if result:
        # The simulated pods finish as this annotation says (hack/cluster/stages.yaml).
        body["spec"]["podMetadata"] = {"annotations": {"sim.modelops.io/result": result}}
    body["spec"].update(spec)
    return body


def get_tj(cluster: Cluster, namespace: str, name: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "trainingjobs", name
    )


def wait_condition(cluster: Cluster, namespace: str, name: str, ctype: str, timeout: float = 90):
    def probe() -> dict | None:
        live = get_tj(cluster, namespace, name)
        return live if condition(live, ctype).get("status") == "True" else None

    return wait_for(probe, timeout=timeout, what=f"TrainingJob {name} {ctype}=True")


def pods_of(cluster: Cluster, namespace: str, job: str) -> list:
    return cluster.core.list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
    ).items


def test_indexed_job_with_rendezvous_and_running_only_when_all_nodes_run(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(tj("hold", result="Hold"), namespace)
    live = wait_condition(cluster, namespace, "hold", "Running")

    job = cluster.batch.read_namespaced_job("hold-a0", namespace)
    assert job.spec.completion_mode == "Indexed"
    assert job.spec.completions == job.spec.parallelism == 2
    service = cluster.core.read_namespaced_service("hold-workers", namespace)
    assert service.spec.cluster_ip == "None"
    pods = pods_of(cluster, namespace, "hold-a0")
    assert len(pods) == 2 and all(p.status.phase == "Running" for p in pods)
    env = {e.name: e for e in pods[0].spec.containers[0].env}
    assert env["MASTER_ADDR"].value == "hold-a0-0.hold-workers"
    assert env["NNODES"].value == "2"
    assert live["status"]["phase"] == "Running"

    for pod in pods:
        cluster.core.patch_namespaced_pod(
            pod.metadata.name,
            namespace,
            {"metadata": {"annotations": {"sim.modelops.io/result": "Succeeded"}}},
        )
    done = wait_condition(cluster, namespace, "hold", "Succeeded")
    assert condition(done, "Running")["status"] == "False"
    assert condition(done, "Ready")["status"] == "True"
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"].get("completionTime")


def test_a_failed_worker_restarts_the_whole_group_then_fails_naming_the_rank(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(tj("flaky", result="Failed", backoffLimit=1), namespace)
    failed = wait_condition(cluster, namespace, "flaky", "Failed", timeout=120)

    jobs = {j.metadata.name for j in cluster.batch.list_namespaced_job(namespace).items}
    assert {"flaky-a0", "flaky-a1"} <= jobs, "the group was not restarted as a new attempt"
    assert failed["status"]["restarts"] == 1
    assert condition(failed, "Stalled")["status"] == "True"
    failures = failed["status"]["failedPods"]
    assert failures and all("rank" in f for f in failures)
    assert any(f.get("exitCode") == 1 for f in failures)
    assert "rank" in condition(failed, "Failed")["message"]


def test_suspended_job_has_no_pods_until_resumed(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    # With a queueName the Job starts suspended until Kueue admits it.
    cluster.apply(tj("queued", result="Hold", queueName="gpu-queue"), namespace)
    live = wait_condition(cluster, namespace, "queued", "Suspended")
    assert live["status"]["phase"] == "Suspended"
    job = cluster.batch.read_namespaced_job("queued-a0", namespace)
    assert job.spec.suspend is True
    assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    time.sleep(2)
    assert not pods_of(cluster, namespace, "queued-a0")

    # What Kueue does on admission: un-suspend the Job.
    cluster.batch.patch_namespaced_job("queued-a0", namespace, {"spec": {"suspend": False}})
    wait_condition(cluster, namespace, "queued", "Running")


def test_finished_children_deleted_by_ttl_are_not_recreated(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(tj("short", nodes=1), namespace)
    wait_condition(cluster, namespace, "short", "Succeeded")
    # The TTL controller deletes a finished Job through the same API call;
    # the operator must take the TrainingJob as finished, not start it again.
    cluster.batch.delete_namespaced_job("short-a0", namespace, propagation_policy="Background")
    time.sleep(5)
    jobs = [j.metadata.name for j in cluster.batch.list_namespaced_job(namespace).items]
    assert jobs == []
    assert condition(get_tj(cluster, namespace, "short"), "Succeeded")["status"] == "True"

"""ModelDeployment end to end: the operator (as a local process, with the RBAC
of manifests/) against the real control plane with simulated GPU nodes."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
import yaml
from tests.support.cluster import REPO, Cluster, fresh_namespace, wait_for
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready

pytestmark = pytest.mark.cluster

SAMPLE = REPO / "manifests" / "samples" / "modeldeployment.yaml"
H100 = "NVIDIA-H100-80GB-HBM3"


def md(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": f"file:///models/{name}", "version": "1"},
            "resources": {"gpu": {"count": 1, "product": H100}, "cpu": "1", "memory": "2Gi"},
        },
    }
    body["spec"].update(spec)
    return body


def children(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    selector = f"modelops.io/model-deployment={name}"
    return {
        "deployments": cluster.apps.list_namespaced_deployment(
            namespace, label_selector=selector
        ).items,
        "services": cluster.core.list_namespaced_service(namespace, label_selector=selector).items,
        "pods": cluster.core.list_namespaced_pod(namespace, label_selector=selector).items,
    }


def test_sample_reaches_ready_on_gpu_nodes_of_the_requested_product(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    sample = yaml.safe_load(SAMPLE.read_text())
    cluster.apply(sample, namespace)
    live = wait_ready(cluster, namespace, sample["metadata"]["name"])

    product = sample["spec"]["resources"]["gpu"]["product"]
    pods = children(cluster, namespace, sample["metadata"]["name"])["pods"]
    assert pods
    for pod in pods:
        node = cluster.core.read_node(pod.spec.node_name)
        assert node.metadata.labels.get("nvidia.com/gpu.product") == product
        limits = pod.spec.containers[0].resources.limits
        assert limits["nvidia.com/gpu"] == str(sample["spec"]["resources"]["gpu"]["count"])
    status = live["status"]
    assert status["readyReplicas"] >= 1
    assert status["endpoints"]["http"].startswith(f"http://{sample['metadata']['name']}.")
    printed = cluster.kubectl("get", "md", "-n", namespace).stdout
    assert "True" in printed and sample["metadata"]["name"] in printed


def test_more_gpus_than_any_node_has_is_not_ready_and_says_why(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    greedy = md("greedy")
    greedy["spec"]["resources"]["gpu"] = {"count": 12, "product": H100}
    cluster.apply(greedy, namespace)

    def stalled() -> dict | None:
        live = get_md(cluster, namespace, "greedy")
        return live if condition(live, "Stalled").get("status") == "True" else None

    live = wait_for(stalled, timeout=90, what="Stalled with the scheduler's reason")
    assert condition(live, "Ready")["status"] == "False"
    assert "nvidia.com/gpu" in condition(live, "Stalled")["message"]
    assert condition(live, "Scheduled")["status"] == "False"
    assert operator.proc is not None and operator.proc.poll() is None, "operator died"
    reasons = cluster.core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=greedy,involvedObject.kind=ModelDeployment"
    ).items
    assert any(e.type == "Warning" for e in reasons)


def test_spec_change_rolls_out_and_observed_generation_follows(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("roll"), namespace)
    first = wait_ready(cluster, namespace, "roll")
    assert first["status"]["servedVersion"] == "1"

    cluster.apply(
        md("roll", model={"storageUri": "file:///models/roll", "version": "2"}), namespace
    )
    second = wait_for(
        lambda: (
            (m := wait_ready(cluster, namespace, "roll"))["status"].get("servedVersion") == "2"
            and m
        ),
        timeout=90,
        what="version 2 served",
    )
    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert second["status"]["observedGeneration"] == second["metadata"]["generation"]
    template = cluster.apps.read_namespaced_deployment("roll", namespace).spec.template
    assert template.metadata.annotations["modelops.io/model-version"] == "2"


def test_deleting_the_model_deployment_removes_every_child(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("doomed"), namespace)
    wait_ready(cluster, namespace, "doomed")
    assert all(children(cluster, namespace, "doomed").values())

    cluster.kubectl("delete", "md", "doomed", "-n", namespace, "--wait=true")
    wait_for(
        lambda: not any(children(cluster, namespace, "doomed").values()),
        timeout=90,
        what="Deployment, Service and pods garbage-collected",
    )


def test_pods_are_admitted_where_restricted_pod_security_is_enforced(
    cluster: Cluster, operator: OperatorProcess
):
    for ns in fresh_namespace(cluster, {"pod-security.kubernetes.io/enforce": "restricted"}):
        cluster.apply(
            md(
                "strict",
                driftMonitor={
                    "enabled": True,
                    "reference": {"uri": "file:///models/strict/reference.json"},
                },
            ),
            ns,
        )
        wait_ready(cluster, ns, "strict")
        pods = children(cluster, ns, "strict")["pods"]
        assert pods and all(p.status.phase == "Running" for p in pods)


def test_rollout_on_a_full_gpu_pool_completes(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    # The single L4 node has 4 GPUs; one replica takes all of them, so the
    # surge pod of a rolling update can never be scheduled (kserve#4618).
    def full(version: str) -> dict[str, Any]:
        return md(
            "full",
            model={"storageUri": "file:///models/full", "version": version},
            resources={"gpu": {"count": 4, "product": "NVIDIA-L4"}, "cpu": "1", "memory": "2Gi"},
            rollout={"maxSurge": 1, "maxUnavailable": 0, "surgeTimeoutSeconds": 3},
        )

    cluster.apply(full("1"), namespace)
    wait_ready(cluster, namespace, "full")
    cluster.apply(full("2"), namespace)

    def rolled() -> dict | None:
        live = get_md(cluster, namespace, "full")
        done = live.get("status", {}).get("servedVersion") == "2"
        return live if done and condition(live, "Ready").get("status") == "True" else None

    live = wait_for(rolled, timeout=120, what="the rollout to finish on the full pool")
    pods = [
        p for p in children(cluster, namespace, "full")["pods"] if not p.metadata.deletion_timestamp
    ]
    assert len(pods) == 1
    assert pods[0].metadata.annotations["modelops.io/model-version"] == "2"
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"]


def test_kubectl_rollout_restart_is_not_reverted(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("restart"), namespace)
    wait_ready(cluster, namespace, "restart")
    before = {p.metadata.name for p in children(cluster, namespace, "restart")["pods"]}

    cluster.kubectl("rollout", "restart", "deployment/restart", "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/restart", "-n", namespace, "--timeout=90s")
    # Give the operator every chance to (wrongly) re-apply its template.
    cluster.apply(md("restart", replicas=1), namespace)
    time.sleep(3)
    wait_ready(cluster, namespace, "restart")

    template = cluster.apps.read_namespaced_deployment("restart", namespace).spec.template
    assert "kubectl.kubernetes.io/restartedAt" in (template.metadata.annotations or {})
    after = {
        p.metadata.name
        for p in children(cluster, namespace, "restart")["pods"]
        if not p.metadata.deletion_timestamp
    }
    assert after and after.isdisjoint(before)


def test_converged_reconcile_makes_zero_writes(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("steady"), namespace)
    wait_ready(cluster, namespace, "steady")
    time.sleep(2)

    def versions() -> dict[str, str]:
        kinds = children(cluster, namespace, "steady")
        out = {
            f"{k}/{o.metadata.name}": o.metadata.resource_version
            for k, v in kinds.items()
            for o in v
        }
        out["md"] = get_md(cluster, namespace, "steady")["metadata"]["resourceVersion"]
        return out

    before = versions()
    # A restart makes the operator re-list everything and reconcile afresh.
    operator.stop()
    operator.start()
    wait_for(
        lambda: (
            operator.metric("modelops_reconcile_duration_seconds_count", kind="ModelDeployment") > 0
        ),
        what="the restarted operator to reconcile",
    )
    time.sleep(3)
    # It did re-apply every child after the restart (no memory of earlier
    # applies), and server-side apply of unchanged objects wrote nothing.
    assert operator.metric("modelops_api_requests_total", verb="apply") > 0
    assert versions() == before


def test_operator_killed_mid_rollout_converges_without_duplicates(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    names = [f"fleet-{i}" for i in range(20)]
    for name in names:
        cluster.apply(
            md(name, resources={"gpu": {"count": 1}, "cpu": "100m", "memory": "128Mi"}), namespace
        )
    time.sleep(1.0)
    operator.kill()
    operator.start()
    for name in names:
        wait_ready(cluster, namespace, name, timeout=180)
    deployments = cluster.apps.list_namespaced_deployment(namespace).items
    assert sorted(d.metadata.name for d in deployments) == sorted(names)
    services = cluster.core.list_namespaced_service(namespace).items
    assert sorted(s.metadata.name for s in services) == sorted(names)


def test_keda_crd_installed_after_start_is_picked_up_without_restart(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    keda = md(
        "keda",
        autoscaling={
            "engine": "keda",
            "minReplicas": 0,
            "maxReplicas": 3,
            "metric": {"type": "queue-time", "target": 1000},
        },
    )
    cluster.apply(keda, namespace)

    def reason() -> str | None:
        return condition(get_md(cluster, namespace, "keda"), "AutoscalerReady").get("reason")

    assert wait_for(
        lambda: reason() == "KEDANotInstalled" and reason(),
        timeout=60,
        what="AutoscalerReady=False KEDANotInstalled",
    )
    crd = copy.deepcopy(KEDA_CRD)
    cluster.apply(crd)
    cluster.kubectl("wait", "--for=condition=Established", "crd/scaledobjects.keda.sh")
    try:
        wait_for(
            lambda: cluster.custom.list_namespaced_custom_object(
                "keda.sh", "v1alpha1", namespace, "scaledobjects"
            )["items"],
            timeout=90,
            what="the ScaledObject to be created once KEDA's CRD exists",
        )
    finally:
        cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "--wait=false")


# KEDA's ScaledObject API, reduced to what this test needs: the operator only
# has to see the kind served to start applying ScaledObjects.
KEDA_CRD = yaml.safe_load(
    """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: scaledobjects.keda.sh}
spec:
  group: keda.sh
  scope: Namespaced
  names: {kind: ScaledObject, plural: scaledobjects, singular: scaledobject}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""
)


def test_gitops_diff_of_the_applied_manifest_is_empty_after_reconcile(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path
):
    """What Argo CD / kubectl diff see: the operator wrote nothing the user owns."""
    sample = yaml.safe_load(SAMPLE.read_text())
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump(sample))
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    wait_ready(cluster, namespace, sample["metadata"]["name"])
    diff = cluster.kubectl("diff", "--server-side", "-n", namespace, "-f", str(path), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert diff.stdout == ""
    live = get_md(cluster, namespace, sample["metadata"]["name"])
    managers = {m["manager"]: m.get("subresource") for m in live["metadata"]["managedFields"]}
    assert managers.get("modelops") == "status", f"the operator wrote outside status: {managers}"

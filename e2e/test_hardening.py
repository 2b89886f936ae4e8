"""Every container the operator renders runs with a read-only root filesystem,
and the API server admits the pods in a namespace enforcing Pod Security
"restricted"."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from tests.support.cluster import Cluster, fresh_namespace, wait_for
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.cluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
GPU = {"gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}, "cpu": "1", "memory": "2Gi"}


def _pods(cluster: Cluster, namespace: str, selector: str, count: int) -> list[Any]:
    return wait_for(
        lambda: (
            p
            if len(p := cluster.core.list_namespaced_pod(namespace, label_selector=selector).items)
            >= count
            else None
        ),
        timeout=90,
        what=f"{count} pods {selector}",
    )


def test_rendered_containers_have_read_only_roots_and_pass_restricted(
    cluster: Cluster, operator: OperatorProcess
):
    with contextlib.closing(fresh_namespace(cluster, labels=RESTRICTED)) as namespaces:
        namespace = next(namespaces)
        cluster.apply(
            {
                "apiVersion": "modelops.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "hardened"},
                "spec": {
                    "model": {"storageUri": "s3://models/hardened", "version": "1"},
                    "resources": GPU,
                    # s3:// reference: the fetch-reference init container too.
                    "driftMonitor": {
                        "enabled": True,
                        "reference": {"uri": "s3://models/hardened/reference.json"},
                    },
                },
            },
            namespace,
        )
        cluster.apply(
            {
                "apiVersion": "modelops.io/v1alpha1",
                "kind": "TrainingJob",
                "metadata": {"name": "hardened-tj"},
                "spec": {
                    "nodes": 1,
                    "command": ["torchrun", "train.py"],
                    "resources": GPU,
                    "dataset": {"uri": "s3://data/x.npz"},
                    "output": {"storageUri": "s3://models/hardened"},
                    "podMetadata": {"annotations": {"sim.modelops.io/result": "Hold"}},
                },
            },
            namespace,
        )
        pods = _pods(cluster, namespace, "modelops.io/model-deployment=hardened", 1)
        pods += _pods(cluster, namespace, "modelops.io/training-job=hardened-tj", 1)
        names = set()
        for pod in pods:
            for container in (pod.spec.init_containers or []) + pod.spec.containers:
                names.add(container.name)
                assert container.security_context.read_only_root_filesystem is True, container.name
                mounts = {m.mount_path: m for m in container.volume_mounts}
                assert mounts["/tmp"].name == "scratch", container.name
                assert {e.name: e.value for e in container.env}["HOME"] == "/tmp"
        assert names == {"pull-model", "fetch-reference", "triton", "drift-monitor", "trainer"}

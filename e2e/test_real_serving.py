"""The shipped sample ModelDeployment served by real pods on the real node.

Nothing stands in for the kubelet here: the images built by
``hack/images/build.sh`` run in containerd on node ``real-1``; the init
container pulls the model from an S3 endpoint (moto, on the host address the
node's pods reach); Triton loads it; the kubelet runs the startup, readiness
and liveness probes; a client pod in another namespace sends HTTP and gRPC
inference to the Service by its DNS name, through kube-proxy and the
drift-monitor sidecar; the sidecar's drift verdict on that real traffic
reaches the ModelDeployment's status through the operator, which reads it
from the pod's IP (the sidecar map names no real pod). What the test changes
in the sample, and why: tests/support/real_sample.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.models import torch_reference
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.real_sample import (
    NAME,
    credentials_secret,
    publish_model,
    run_client,
    sample_for_the_real_node,
)
from tests.support.s3 import S3Server

pytestmark = [pytest.mark.cluster, pytest.mark.torch, pytest.mark.slow]


@pytest.fixture(scope="module")
def published(pod_store: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return publish_model(pod_store, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def served(
    cluster: Cluster,
    operator: OperatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    pod_store: S3Server,
    published: Any,
) -> Iterator[tuple[str, dict[str, Any]]]:
    namespace = f"real-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(credentials_secret(namespace, pod_store))
        # One GPU, as the sample asks: the real node advertises nvidia.com/gpu
        # without CUDA behind it, and the operator (MODELOPS_GPU_INSTANCE_KIND=auto)
        # has Triton place the model where it can, here on CPU.
        cluster.apply(sample_for_the_real_node(namespace, real_node, gpus=1))
        # Cold: the kubelet creates the sandbox, the init container pulls from S3,
        # Triton's python backend imports torch and loads the model.
        md = wait_ready(cluster, namespace, NAME, timeout=420)
        yield namespace, md
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def client_namespace(cluster: Cluster) -> Iterator[str]:
    namespace = f"client-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    yield namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def serving_pods(cluster: Cluster, namespace: str) -> list[Any]:
    return [
        p
        for p in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"modelops.io/model-deployment={NAME}"
        ).items
        if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    ]


def test_the_sample_is_ready_on_the_real_node_with_the_kubelets_probes(
    cluster: Cluster, served: tuple[str, dict[str, Any]], real_node: RealNode
) -> None:
    namespace, md = served
    assert condition(md, "ModelLoaded").get("status") == "True", md["status"]
    pods = serving_pods(cluster, namespace)
    assert pods, "no serving pod is Running"
    for pod in pods:
        assert pod.spec.node_name == real_node.name
        # Scheduled against the node's advertised GPUs (the sample's one GPU).
        triton = next(c for c in pod.spec.containers if c.name == "triton")
        assert triton.resources.limits.get("nvidia.com/gpu") == "1", triton.resources
        # The kubelet ran the readiness probes of every container (Triton, sidecar).
        assert all(s.ready for s in pod.status.container_statuses), pod.status.container_statuses
        # The init container really ran and exited 0 (the pull from S3).
        for init in pod.status.init_container_statuses:
            assert init.state.terminated is not None, init
            assert init.state.terminated.exit_code == 0, init


def test_status_names_the_version_the_replicas_serve(
    cluster: Cluster, served: tuple[str, dict[str, Any]]
) -> None:
    """Under `latest`, the operator lists the S3 store with the keys of the Secret the
    pods pull with and gives the pods the number it found: status names what serves."""
    namespace, md = served
    assert md["status"].get("servedVersion") == "1", md["status"]
    assert condition(md, "StoreListed").get("reason") == "Listed", md["status"]
    for pod in serving_pods(cluster, namespace):
        assert pod.metadata.annotations["modelops.io/model-version"] == "1"


def test_inference_through_the_service_over_http_and_grpc_from_another_pod(
    cluster: Cluster,
    served: tuple[str, dict[str, Any]],
    published: Any,
    real_node: RealNode,
    project_images: ProjectImages,
    client_namespace: str,
) -> None:
    namespace, _ = served
    host = f"{NAME}.{namespace}.svc.cluster.local"
    out = run_client(cluster, client_namespace, real_node, project_images.operator, host)
    expected = torch_reference(published, np.array(out["x"], dtype=np.float32))
    np.testing.assert_allclose(np.array(out["http"]), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(out["grpc"]), expected, rtol=1e-5, atol=1e-5)
    assert out["version"] == "1"


def test_drift_in_real_traffic_reaches_the_status(
    cluster: Cluster,
    served: tuple[str, dict[str, Any]],
    real_node: RealNode,
    project_images: ProjectImages,
    client_namespace: str,
) -> None:
    namespace, _ = served
    host = f"{NAME}.{namespace}.svc.cluster.local"
    # Shifted inputs, several windows' worth, through the Service.
    run_client(
        cluster, client_namespace, real_node, project_images.operator, host,
        rows=50, shift=3.0, repeat=40,
    )  # fmt: skip

    def drifted() -> dict | None:
        md = get_md(cluster, namespace, NAME)
        return md if condition(md, "Drifted").get("status") == "True" else None

    md = wait_for(drifted, timeout=180, what="Drifted=True from real traffic")
    assert (md["status"].get("drift") or {}).get("drifted") is True, md["status"].get("drift")


def test_a_deleted_pod_is_replaced_and_ready_only_when_its_probes_pass(
    cluster: Cluster, served: tuple[str, dict[str, Any]]
) -> None:
    namespace, _ = served
    [pod] = serving_pods(cluster, namespace)
    cluster.core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)

    def not_ready() -> bool:
        md = get_md(cluster, namespace, NAME)
        return condition(md, "Ready").get("status") != "True"

    wait_for(not_ready, timeout=60, what="Ready=False while no pod serves")
    md = wait_ready(cluster, namespace, NAME, timeout=420)
    uids = {p.metadata.uid for p in serving_pods(cluster, namespace)}
    assert uids and pod.metadata.uid not in uids
    assert md["status"].get("readyReplicas") == 1

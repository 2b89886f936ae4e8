"""The shipped sample ModelDeployment served by real pods on the real node.

Nothing stands in for the kubelet here: the images built by
``hack/images/build.sh`` run in containerd on node ``real-1``; the init
container pulls the model from an S3 endpoint (moto, on the host address the
node's pods can reach); Triton loads it; the kubelet runs the startup,
readiness and liveness probes; a client pod in another namespace sends HTTP
and gRPC inference to the Service's ClusterIP by its DNS name, through
kube-proxy and the drift-monitor sidecar; the sidecar's drift verdict on
that real traffic reaches the ModelDeployment's status through the operator,
which reads it from the pod's IP (no ``MODELOPS_SIDECAR_MAP``).

What differs from the file in manifests/samples/, and why:
- credentials: the sample's commented ``credentialsSecretRef`` is switched on
  (the test store enforces authentication);
- placement: a toleration and node selector for the real node (the cluster
  also has simulated GPU nodes, where nothing would really run);
- resources: CPU and memory fitted to a 2-core machine;
- ``driftMonitor`` switched on with a reference in the same store (the sample
  shows it commented out).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import yaml
from tests.support.cluster import REPO, Cluster, wait_for
from tests.support.models import LINEAR_SIGNATURE, script_linear, torch_reference
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.s3 import S3Server, start_s3_server, stop_s3_server

from modelops.drift.reference import build_reference
from modelops.storage.publish import publish_version
from modelops.triton.config import RuntimeSettings
from modelops.triton.packaging import package_torchscript

pytestmark = [pytest.mark.cluster, pytest.mark.torch, pytest.mark.slow]

SAMPLE = REPO / "manifests" / "samples" / "modeldeployment.yaml"
NAME = "fraud-detector"
BUCKET = "models"
N_FEATURES = 4


@pytest.fixture(scope="module")
def pod_store(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto on the host address the real node's pods reach (the node's veth peer)."""
    server = start_s3_server(tmp_path_factory.mktemp("pod-s3"), host=real_node.host_ip)
    try:
        yield server
    finally:
        stop_s3_server(server)


@pytest.fixture(scope="module")
def published(pod_store: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Version 1 of a TorchScript model and its drift reference, in the pods' store."""
    work = tmp_path_factory.mktemp("model")
    module = script_linear(work / "linear.pt", seed=11)
    packaged = package_torchscript(
        work / "linear.pt",
        work / "repo",
        NAME,
        LINEAR_SIGNATURE,
        RuntimeSettings(instance_kind="cpu"),
    )
    s3 = pod_store.client()
    s3.create_bucket(Bucket=BUCKET)
    version_dir = packaged.model_dir / str(packaged.version)
    assert publish_version(version_dir, f"s3://{BUCKET}/{NAME}", s3_client=s3) == 1
    sample = np.random.default_rng(0).standard_normal((4000, N_FEATURES))
    reference = work / "reference.json"
    build_reference(sample, bins=20).save(reference)
    s3.upload_file(str(reference), BUCKET, f"{NAME}/reference.json")
    return module


def sample_for_the_real_node(namespace: str, real_node: RealNode) -> dict[str, Any]:
    md = yaml.safe_load(SAMPLE.read_text())
    md["metadata"]["namespace"] = namespace
    spec = md["spec"]
    spec["model"]["credentialsSecretRef"] = {"name": "model-store-credentials"}
    placement = real_node.pod_spec()
    spec["scheduling"] = {
        "nodeSelector": {"kubernetes.io/hostname": real_node.name},
        "tolerations": placement["tolerations"],
    }
    spec["resources"]["cpu"] = "500m"
    spec["resources"]["memory"] = "2Gi"
    spec["driftMonitor"] = {
        "enabled": True,
        "reference": {"uri": f"s3://{BUCKET}/{NAME}/reference.json"},
        "window": 200,
    }
    return md


@pytest.fixture(scope="module")
def served(
    cluster: Cluster,
    operator: OperatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    pod_store: S3Server,
    published: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, Any]]]:
    namespace = f"real-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "model-store-credentials", "namespace": namespace},
            "stringData": {k: v for k, v in pod_store.env().items() if k.startswith("AWS_")},
        }
        cluster.apply(secret)
        cluster.apply(sample_for_the_real_node(namespace, real_node))
        # Cold: the kubelet creates the sandbox, the init container pulls from S3,
        # Triton's python backend imports torch and loads the model.
        md = wait_ready(cluster, namespace, NAME, timeout=300)
        yield namespace, md
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_sample_is_ready_on_the_real_node_with_the_kubelets_probes(
    cluster: Cluster, served: tuple[str, dict[str, Any]], real_node: RealNode
) -> None:
    namespace, md = served
    assert condition(md, "ModelLoaded").get("status") == "True", md["status"]
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modelops.io/model-deployment={NAME}"
    ).items
    running = [p for p in pods if p.status.phase == "Running"]
    assert running, [p.status.phase for p in pods]
    for pod in running:
        assert pod.spec.node_name == real_node.name
        # The kubelet ran the readiness probes of every container (Triton, sidecar).
        statuses = {s.name: s for s in pod.status.container_statuses}
        assert all(s.ready for s in statuses.values()), statuses
        # The init container really ran and exited 0 (the pull).
        [init] = [s for s in pod.status.init_container_statuses if s.name == "pull-model"]
        assert init.state.terminated is not None and init.state.terminated.exit_code == 0
    assert md["status"].get("servedVersion") == "1"


CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

host, n = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(1).standard_normal((n, 4)).astype(np.float32) + float(sys.argv[3])
out = {}
http = httpclient.InferenceServerClient(f"{host}:8000", network_timeout=30)
inp = httpclient.InferInput("x", list(x.shape), "FP32")
inp.set_data_from_numpy(x)
answer = http.infer("fraud-detector", [inp])
out["http"] = answer.as_numpy("y").tolist()
out["version"] = answer.get_response().get("model_version")
grpc = grpcclient.InferenceServerClient(f"{host}:8001")
ginp = grpcclient.InferInput("x", list(x.shape), "FP32")
ginp.set_data_from_numpy(x)
out["grpc"] = grpc.infer("fraud-detector", [ginp]).as_numpy("y").tolist()
for _ in range(int(sys.argv[4])):
    http.infer("fraud-detector", [inp])
print(json.dumps(out))
"""


def run_client(
    cluster: Cluster,
    namespace: str,
    real_node: RealNode,
    image: str,
    host: str,
    *,
    rows: int = 3,
    shift: float = 0.0,
    repeat: int = 0,
) -> dict[str, Any]:
    """A client pod (the operator image: Python with tritonclient) on the real node;
    returns what it printed."""
    name = f"client-{int(time.time() * 1000) % 10**8}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": real_node.pod_spec(
            restartPolicy="Never",
            containers=[
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", CLIENT, host, str(rows), str(shift), str(repeat)],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ],
        ),
    }
    cluster.apply(pod)

    def finished() -> str | None:
        phase = cluster.core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(finished, timeout=180, what=f"client pod {name}")
    logs = cluster.core.read_namespaced_pod_log(name, namespace)
    assert phase == "Succeeded", logs[-3000:]
    return json.loads(logs.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def client_namespace(cluster: Cluster) -> Iterator[str]:
    namespace = f"client-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    yield namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


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
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    expected = torch_reference(published, x)
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

    md = wait_for(drifted, timeout=120, what="Drifted=True from real traffic")
    assert (md["status"].get("drift") or {}).get("drifted") is True, md["status"].get("drift")


def test_readiness_is_truthful_when_a_container_is_killed(
    cluster: Cluster, served: tuple[str, dict[str, Any]], real_node: RealNode
) -> None:
    """Deleting the serving pod: the Deployment replaces it on the real node, and the
    ModelDeployment reports not-ready until the new pod's probes pass, then Ready."""
    namespace, _ = served
    [pod] = [
        p
        for p in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"modelops.io/model-deployment={NAME}"
        ).items
        if p.status.phase == "Running"
    ]
    cluster.core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)

    def not_ready() -> bool:
        md = get_md(cluster, namespace, NAME)
        return (
            condition(md, "Ready").get("status") != "True"
            or (md["status"].get("readyReplicas") or 0) < 1
        )

    wait_for(not_ready, timeout=60, what="Ready=False while no pod serves")
    md = wait_ready(cluster, namespace, NAME, timeout=300)
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modelops.io/model-deployment={NAME}"
    ).items
    assert pod.metadata.uid not in {p.metadata.uid for p in pods}
    assert md["status"].get("readyReplicas") == 1

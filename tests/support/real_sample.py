"""The shipped sample ModelDeployment on the real node: its model store, the few
changes a 2-core machine with simulated GPU nodes beside it needs, and a client
pod that sends real inference through the Service.

Used by e2e/test_real_serving.py and by ``make dev`` (``python -m
tests.support.real_sample``), so the tour and the test run the same path.

What differs from manifests/samples/modeldeployment.yaml, and why:
- credentials: the sample's commented ``credentialsSecretRef`` is switched on
  (the local S3 endpoint enforces authentication, and the Secret carries its
  address);
- placement: a toleration and node selector for the real node (the cluster
  also has simulated GPU nodes, where nothing would really run);
- resources: CPU and memory fitted to a 2-core machine, and no GPU: the real
  node's GPUs are only an extended resource the node script keeps in its status
  (no device), and a GPU count makes the pull step write KIND_GPU instances into
  config.pbtxt, which Triton refuses to load without a CUDA device;
- ``driftMonitor`` switched on with a reference in the same store (the sample
  shows it commented out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.support.cluster import REPO, Cluster, wait_for
from tests.support.models import LINEAR_SIGNATURE, script_linear
from tests.support.real_node import RealNode
from tests.support.s3 import S3Server, start_s3_server, stop_s3_server

SAMPLE = REPO / "manifests" / "samples" / "modeldeployment.yaml"
NAME = "fraud-detector"
BUCKET = "models"
N_FEATURES = 4
SECRET = "model-store-credentials"


@pytest.fixture(scope="module")
def pod_store(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto on the host address the real node's pods reach (the node's veth peer); one
    per test module, shared by the real-pod e2e modules."""
    server = start_s3_server(tmp_path_factory.mktemp("pod-s3"), host=real_node.host_ip)
    try:
        yield server
    finally:
        stop_s3_server(server)


def publish_model(store: S3Server, work: Path, seed: int = 11) -> Any:
    """Version 1 of a TorchScript model and its drift reference, where the sample
    looks (s3://models/fraud-detector); returns the torch module."""
    from modelops.drift.reference import build_reference
    from modelops.storage.publish import publish_version
    from modelops.triton.config import RuntimeSettings
    from modelops.triton.packaging import package_torchscript

    module = script_linear(work / "linear.pt", seed=seed)
    packaged = package_torchscript(
        work / "linear.pt",
        work / "repo",
        NAME,
        LINEAR_SIGNATURE,
        RuntimeSettings(instance_kind="cpu"),
    )
    s3 = store.client()
    s3.create_bucket(Bucket=BUCKET)
    version_dir = packaged.model_dir / str(packaged.version)
    publish_version(version_dir, f"s3://{BUCKET}/{NAME}", s3_client=s3)
    sample = np.random.default_rng(0).standard_normal((4000, N_FEATURES))
    build_reference(sample, bins=20).save(work / "reference.json")
    s3.upload_file(str(work / "reference.json"), BUCKET, f"{NAME}/reference.json")
    return module


def credentials_secret(namespace: str, store: S3Server) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace},
        "stringData": {k: v for k, v in store.env().items() if k.startswith("AWS_")},
    }


def sample_for_the_real_node(namespace: str, node: RealNode, gpus: int = 0) -> dict[str, Any]:
    """The shipped sample, pinned to the real node. ``gpus``: how many of the node's
    two advertised (CUDA-less) nvidia.com/gpu the pods ask for; the e2e operator
    runs with MODELOPS_GPU_INSTANCE_KIND=auto so that Triton serves them on CPU.
    Tests that run several pods at once (a gated rollout, healing) ask for none."""
    md = yaml.safe_load(SAMPLE.read_text())
    md["metadata"]["namespace"] = namespace
    spec = md["spec"]
    spec["model"]["credentialsSecretRef"] = {"name": SECRET}
    spec["scheduling"] = {
        "nodeSelector": {"kubernetes.io/hostname": node.name},
        "tolerations": node.pod_spec()["tolerations"],
    }
    spec["resources"]["gpu"] = {"count": gpus}
    spec["resources"]["cpu"] = "500m"
    spec["resources"]["memory"] = "2Gi"
    spec["driftMonitor"] = {
        "enabled": True,
        "reference": {"uri": f"s3://{BUCKET}/{NAME}/reference.json"},
        "window": 200,
    }
    return md


# The client pod's program: HTTP and gRPC inference through the Service by its DNS
# name (kube-proxy, the sidecar, Triton), then more HTTP calls for the drift window.
CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

host, n, shift, repeat = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
x = np.random.default_rng(1).standard_normal((n, 4)).astype(np.float32) + shift
out = {"x": x.tolist()}
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
for _ in range(repeat):
    http.infer("fraud-detector", [inp])
print(json.dumps(out))
report(out)
"""

# Prepended to a pod's program: ``report(obj)`` also writes the answer to the
# termination message (what fits in its 4 KiB), which the kubelet keeps in the
# pod's status: the pod's log file can vanish under a test on this machine,
# where every real node's kubelet shares /var/log/pods and removes the log
# directories of pods it does not know.
REPORT = """
import json as _json
def report(obj):
    text = _json.dumps(obj)
    if len(text) < 4000:
        with open("/dev/termination-log", "w") as f:
            f.write(text)
"""


def pod_output(cluster: Cluster, name: str, namespace: str) -> str:
    """What a finished pod's program reported: the last line of its log, or where the
    log is gone, its termination message."""
    try:
        logs = cluster.core.read_namespaced_pod_log(name, namespace)
    except Exception:  # the log file is gone (see REPORT); the status still has it
        logs = ""
    last = logs.strip().splitlines()[-1] if logs.strip() else ""
    if last.startswith(("{", "[")):
        return last
    pod = cluster.core.read_namespaced_pod(name, namespace)
    for cs in pod.status.container_statuses or []:
        if cs.state.terminated and cs.state.terminated.message:
            return cs.state.terminated.message
    raise AssertionError(f"pod {name} reported nothing; log: {logs[-3000:]}")


def run_client(
    cluster: Cluster,
    namespace: str,
    node: RealNode,
    image: str,
    host: str,
    *,
    rows: int = 3,
    shift: float = 0.0,
    repeat: int = 0,
) -> dict[str, Any]:
    """Run the client pod (``image``: Python with tritonclient, e.g. the operator
    image) on the real node; returns what it printed."""
    name = f"client-{int(time.time() * 1000) % 10**8}"
    restricted = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": node.pod_spec(
            restartPolicy="Never",
            containers=[
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": [
                        "python",
                        "-c",
                        REPORT + CLIENT,
                        host,
                        str(rows),
                        str(shift),
                        str(repeat),
                    ],
                    "securityContext": restricted,
                }
            ],
        ),
    }
    cluster.apply(pod)

    def finished() -> str | None:
        phase = cluster.core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(finished, timeout=180, what=f"client pod {name}")
    try:
        assert phase == "Succeeded", _failure(cluster, name, namespace)
        return json.loads(pod_output(cluster, name, namespace))
    finally:
        cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def _failure(cluster: Cluster, name: str, namespace: str) -> str:
    try:
        return cluster.core.read_namespaced_pod_log(name, namespace)[-3000:]
    except Exception:
        pod = cluster.core.read_namespaced_pod(name, namespace)
        return str(pod.status.container_statuses)


def main(argv: list[str] | None = None) -> int:
    """``make dev``: publish the model, apply the sample for the real node, wait until
    Ready, send one inference from a client pod and print its answer. The S3 endpoint
    (moto) keeps running in the background; its pid goes to --state."""
    from tests.support.project_images import build_images, import_images
    from tests.support.real_node import Unavailable, find_real_node

    parser = argparse.ArgumentParser(prog="python -m tests.support.real_sample")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--namespace", default="modelops-real")
    parser.add_argument("--state", required=True, type=Path)
    args = parser.parse_args(argv)
    cluster = Cluster(kubeconfig=args.kubeconfig, bin_dir=None)
    try:
        node = find_real_node(cluster, args.cluster)
    except Unavailable as why:
        print(f"real node: none ({why}); the sample runs on simulated nodes only")
        return 0
    entries = build_images()
    import_images(entries, args.cluster)
    args.state.mkdir(parents=True, exist_ok=True)
    pidfile = args.state / "moto.pid"
    if pidfile.exists():
        subprocess.run(["kill", pidfile.read_text().strip()], check=False)
    store = start_s3_server(args.state, host=node.host_ip)
    pidfile.write_text(str(store.process.pid))
    publish_model(store, args.state)
    cluster.kubectl("create", "namespace", args.namespace, check=False)
    cluster.apply(credentials_secret(args.namespace, store))
    cluster.apply(sample_for_the_real_node(args.namespace, node))
    cluster.kubectl(
        "wait", "-n", args.namespace, "--for=condition=Ready", f"md/{NAME}", "--timeout=600s"
    )
    host = f"{NAME}.{args.namespace}.svc.cluster.local"
    out = run_client(cluster, args.namespace, node, entries["operator"]["ref"], host)
    print(f"inference through Service {host} (HTTP and gRPC, via the drift sidecar):")
    print(f"  x = {np.round(np.array(out['x']), 3).tolist()}")
    print(f"  y = {np.round(np.array(out['http']), 4).tolist()} (model version {out['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The HPA scales a ModelDeployment for real, on Triton's queue time.

Real pieces: tritonserver (one per simulated pod, from the nvidia-pytriton
wheel) serving a python-backend model that takes 50 ms per request;
Prometheus scraping those servers; prometheus-adapter (built from its Go
module) loaded with the shipped manifests/prometheus-adapter-rules.yaml and
registered as custom.metrics.k8s.io through the API server's aggregation
layer; the HPA controller of kube-controller-manager; the operator. Simulated:
the pods (KWOK), and therefore the attribution of each Triton to its pod, which
the test profile does with Prometheus target labels (tests/support/metrics.py).

The DCGM test serves a dcgm-exporter-shaped text endpoint: a stand-in for GPU
hardware that cannot exist on this machine. Prometheus, the adapter and the
HPA controller reading it are real.

The CPU test reads metrics.k8s.io from a real metrics-server (built from its
Go module, run by kwokctl), which scrapes the kubelet resource metrics KWOK
simulates. A simulated pod has no processes, so its CPU usage is declared:
KWOK reports what the pod's kwok.x-k8s.io/usage-cpu annotation says.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tests.support.cluster import Cluster, wait_for
from tests.support.metrics import (
    SLEEPY_MODEL,
    MetricsStack,
    TritonPerPod,
    attribute,
    forget,
    write_sleepy_repository,
)
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.triton_server import TritonServer

from modelops.api.constants import LABEL_MODEL_DEPLOYMENT

pytestmark = [pytest.mark.cluster, pytest.mark.triton]

# Average queue time per request the HPA aims at (µs). One server takes 20
# requests/s (the sleepy model's 50 ms each); CLIENTS concurrent callers keep
# CLIENTS - 1 requests waiting, i.e. ~(CLIENTS - 1) x 50 ms of queue time on one
# replica, far above the target, and still above it spread over MAX_REPLICAS.
TARGET_US = 20_000
CLIENTS = 8
MAX_REPLICAS = 3
# The HPA removes surplus replicas after this much calm (Kubernetes' default
# is 300 s); set through spec.autoscaling.scaleDownStabilizationSeconds.
STABILIZATION_S = 15


@pytest.fixture(scope="module")
def sleepy_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sleepy_repository(tmp_path_factory.mktemp("sleepy-repo"))


class Load:
    """CLIENTS callers sending requests round-robin over the current servers,
    as the model's Service would spread them over its pods."""

    def __init__(self, servers: Callable[[], dict[str, TritonServer]]) -> None:
        self._servers = servers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sent = 0
        self.errors: list[BaseException] = []

    def __enter__(self) -> Load:
        for i in range(CLIENTS):
            thread = threading.Thread(target=self._client, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _client(self, index: int) -> None:
        clients: dict[str, httpclient.InferenceServerClient] = {}
        x = np.ones((1,), dtype=np.float32)
        turn = index
        while not self._stop.is_set():
            servers = self._servers()
            if not servers:
                time.sleep(0.1)
                continue
            pod = sorted(servers)[turn % len(servers)]
            turn += 1
            address = servers[pod].http_address
            client = clients.get(address) or clients.setdefault(
                address, httpclient.InferenceServerClient(address, network_timeout=30)
            )
            inp = httpclient.InferInput("INPUT0", [1], "FP32")
            inp.set_data_from_numpy(x)
            try:
                client.infer(SLEEPY_MODEL, [inp])
                self.sent += 1
            except Exception as exc:
                # A server stopped under the caller (its pod went away): move on.
                self.errors.append(exc)


def md_body(name: str, metric: str, target: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": f"file:///models/{name}", "version": "1", "name": SLEEPY_MODEL},
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "autoscaling": {
                "engine": "hpa",
                "minReplicas": 1,
                "maxReplicas": MAX_REPLICAS,
                "scaleDownStabilizationSeconds": STABILIZATION_S,
                "metric": {"type": metric, "target": target},
            },
        },
    }


def custom_metric(cluster: Cluster, namespace: str, metric: str) -> dict[str, float]:
    """The adapter's answer, through the API server, per pod."""
    raw = cluster.kubectl(
        "get",
        "--raw",
        f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/*/{metric}",
    ).stdout
    return {
        item["describedObject"]["name"]: _quantity(item["value"])
        for item in json.loads(raw)["items"]
    }


def _quantity(value: str) -> float:
    """A Kubernetes quantity as the adapter writes metric values (e.g. 12500m, 3k)."""
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if value and value[-1] in suffixes:
        return float(value[:-1]) * suffixes[value[-1]]
    return float(value)


def ready_pods(cluster: Cluster, namespace: str, name: str) -> int:
    return cluster.apps.read_namespaced_deployment(name, namespace).status.ready_replicas or 0


def replicas_in_status(cluster: Cluster, namespace: str, name: str, want: int) -> dict | None:
    md = get_md(cluster, namespace, name)
    status = md.get("status") or {}
    if status.get("replicas") == want and status.get("readyReplicas") == want:
        return md
    return None


def test_queue_time_above_target_scales_out_and_back_in(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    metrics_stack: MetricsStack,
    triton_factory: Callable[..., TritonServer],
    sleepy_repository: Path,
):
    cluster.apply(md_body("busy", "queue-time", TARGET_US), namespace)
    wait_ready(cluster, namespace, "busy")
    per_pod = TritonPerPod(
        cluster=cluster,
        namespace=namespace,
        selector=f"{LABEL_MODEL_DEPLOYMENT}=busy",
        targets=metrics_stack.targets,
        start_server=lambda: triton_factory(sleepy_repository),
    ).start()
    try:
        # Idle: the adapter serves the metric (0 queue time), so the HPA is
        # able to scale and the ModelDeployment says so -- no FailedGetPodsMetric.
        active = wait_for(
            lambda: (
                (md := get_md(cluster, namespace, "busy"))
                and condition(md, "AutoscalerReady").get("reason") == "ScalingActive"
                and md
            ),
            timeout=120,
            what="AutoscalerReady ScalingActive with the real metric",
        )
        assert condition(active, "AutoscalerReady")["status"] == "True"
        assert list(custom_metric(cluster, namespace, "triton_queue_time_per_request_us")) == [
            *per_pod.snapshot()
        ]

        with Load(per_pod.snapshot) as load:
            seen = wait_for(
                lambda: (
                    (v := custom_metric(cluster, namespace, "triton_queue_time_per_request_us"))
                    and max(v.values()) > TARGET_US
                    and v
                ),
                timeout=120,
                what="queue time above the target in custom.metrics.k8s.io",
            )
            breach = time.monotonic()
            print(f"queue time per pod under load (µs): {seen}")
            wait_for(
                lambda: ready_pods(cluster, namespace, "busy") > 1,
                timeout=180,
                interval=0.2,
                what="a new replica Ready",
            )
            print(f"queue-time breach -> new replica Ready: {time.monotonic() - breach:.1f}s")
            out = wait_for(
                lambda: replicas_in_status(cluster, namespace, "busy", MAX_REPLICAS),
                timeout=180,
                interval=0.2,
                what=f"{MAX_REPLICAS} ready replicas in the ModelDeployment's status",
            )
            print(
                f"queue-time breach -> status.readyReplicas {MAX_REPLICAS}: "
                f"{time.monotonic() - breach:.1f}s"
            )
            hpa = cluster.kubectl("get", "hpa", "-n", namespace, "busy", "-o", "json").stdout
            assert json.loads(hpa)["status"]["desiredReplicas"] == MAX_REPLICAS
            autoscaler = condition(out, "AutoscalerReady")
            assert autoscaler["status"] == "True"
            # Load wants more than maxReplicas: the HPA says it is limited.
            assert autoscaler["reason"] == "ScalingLimited", autoscaler
            # Each new pod got its own Triton, which now takes a share of the load.
            wait_for(
                lambda: len(per_pod.snapshot()) == MAX_REPLICAS,
                timeout=120,
                what="a Triton for every pod",
            )
            assert load.sent > 0
        assert not per_pod.errors, per_pod.errors

        # Calm: the 1 m rate windows of the adapter rules empty, then the
        # stabilization window passes, then the HPA scales back in.
        calm = time.monotonic()
        back = wait_for(
            lambda: replicas_in_status(cluster, namespace, "busy", 1),
            timeout=240,
            what="scale-in to minReplicas after the load stopped",
        )
        print(f"load stopped -> scaled in to 1: {time.monotonic() - calm:.1f}s")
        assert condition(back, "AutoscalerReady")["status"] == "True"
        assert cluster.apps.read_namespaced_deployment("busy", namespace).spec.replicas == 1
    finally:
        per_pod.stop()


class _DcgmStandIn(http.server.BaseHTTPRequestHandler):
    """dcgm-exporter's text format for the GPUs of the pods in ``gpus``.

    A stand-in for hardware: there is no GPU here, so no real exporter can run.
    """

    gpus: dict[tuple[str, str], float] = {}

    def do_GET(self) -> None:
        lines = [
            "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).",
            "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
        ]
        for i, ((namespace, pod), util) in enumerate(sorted(self.gpus.items())):
            lines.append(
                f'DCGM_FI_DEV_GPU_UTIL{{gpu="{i}",UUID="GPU-standin-{i}",'
                f'modelName="NVIDIA H100 80GB HBM3",container="triton",'
                f'namespace="{namespace}",pod="{pod}"}} {util}'
            )
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_gpu_utilization_from_a_dcgm_shaped_endpoint_scales_out(
    cluster: Cluster, operator: OperatorProcess, namespace: str, metrics_stack: MetricsStack
):
    cluster.apply(md_body("gpu-busy", "gpu-utilization", 50), namespace)
    wait_ready(cluster, namespace, "gpu-busy")
    pod = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{LABEL_MODEL_DEPLOYMENT}=gpu-busy"
    ).items[0]
    handler = type("Dcgm", (_DcgmStandIn,), {"gpus": {(namespace, pod.metadata.name): 95.0}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.server_address[1]}"
    attribute(metrics_stack.targets, "dcgm", namespace, "exporter", address, labels=False)
    try:
        # 95 % on one GPU against a 50 % target: two replicas.
        out = wait_for(
            lambda: replicas_in_status(cluster, namespace, "gpu-busy", 2),
            timeout=180,
            what="2 ready replicas on GPU utilization",
        )
        assert condition(out, "AutoscalerReady")["status"] == "True"
        metric = custom_metric(cluster, namespace, "DCGM_FI_DEV_GPU_UTIL")
        assert metric[pod.metadata.name] == pytest.approx(95.0)
    finally:
        forget(metrics_stack.targets, "dcgm", namespace, "exporter")
        server.shutdown()


def test_cpu_usage_from_metrics_server_scales_out_and_back_in(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md_body("cpu-busy", "cpu", 50), namespace)
    wait_ready(cluster, namespace, "cpu-busy")
    pod = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{LABEL_MODEL_DEPLOYMENT}=cpu-busy"
    ).items[0]
    # 1.9 cores of the Triton container's 1-core request: 190 % against a
    # 50 % target, and still above it averaged over MAX_REPLICAS pods.
    cluster.kubectl(
        "annotate", "pod", "-n", namespace, pod.metadata.name, "kwok.x-k8s.io/usage-cpu=1900m"
    )
    out = wait_for(
        lambda: replicas_in_status(cluster, namespace, "cpu-busy", MAX_REPLICAS),
        timeout=240,
        what=f"{MAX_REPLICAS} ready replicas on CPU utilization",
    )
    assert condition(out, "AutoscalerReady")["status"] == "True"
    hpa = json.loads(
        cluster.kubectl("get", "hpa", "-n", namespace, "cpu-busy", "-o", "json").stdout
    )
    [current] = hpa["status"]["currentMetrics"]
    assert current["type"] == "ContainerResource"
    assert current["containerResource"]["container"] == "triton"
    assert current["containerResource"]["current"]["averageUtilization"] > 50

    cluster.kubectl(
        "annotate", "pod", "-n", namespace, pod.metadata.name, "kwok.x-k8s.io/usage-cpu-"
    )
    wait_for(
        lambda: replicas_in_status(cluster, namespace, "cpu-busy", 1),
        timeout=240,
        what="scale-in once the pod's CPU usage fell",
    )

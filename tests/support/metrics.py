"""The local cluster's metrics path for tests: Prometheus, prometheus-adapter,
and real Triton servers attributed to simulated pods.

``hack/metrics/stack.sh`` runs Prometheus and the adapter (registered as
custom.metrics.k8s.io). Pods on the local cluster are simulated by KWOK, so
nothing runs in them; a test runs one real ``tritonserver`` per pod instead and
tells Prometheus, through a file_sd target file, which pod that server stands
for. Prometheus then labels the server's series with the pod's ``namespace``
and ``pod``, exactly the labels the shipped adapter rules group by.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.cluster import REPO, Cluster
from tests.support.triton_server import TritonServer

STACK_SCRIPT = REPO / "hack" / "metrics" / "stack.sh"

# A python-backend model with a fixed service time: one instance serves one
# request at a time, so concurrent callers wait in Triton's queue and
# nv_inference_queue_duration_us grows with the load.
SLEEPY_MODEL = "sleepy"
SLEEPY_SECONDS = 0.05
_SLEEPY_CONFIG = f"""name: "{SLEEPY_MODEL}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0", data_type: TYPE_FP32, dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 1 ] }} ]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
"""
_SLEEPY_PY = f"""
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            time.sleep({SLEEPY_SECONDS})
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
        return responses
"""


def write_sleepy_repository(root: Path) -> Path:
    """A Triton model repository holding the sleepy model; returns ``root``."""
    model = root / SLEEPY_MODEL
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(_SLEEPY_CONFIG)
    (model / "1" / "model.py").write_text(_SLEEPY_PY)
    return root


@dataclass(frozen=True)
class MetricsStack:
    """A running Prometheus + prometheus-adapter for one cluster."""

    name: str
    state: Path
    prometheus_url: str
    # False when the stack was already running (e.g. `make dev`'s): then the
    # tests leave it running.
    started_here: bool = True

    @property
    def targets(self) -> Path:
        return self.state / "targets"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus query {promql!r} failed: {body}")
        return body["data"]["result"]


def stack_name(cluster: Cluster) -> str:
    """The stack's name: the kwok cluster's own for a local cluster (so the
    dev stack is reused rather than fought over), else one per kubeconfig."""
    kubeconfig = cluster.kubeconfig.resolve()
    if kubeconfig.parent.parent.name == "clusters":
        return kubeconfig.parent.name
    return "kc-" + hashlib.sha256(str(kubeconfig).encode()).hexdigest()[:10]


def _stack(cluster: Cluster, verb: str, name: str) -> str:
    proc = subprocess.run(
        [str(STACK_SCRIPT), verb, name],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hack/metrics/stack.sh {verb} {name} failed:\n{proc.stderr}")
    return proc.stdout


def _running(cluster: Cluster, name: str) -> bool:
    env = _stack(cluster, "env", name)
    return "MODELOPS_METRICS_RUNNING=1" in env.splitlines()


def start_metrics_stack(cluster: Cluster) -> MetricsStack:
    name = stack_name(cluster)
    was_running = _running(cluster, name)
    state = Path(_stack(cluster, "up", name).strip().splitlines()[-1])
    return MetricsStack(
        name=name,
        state=state,
        prometheus_url=(state / "prometheus.url").read_text().strip(),
        started_here=not was_running,
    )


def stop_metrics_stack(cluster: Cluster, stack: MetricsStack) -> None:
    if stack.started_here and os.environ.get("MODELOPS_KEEP_CLUSTER") != "1":
        _stack(cluster, "down", stack.name)


def _target_file(targets: Path, job: str, namespace: str, pod: str) -> Path:
    return targets / f"{job}-{namespace}-{pod}.json"


def attribute(
    targets: Path, job: str, namespace: str, pod: str, address: str, labels: bool = True
) -> Path:
    """Have Prometheus scrape ``address`` (host:port) for the pod ``namespace/pod``.

    With ``labels`` the target group sets ``namespace`` and ``pod`` (for
    Triton, whose series do not carry them); without, the endpoint's series
    must name their pod themselves (dcgm-exporter's pod mapping).
    """
    group: dict[str, Any] = {"targets": [address]}
    if labels:
        group["labels"] = {"namespace": namespace, "pod": pod}
    path = _target_file(targets, job, namespace, pod)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([group]))
    # A rename, so Prometheus never reads a half-written file.
    tmp.rename(path)
    return path


def forget(targets: Path, job: str, namespace: str, pod: str) -> None:
    _target_file(targets, job, namespace, pod).unlink(missing_ok=True)


@dataclass
class TritonPerPod:
    """Keeps one real Triton running for every Running pod that matches a selector.

    A background thread lists the pods every ``interval`` seconds: a new
    Running pod gets a server (``start_server()``) and a target file naming
    it; a pod that is gone loses both. ``servers`` maps pod name to its server.
    """

    cluster: Cluster
    namespace: str
    selector: str
    targets: Path
    start_server: Callable[[], TritonServer]
    interval: float = 1.0
    servers: dict[str, TritonServer] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TritonPerPod:
        self._thread = threading.Thread(target=self._run, name="triton-per-pod", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)
        with self._lock:
            for pod, server in self.servers.items():
                forget(self.targets, "triton", self.namespace, pod)
                server.stop()
            self.servers.clear()

    def snapshot(self) -> dict[str, TritonServer]:
        with self._lock:
            return dict(self.servers)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # surfaced by the test through .errors
                self.errors.append(exc)
            self._stop.wait(self.interval)

    def sync(self) -> None:
        pods = self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=self.selector
        ).items
        running = {
            p.metadata.name
            for p in pods
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        }
        with self._lock:
            gone = [pod for pod in self.servers if pod not in running]
            for pod in gone:
                forget(self.targets, "triton", self.namespace, pod)
                self.servers.pop(pod).stop()
        for pod in sorted(running - self.servers.keys()):
            if self._stop.is_set():
                return
            server = self.start_server()
            with self._lock:
                self.servers[pod] = server
                attribute(
                    self.targets,
                    "triton",
                    self.namespace,
                    pod,
                    f"{server.host}:{server.metrics_port}",
                )


def main(argv: list[str] | None = None) -> int:
    """`make dev`: keep a real Triton (the sleepy model) for each pod of a
    ModelDeployment, so its HPA reads real queue times, until interrupted."""
    import argparse
    import signal
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--model-deployment", required=True)
    parser.add_argument("--targets", type=Path, required=True, help="the stack's targets dir")
    args = parser.parse_args(argv)

    from modelops.api.constants import LABEL_MODEL_DEPLOYMENT

    work = Path(tempfile.mkdtemp(prefix="modelops-dev-triton-"))
    repo = write_sleepy_repository(work / "repo")
    per_pod = TritonPerPod(
        cluster=Cluster(kubeconfig=args.kubeconfig, bin_dir=None),
        namespace=args.namespace,
        selector=f"{LABEL_MODEL_DEPLOYMENT}={args.model_deployment}",
        targets=args.targets,
        start_server=lambda: TritonServer(repo, work_dir=Path(tempfile.mkdtemp(dir=work))).start(),
        interval=2.0,
    )
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    per_pod.start()
    while not stopped.wait(5):
        for error in per_pod.errors:
            print(f"triton-per-pod: {error}", flush=True)
        per_pod.errors.clear()
        print(f"triton-per-pod: serving {sorted(per_pod.snapshot())}", flush=True)
    per_pod.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

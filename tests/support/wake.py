"""Waking the sample from zero on the real node: the activator as a local process
with the RBAC of manifests/activator/, the sample with KEDA's scale-to-zero
autoscaling, and a client pod that sends a burst through the Service.

Shared by e2e/test_wake_control.py, e2e/test_wake_real.py,
e2e/test_wake_keda_real.py and bench/autoscaling/wake.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import REPO, Cluster, wait_for
from tests.support.operator import (
    OperatorProcess,
    condition,
    free_port,
    get_md,
    restarted_with,
    service_account_kubeconfig,
)
from tests.support.real_node import RealNode
from tests.support.real_sample import NAME, REPORT, pod_output, sample_for_the_real_node

ACTIVATOR_MANIFEST = REPO / "manifests" / "activator" / "activator.yaml"
ACTIVATOR_ACCOUNT = ("modelops-system", "modelops-activator")
ACTIVATOR_ENV = "MODELOPS_ACTIVATOR_URL"


def install_activator_rbac(cluster: Cluster) -> None:
    """The ServiceAccount and RBAC of manifests/activator/ (not its Deployment: the
    activator runs here as a local process, on the address the node's pods reach)."""
    docs = [d for d in yaml.safe_load_all(ACTIVATOR_MANIFEST.read_text()) if d]
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            cluster.apply(doc)


@dataclass
class ActivatorProcess:
    """`modelops activator` on the host address the real node's pods reach."""

    kubeconfig: Path
    host: str
    log_path: Path
    namespace: str | None = None
    queue_limit: int = 10
    timeout_s: float = 300.0
    retry_after_s: int = 5
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ActivatorProcess:
        args = [
            sys.executable,
            "-m",
            "modelops.cli",
            "activator",
            "--listen",
            f"{self.host}:{self.port}",
            "--advertise",
            self.host,
            "--queue-limit",
            str(self.queue_limit),
            "--timeout",
            str(self.timeout_s),
            "--retry-after",
            str(self.retry_after_s),
            "--sync-interval",
            "1",
        ]
        if self.namespace:
            args += ["--namespace", self.namespace]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args,
            env=dict(os.environ, KUBECONFIG=str(self.kubeconfig)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._healthy, timeout=60, what="the activator's /healthz")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the activator exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def activity(self, namespace: str, name: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/wake/{namespace}/{name}", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def running_activator(
    cluster: Cluster, host: str, work: Path, **settings: Any
) -> Iterator[ActivatorProcess]:
    """`modelops activator` serving on `host`, with the RBAC of manifests/activator/
    (its ServiceAccount's token), stopped on exit. `settings`: ActivatorProcess's
    queue_limit, timeout_s, retry_after_s."""
    install_activator_rbac(cluster)
    kubeconfig = service_account_kubeconfig(cluster, work / "kubeconfig", ACTIVATOR_ACCOUNT)
    proc = ActivatorProcess(
        kubeconfig=kubeconfig, host=host, log_path=work / "activator.log", **settings
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def waking_operator(
    operator: OperatorProcess, activator: ActivatorProcess, **env: str
) -> contextlib.AbstractContextManager[OperatorProcess]:
    """The session's operator restarted to mark models that may reach zero for
    `activator` (MODELOPS_ACTIVATOR_URL, read at start), with `env` besides."""
    return restarted_with(operator, {ACTIVATOR_ENV: activator.url, **env})


def zero_reason(cluster: Cluster, namespace: str, name: str = NAME) -> str:
    """ScaledToZero's `status/reason` ("/" before the operator wrote it)."""
    cond = condition(get_md(cluster, namespace, name), "ScaledToZero")
    return f"{cond.get('status')}/{cond.get('reason')}"


class Reasons:
    """ScaledToZero's reasons in the order the status goes through them (polled
    every 0.2 s from a thread while the `with` block runs)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str = NAME) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.seen: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Reasons:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                reason = zero_reason(self.cluster, self.namespace, self.name)
            except Exception:  # a transient API error: the next poll reads again
                reason = ""
            if reason and (not self.seen or self.seen[-1] != reason):
                self.seen.append(reason)
            self.stopping.wait(0.2)


def wake_sample(namespace: str, node: RealNode, cooldown_s: int = 20) -> dict[str, Any]:
    """The real-node sample with KEDA autoscaling that may reach zero."""
    md = sample_for_the_real_node(namespace, node)
    md["spec"].pop("replicas", None)
    md["spec"]["autoscaling"] = {
        "engine": "keda",
        "minReplicas": 0,
        "maxReplicas": 1,
        "cooldownSeconds": cooldown_s,
        "metric": {"type": "concurrency", "target": 2},
    }
    return md


# The burst: `n` HTTP inference requests at once through the Service, each in its
# own thread and connection; reports per request its status, Retry-After, the
# answer's output and its latency.
BURST = """
import http.client, json, sys, threading, time
host, n, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
x = [[0.5, -1.0, 2.0, 0.25]]
body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                               "data": [v for row in x for v in row]}]})
out = [None] * n
start = threading.Barrier(n)
def one(i):
    start.wait()
    t0 = time.time()
    try:
        c = http.client.HTTPConnection(host, 8000, timeout=timeout)
        c.request("POST", "/v2/models/fraud-detector/infer", body,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        y = json.loads(data)["outputs"][0]["data"] if r.status == 200 else None
        out[i] = [r.status, r.getheader("Retry-After"), y, round(t0, 3), round(time.time() - t0, 3)]
    except Exception as e:
        out[i] = [0, None, type(e).__name__, round(t0, 3), round(time.time() - t0, 3)]
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
[t.start() for t in threads]
[t.join() for t in threads]
report({"x": x, "r": out})
print(json.dumps({"x": x, "r": out}))
"""


def run_burst(
    cluster: Cluster,
    namespace: str,
    node: RealNode,
    image: str,
    host: str,
    n: int,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """A client pod on the real node sending `n` requests at once to `host`:8000."""
    name = f"burst-{int(time.time() * 1000) % 10**8}"
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
                    "command": ["python", "-c", REPORT + BURST, host, str(n), str(timeout_s)],
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

    phase = wait_for(finished, timeout=timeout_s + 120, interval=1, what=f"burst pod {name}")
    try:
        assert phase == "Succeeded", cluster.kubectl(
            "logs", "-n", namespace, name, check=False
        ).stdout[-3000:]
        return json.loads(pod_output(cluster, name, namespace))
    finally:
        cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def pod_timeline(pod: Any) -> dict[str, float | None]:
    """Wall-clock times of one serving pod (second resolution, the API's):
    created, the pull-model init container finished, Triton started, Ready."""
    status = pod.status
    init_done = max(
        (
            _ts(s.state.terminated.finished_at)
            for s in status.init_container_statuses or []
            if s.state and s.state.terminated
        ),
        default=None,
    )
    started = min(
        (
            _ts(s.state.running.started_at)
            for s in status.container_statuses or []
            if s.state and s.state.running
        ),
        default=None,
    )
    ready = next(
        (_ts(c.last_transition_time) for c in status.conditions or [] if c.type == "Ready"),
        None,
    )
    return {
        "created": _ts(pod.metadata.creation_timestamp),
        "pulled": init_done,
        "started": started,
        "ready": ready,
    }


def serving_pod(cluster: Cluster, namespace: str) -> Any | None:
    pods = [
        p
        for p in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"modelops.io/model-deployment={NAME}"
        ).items
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    return pods[0] if pods else None


def slice_exists(cluster: Cluster, namespace: str, name: str = NAME) -> bool:
    """The activator's own EndpointSlice is in the Service `name` (it is in the path)."""
    out = cluster.kubectl(
        "get", "endpointslice", "-n", namespace, f"{name}-wake", "-o", "name", check=False
    )
    return out.returncode == 0


def scale_deployment(cluster: Cluster, namespace: str, replicas: int) -> None:
    cluster.kubectl("scale", "deployment", NAME, "-n", namespace, f"--replicas={replicas}")


def no_pods(cluster: Cluster, namespace: str) -> bool:
    return not cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modelops.io/model-deployment={NAME}"
    ).items

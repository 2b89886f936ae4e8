"""Inference latency and throughput on a real pod: through the Service and the
drift sidecar, against straight to Triton in the same pod; and the sidecar's CPU
per request, from its cgroup.

The shipped sample (tests/support/real_sample.py: the project's images, a model
pulled from S3 by the init container, the operator running) is served on the
local cluster's real node (kubelet, containerd, kube-proxy). A load loop of one
1x4 FP32 request after another (latency: p50, p99; and throughput at
concurrency 1), then the same from ``--concurrency`` threads (throughput), is
run against each path:

- from a client pod on the node: HTTP through the Service (kube-proxy ->
  sidecar -> Triton), HTTP to the sidecar's port on the pod IP, HTTP straight
  to Triton's port on the pod IP; gRPC through the Service and to the
  sidecar's gRPC port on the pod IP. Straight gRPC to Triton cannot be reached
  from another pod: with the sidecar on, Triton's gRPC listens on the pod's
  loopback only (render/deployment.py), so
- inside the pod (``kubectl exec`` into the Triton container, whose image has
  tritonclient): gRPC and HTTP over loopback to the sidecar and to Triton. The
  load loop then runs in Triton's cgroup, so that part's Triton CPU is not
  Triton's alone; the sidecar's is.

CPU per request: this machine reads ``cpuacct.usage`` of the sidecar's and
Triton's containers (the real node's cgroupfs tree) every 50 ms; the load loop
prints each phase's wall-clock span (pods share this machine's clock), and the
usage over the span, less the container's idle rate measured just before, is
divided by the requests sent. On 2 shared cores the client, kube-proxy, the
sidecar and Triton all compete: the figures are for comparing paths, not a
capacity claim.

Run: .venv/bin/python bench/serving/real_pod.py [--requests 1000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support import real_cgroup  # noqa: E402
from tests.support.cluster import Cluster, start_cluster, stop_cluster, wait_for  # noqa: E402
from tests.support.operator import (  # noqa: E402
    OperatorProcess,
    install,
    service_account_kubeconfig,
    wait_ready,
)
from tests.support.real_node import RealNode, Unavailable, find_real_node  # noqa: E402
from tests.support.real_sample import REPORT, pod_output  # noqa: E402

TRITON = "triton"
SIDECAR = "drift-monitor"

# The load loop (run in a pod): for each target, warm up, then --requests
# sequential calls (latency), then as many again from `concurrency` threads.
LOAD = r"""
import json, sys, threading, time
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

targets, n, conc = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
x = np.random.default_rng(1).standard_normal((1, 4)).astype(np.float32)

def caller(proto, address):
    mod = httpclient if proto == "http" else grpcclient
    client = (httpclient.InferenceServerClient(address, network_timeout=30)
              if proto == "http" else grpcclient.InferenceServerClient(address))
    inp = mod.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(x)
    return lambda: client.infer("fraud-detector", [inp])

out = []
for label, proto, address in targets:
    call = caller(proto, address)
    for _ in range(50):
        call()
    time.sleep(1.0)
    lat = []
    t0 = time.time()
    for _ in range(n):
        s = time.perf_counter()
        call()
        lat.append(time.perf_counter() - s)
    t1 = time.time()
    calls = [caller(proto, address) for _ in range(conc)]
    per = n // conc
    def run(c):
        for _ in range(per):
            c()
    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    t2 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t3 = time.time()
    lat.sort()
    out.append({"label": label, "seq": [t0, t1], "conc": [t2, t3], "n": n, "nconc": per * conc,
                "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]})
    time.sleep(1.0)
print(json.dumps(out))
report(out)
"""


class CpuSampler:
    """``cpuacct.usage`` of some containers, sampled on a thread with wall-clock stamps."""

    def __init__(self, paths: dict[str, Path], period: float = 0.05) -> None:
        self.paths = paths
        self.period = period
        self.samples: dict[str, list[tuple[float, float]]] = {k: [] for k in paths}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for name, path in self.paths.items():
                self.samples[name].append((now, int(path.read_text()) / 1e9))
            self._stop.wait(self.period)

    def at(self, name: str, t: float) -> float:
        """CPU seconds at wall time ``t``, interpolated between samples."""
        s = self.samples[name]
        i = bisect.bisect_left(s, (t, -1.0))
        if i <= 0:
            return s[0][1]
        if i >= len(s):
            return s[-1][1]
        (ta, ua), (tb, ub) = s[i - 1], s[i]
        return ua + (ub - ua) * (t - ta) / (tb - ta) if tb > ta else ub

    def over(self, name: str, start: float, end: float) -> float:
        return self.at(name, end) - self.at(name, start)


def run_pod_load(
    cluster: Cluster, ns: str, node: RealNode, image: str, targets: list, n: int, conc: int
) -> list[dict[str, Any]]:
    name = f"load-{uuid.uuid4().hex[:6]}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": node.pod_spec(
                restartPolicy="Never",
                containers=[
                    {
                        "name": "load",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": [
                            "python",
                            "-c",
                            REPORT + LOAD,
                            json.dumps(targets),
                            str(n),
                            str(conc),
                        ],
                    }
                ],
            ),
        }
    )

    def finished() -> str | None:
        phase = cluster.core.read_namespaced_pod(name, ns).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(finished, timeout=1800, interval=1, what=f"load pod {name}")
    try:
        if phase != "Succeeded":
            raise AssertionError(str(cluster.core.read_namespaced_pod(name, ns).status))
        return json.loads(pod_output(cluster, name, ns))
    finally:
        cluster.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


def run_in_pod_load(
    cluster: Cluster, ns: str, pod: str, targets: list, n: int, conc: int
) -> list[dict[str, Any]]:
    proc = cluster.kubectl(
        "exec", "-n", ns, pod, "-c", TRITON, "--",
        "python", "-c", "def report(o): pass\n" + LOAD, json.dumps(targets), str(n), str(conc),
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"in-pod load loop failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Served:
    """The sample served on the real node, and what serving it started (stopped by
    ``close``, also when serving fails half-way)."""

    def __init__(self, cluster: Cluster, node: RealNode, work: Path) -> None:
        self.cluster = cluster
        self.node = node
        self.work = work
        self.namespace = f"bench-{uuid.uuid4().hex[:6]}"
        self.operator: OperatorProcess | None = None
        self.store: Any = None
        self.pod: Any = None
        self.client_image = ""

    def start(self) -> Served:
        from tests.support.project_images import build_images, import_images
        from tests.support.real_sample import (
            NAME,
            credentials_secret,
            publish_model,
            sample_for_the_real_node,
        )
        from tests.support.s3 import start_s3_server

        cluster, node, work = self.cluster, self.node, self.work
        entries = build_images()
        import_images(entries)
        self.client_image = entries["operator"]["ref"]
        install(cluster)
        kubeconfig = service_account_kubeconfig(cluster, work / "kubeconfig")
        self.operator = OperatorProcess(
            kubeconfig=kubeconfig,
            log_path=work / "operator.log",
            extra_env={
                "MODELOPS_IMAGE": entries["operator"]["ref"],
                "MODELOPS_TRITON_IMAGE": entries["runtime"]["ref"],
            },
        ).start()
        for sub in ("s3", "model"):
            (work / sub).mkdir()
        self.store = start_s3_server(work / "s3", host=node.host_ip)
        publish_model(self.store, work / "model")
        ns = self.namespace
        cluster.kubectl("create", "namespace", ns)
        cluster.apply(credentials_secret(ns, self.store))
        cluster.apply(sample_for_the_real_node(ns, node))
        wait_ready(cluster, ns, NAME, timeout=600)
        [self.pod] = [
            p
            for p in cluster.core.list_namespaced_pod(
                ns, label_selector=f"modelops.io/model-deployment={NAME}"
            ).items
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        ]
        return self

    def close(self) -> None:
        from tests.support.s3 import stop_s3_server

        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)
        if self.operator:
            self.operator.stop()
        if self.store:
            stop_s3_server(self.store)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    import tempfile

    from tests.support.real_sample import NAME

    cluster = start_cluster()
    try:
        try:
            node = find_real_node(cluster)
        except Unavailable as e:
            print(f"skipped: {e}")
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            served = Served(cluster, node, Path(tmp))
            try:
                served.start()
                ns, pod, image = served.namespace, served.pod, served.client_image
                ip = pod.status.pod_ip
                svc = f"{NAME}.{ns}.svc.cluster.local"
                from_pod = [
                    ["HTTP  Service -> sidecar -> Triton", "http", f"{svc}:8000"],
                    ["HTTP  pod IP -> sidecar -> Triton", "http", f"{ip}:8080"],
                    ["HTTP  pod IP -> Triton", "http", f"{ip}:8000"],
                    ["gRPC  Service -> sidecar -> Triton", "grpc", f"{svc}:8001"],
                    ["gRPC  pod IP -> sidecar -> Triton", "grpc", f"{ip}:8081"],
                ]
                in_pod = [
                    ["HTTP  loopback -> sidecar -> Triton", "http", "127.0.0.1:8080"],
                    ["HTTP  loopback -> Triton", "http", "127.0.0.1:8000"],
                    ["gRPC  loopback -> sidecar -> Triton", "grpc", "127.0.0.1:8081"],
                    ["gRPC  loopback -> Triton", "grpc", "127.0.0.1:8001"],
                ]
                paths = {c: real_cgroup.cpuacct_usage(pod, c) for c in (SIDECAR, TRITON)}
                with CpuSampler(paths) as cpu:
                    time.sleep(5)
                    idle_end = time.time()
                    idle = {c: cpu.over(c, idle_end - 4, idle_end) / 4 for c in paths}
                    rows = run_pod_load(
                        cluster, ns, node, image, from_pod, args.requests, args.concurrency
                    )
                    inside = run_in_pod_load(
                        cluster, ns, pod.metadata.name, in_pod, args.requests, args.concurrency
                    )
                    rows += [{**r, "in_pod": True} for r in inside]
                    time.sleep(0.2)
                report(rows, cpu, idle, args)
            finally:
                served.close()
    finally:
        stop_cluster(cluster)
    return 0


def report(rows: list[dict], cpu: CpuSampler, idle: dict[str, float], args: Any) -> None:
    print(
        f"command: .venv/bin/python bench/serving/real_pod.py --requests {args.requests}"
        f" --concurrency {args.concurrency}"
    )
    print(
        "1x4 FP32 requests to the sample model on the real node; sidecar CPU 1, Triton 500m"
        f" (limits); idle CPU: sidecar {idle[SIDECAR] * 1e3:.1f} ms/s,"
        f" Triton {idle[TRITON] * 1e3:.1f} ms/s (subtracted)"
    )
    head = (
        f"{'path':38} {'p50 ms':>7} {'p99 ms':>7} {'req/s c=1':>9} "
        f"{'req/s c=' + str(args.concurrency):>9} {'sidecar us/req':>14} {'Triton us/req':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        (s0, s1), (c0, c1) = r["seq"], r["conc"]
        per = {}
        for c in (SIDECAR, TRITON):
            used = cpu.over(c, s0, s1) + cpu.over(c, c0, c1)
            used -= idle[c] * ((s1 - s0) + (c1 - c0))
            per[c] = max(used, 0.0) / (r["n"] + r["nconc"]) * 1e6
        label = r["label"] + (" *" if r.get("in_pod") else "")
        print(
            f"{label:38} {r['p50'] * 1e3:7.2f} {r['p99'] * 1e3:7.2f} "
            f"{r['n'] / (s1 - s0):9.0f} {r['nconc'] / (c1 - c0):9.0f} "
            f"{per[SIDECAR]:14.0f} {per[TRITON]:13.0f}"
        )
    print("* in the pod (kubectl exec into Triton's container): the load loop's own CPU")
    print("  is charged to Triton's cgroup there, so that column is not Triton's alone.")


if __name__ == "__main__":
    sys.exit(main())

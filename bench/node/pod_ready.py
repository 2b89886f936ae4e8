"""Pod created -> Ready on the real node, and ConfigMap propagation time.

On the local cluster's real node (hack/node/node.sh: kubelet, containerd,
runc, bridge CNI), with the image already imported (imagePullPolicy Never):

- created -> Ready: from the create call until a watch shows the pod's Ready
  condition True. This is scheduling, the sandbox (pause + CNI), the
  container start and the first HTTP readiness probe (periodSeconds 1).
- ConfigMap propagation: from the patch of a ConfigMap until the pod's
  projected file (read over HTTP from the pod's IP) shows the new value. The
  kubelet watches the ConfigMap and rewrites the file on its next sync of the
  pod, so this is bounded by the kubelet's syncFrequency (printed) plus its
  jitter (up to half of it); each update waits a random 0-5 s first, so that
  updates land at random points of that period.

Run: .venv/bin/python bench/node/pod_ready.py [--runs 5] [--propagation-runs 10]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import kubernetes  # noqa: E402
from tests.support.cluster import Cluster, start_cluster, stop_cluster, wait_for  # noqa: E402
from tests.support.real_node import RealNode, Unavailable, find_real_node  # noqa: E402


def _pod(real_node: RealNode, name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": real_node.pod_spec(
            containers=[
                {
                    "name": "probe",
                    "image": real_node.images["nodeprobe"],
                    "imagePullPolicy": "Never",
                    "args": ["serve", ":8080"],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 1,
                    },
                    "volumeMounts": [{"name": "config", "mountPath": "/config"}],
                }
            ],
            volumes=[{"name": "config", "configMap": {"name": "bench"}}],
            terminationGracePeriodSeconds=1,
        ),
    }


def created_to_ready(
    cluster: Cluster, ns: str, real_node: RealNode, name: str
) -> tuple[float, str]:
    """Seconds from create to Ready (seen by a watch), and the pod's IP."""
    watch = kubernetes.watch.Watch()
    start = time.monotonic()
    cluster.core.create_namespaced_pod(ns, _pod(real_node, name))
    try:
        for event in watch.stream(
            cluster.core.list_namespaced_pod,
            ns,
            field_selector=f"metadata.name={name}",
            timeout_seconds=120,
        ):
            pod = event["object"]
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                return time.monotonic() - start, pod.status.pod_ip
    finally:
        watch.stop()
    raise AssertionError(f"pod {name} not Ready within 120s")


def read_file(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:8080/file?path=/config/value", timeout=5) as resp:
        return resp.read().decode()


def propagation(cluster: Cluster, ns: str, ip: str, value: str, pause: float) -> float:
    # The kubelet refreshes the file on its next sync of the pod: an update
    # lands at a random point of that period, as a controller's would.
    time.sleep(pause)
    start = time.monotonic()
    cluster.core.patch_namespaced_config_map("bench", ns, {"data": {"value": value}})
    wait_for(lambda: read_file(ip) == value, timeout=180, interval=0.05, what="the new value")
    return time.monotonic() - start


def kubelet_sync(cluster: Cluster, node: str) -> str:
    """The kubelet's syncFrequency and change-detection strategy, from its /configz."""
    try:
        raw = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/configz").stdout
        conf = json.loads(raw)["kubeletconfig"]
        strategy = conf.get("configMapAndSecretChangeDetectionStrategy")
        return f"syncFrequency={conf.get('syncFrequency')} strategy={strategy}"
    except Exception as e:  # reported, not fatal: the figures stand without it
        return f"(kubelet /configz unreadable: {e})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--propagation-runs", type=int, default=10)
    args = parser.parse_args()

    cluster = start_cluster()
    try:
        try:
            real_node = find_real_node(cluster)
        except Unavailable as e:
            print(f"skipped: {e}")
            return 0
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        cluster.core.create_namespace({"metadata": {"name": ns}})
        try:
            cluster.core.create_namespaced_config_map(
                ns, {"metadata": {"name": "bench"}, "data": {"value": "0"}}
            )
            ready, ip = [], ""
            for i in range(args.runs):
                seconds, ip = created_to_ready(cluster, ns, real_node, f"p{i}")
                ready.append(seconds)
            rng = random.Random(17)
            spread = [
                propagation(cluster, ns, ip, str(i + 1), rng.uniform(0, 5))
                for i in range(args.propagation_runs)
            ]
        finally:
            cluster.core.delete_namespace(ns)
        print(
            "command: .venv/bin/python bench/node/pod_ready.py"
            f" --runs {args.runs} --propagation-runs {args.propagation_runs}"
        )
        print(f"node {real_node.name}, kubelet {kubelet_sync(cluster, real_node.name)}")
        print(
            f"pod created -> Ready (image present): median {statistics.median(ready):.2f}s"
            f" (runs: {', '.join(f'{s:.2f}' for s in ready)})"
        )
        print(
            f"ConfigMap update -> projected file: median {statistics.median(spread):.2f}s,"
            f" max {max(spread):.2f}s (runs: {', '.join(f'{s:.2f}' for s in spread)})"
        )
    finally:
        stop_cluster(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())

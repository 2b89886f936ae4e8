"""How the operator scales: N ModelDeployments applied at once onto simulated nodes.

For N = 100 and 1,000 (override with --sizes) it reports, from one run on one
cluster:
  * the time until every ModelDeployment is Ready;
  * the floor: the time the API server, controllers and KWOK alone need to
    create the same children (rendered by the same code, applied directly)
    until their pods are Ready;
  * the operator's CPU seconds and peak RSS;
  * API requests the operator sent per ModelDeployment;
  * idle: requests per second (reads, writes) over 30 s once everything is Ready;
  * churn: 10% of the pods deleted at once (their ReplicaSets replace them); the
    p99 of the operator's status-lag histogram (watched change -> status written)
    over that phase, and the time until every ModelDeployment is Ready again.

With --memory-breakdown the operator runs under tracemalloc and the top
allocation sites after all are Ready are printed (slower: CPU figures of that
run are not comparable).

Run: .venv/bin/python bench/operator/scale.py [--sizes 100,1000] [--memory-breakdown]
It starts its own cluster (`modelops-bench`) and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.cluster import CLUSTER_SCRIPT, Cluster, _bin_dir_if_built  # noqa: E402
from tests.support.operator import OperatorProcess, install  # noqa: E402

from modelops.render import render_children  # noqa: E402

CLUSTER_NAME = "modelops-bench"
# Simulated CPU nodes with room for thousands of pods (the GPU pools would cap
# the run at 36 replicas).
BENCH_NODES = 10


def bench_cluster(name: str) -> Cluster:
    """The cluster `name` up, KWOK nodes only, with its binaries first on PATH.

    No real node: its kube-proxy and kube-router rewrite iptables for every Service
    on each change, work that grows with N and is nobody's control plane (at
    N = 3,000 they took more CPU than the operator)."""
    up = subprocess.run(
        [str(CLUSTER_SCRIPT), "up", name],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, MODELOPS_REAL_NODES="0"),
    )
    cluster = Cluster(
        kubeconfig=Path(up.stdout.strip().splitlines()[-1]), bin_dir=_bin_dir_if_built()
    )
    os.environ["PATH"] = f"{cluster.bin_dir}{os.pathsep}{os.environ['PATH']}"
    return cluster


def md(name: str) -> dict:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": f"file:///models/{name}", "version": "1"},
            "resources": {"gpu": {"count": 0}, "cpu": "10m", "memory": "16Mi"},
        },
    }


def add_nodes(cluster: Cluster) -> None:
    for i in range(BENCH_NODES):
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"bench-{i}",
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": f"bench-{i}"},
            },
            "status": {
                "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "1000"},
                "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "1000"},
            },
        }
        cluster.apply(node)


def create_all(cluster: Cluster, namespace: str, bodies: list[dict], plural: str) -> None:
    def create(body: dict) -> None:
        group, version = body["apiVersion"].split("/")
        cluster.custom.create_namespaced_custom_object(group, version, namespace, plural, body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, bodies))


def apply_children(cluster: Cluster, namespace: str, n: int) -> None:
    """The floor: the same children the operator would render, applied directly."""
    from modelops.kube import Kube

    kube = Kube(cluster.api_client)
    docs = []
    for i in range(n):
        body = md(f"floor-{i}")
        body["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), generation=1)
        for child in render_children(body, operator_image="bench", model_version="1"):
            child["metadata"].pop("ownerReferences", None)  # no owner exists in this run
            # Not the operator's: its watches select managed-by=modelops on the server,
            # so the floor's 3 x N objects stay out of the operator's phase.
            _relabel(child, {"app.kubernetes.io/managed-by": "modelops-bench-floor"})
            docs.append(child)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(kube.apply, docs))


def _relabel(obj: dict, labels: dict[str, str]) -> None:
    obj["metadata"]["labels"].update(labels)
    template = obj.get("spec", {}).get("template")
    if template is not None:
        template["metadata"]["labels"].update(labels)


def ready_deployments(cluster: Cluster, namespace: str) -> int:
    items = cluster.apps.list_namespaced_deployment(namespace).items
    return sum(1 for d in items if (d.status.ready_replicas or 0) >= 1)


def ready_mds(cluster: Cluster, namespace: str) -> int:
    # The storage version: a v1alpha1 list would have the conversion webhook convert
    # every object on every poll, load that the operator under test would pay for.
    items = cluster.custom.list_namespaced_custom_object(
        "modelops.io", "v1beta1", namespace, "modeldeployments"
    )["items"]
    return sum(
        1
        for m in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (m.get("status") or {}).get("conditions", [])
        )
    )


def wait_count(probe: Callable[[], int], n: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe() >= n:
            return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(f"only {probe()}/{n} ready after {timeout}s")


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return cpu, hwm


IDLE_S = 30.0
WRITE_VERBS = ("apply", "create", "patch", "patch_status", "delete", "create_event")


def requests_by_verb(op: OperatorProcess) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in op.metrics().splitlines():
        if line.startswith("modelops_api_requests_total{"):
            head, value = line.rsplit(" ", 1)
            verb = head.split('verb="', 1)[1].split('"', 1)[0]
            out[verb] = out.get(verb, 0.0) + float(value)
    return out


def lag_buckets(op: OperatorProcess) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the ModelDeployment status-lag histogram."""
    out = []
    for line in op.metrics().splitlines():
        if line.startswith("modelops_status_lag_seconds_bucket{") and "ModelDeployment" in line:
            head, value = line.rsplit(" ", 1)
            bound = head.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if bound == "+Inf" else float(bound), float(value)))
    return sorted(out)


def conversion_calls(cluster: Cluster) -> float:
    """Conversion webhook calls the API server has made for ModelDeployments so far
    (from its own metrics): what reading a version other than the stored one costs."""
    raw = cluster.kubectl("get", "--raw", "/metrics").stdout
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in raw.splitlines()
        if line.startswith("apiserver_crd_conversion_webhook_duration_seconds_count{")
        and 'crd_name="modeldeployments.modelops.io"' in line
    )


def quantile(
    before: list[tuple[float, float]], after: list[tuple[float, float]], q: float
) -> float:
    """Upper bucket bound holding the q-quantile of the observations between two scrapes."""
    counts = [(b, a - dict(before).get(b, 0.0)) for b, a in after]
    total = counts[-1][1] if counts else 0.0
    for bound, cumulative in counts:
        if total and cumulative >= q * total:
            return bound
    return float("nan")


def churn(cluster: Cluster, namespace: str, n: int, op: OperatorProcess) -> tuple[float, float]:
    """Delete 10% of the pods; (p99 status lag upper bound, seconds until all Ready again)."""
    pods = cluster.core.list_namespaced_pod(namespace).items[: max(1, n // 10)]
    before = lag_buckets(op)
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda p: cluster.core.delete_namespaced_pod(
                    p.metadata.name, namespace, grace_period_seconds=0
                ),
                pods,
            )
        )
    time.sleep(2.0)  # let the deletions register before waiting for recovery
    wait_count(lambda: ready_mds(cluster, namespace), n, timeout=1800)
    recovered = time.monotonic() - start
    time.sleep(2.0)
    return quantile(before, lag_buckets(op), 0.99), recovered


def delete_namespaces(cluster: Cluster, *names: str) -> None:
    """Delete and wait until they are gone: what a next phase measures must not share
    the machine with thousands of objects being garbage-collected."""
    for ns in names:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and any(
        cluster.kubectl("get", "namespace", ns, check=False).returncode == 0 for ns in names
    ):
        time.sleep(2.0)


def run_size(
    cluster: Cluster, n: int, workdir: Path, memory_breakdown: bool = False
) -> dict[str, float]:
    floor_ns, md_ns = f"floor-{n}", f"md-{n}"
    for ns in (floor_ns, md_ns):
        cluster.kubectl("create", "namespace", ns)

    start = time.monotonic()
    apply_children(cluster, floor_ns, n)
    wait_count(lambda: ready_deployments(cluster, floor_ns), n, timeout=1800)
    floor = time.monotonic() - start
    # The operator's run starts from the same empty cluster the floor's did: N more
    # Deployments, pods and Services would slow the controllers it waits on.
    delete_namespaces(cluster, floor_ns)

    env = {"MODELOPS_TRACEMALLOC": str(workdir / f"memory-{n}.txt")} if memory_breakdown else {}
    op = OperatorProcess(
        kubeconfig=cluster.kubeconfig, log_path=workdir / f"operator-{n}.log", extra_env=env
    )
    op.start()
    assert op.proc is not None
    cpu0, _ = proc_usage(op.proc.pid)
    requests0 = op.metric("modelops_api_requests_total")
    conversions0 = conversion_calls(cluster)
    start = time.monotonic()
    create_all(cluster, md_ns, [md(f"m-{i}") for i in range(n)], "modeldeployments")
    wait_count(lambda: ready_mds(cluster, md_ns), n, timeout=3600)
    elapsed = time.monotonic() - start
    cpu1, peak = proc_usage(op.proc.pid)
    requests = op.metric("modelops_api_requests_total") - requests0
    conversions = conversion_calls(cluster) - conversions0
    breakdown = ""
    if memory_breakdown:
        os.kill(op.proc.pid, signal.SIGUSR2)
        time.sleep(5)
        breakdown = (workdir / f"memory-{n}.txt").read_text()

    idle0 = requests_by_verb(op)
    time.sleep(IDLE_S)
    idle1 = requests_by_verb(op)
    idle = {v: idle1.get(v, 0.0) - idle0.get(v, 0.0) for v in idle1}
    idle_writes = sum(c for v, c in idle.items() if v in WRITE_VERBS)
    idle_reads = sum(c for v, c in idle.items() if v not in WRITE_VERBS)

    lag_p99, recovered = churn(cluster, md_ns, n, op)
    op.stop()
    # Wait for the deletions: a next, larger size measured while thousands of
    # objects are still being garbage-collected would have a slower floor.
    delete_namespaces(cluster, md_ns)
    return {
        "n": n,
        "all_ready_s": elapsed,
        "floor_s": floor,
        "ratio": elapsed / floor,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_mib": peak / 2**20,
        "requests_per_md": requests / n,
        # The bench creates in v1alpha1: one call per create is the bench's own.
        "conversions_per_md": conversions / n,
        "cpu_ms_per_md": 1000 * (cpu1 - cpu0) / n,
        "idle_writes": idle_writes,
        "idle_reads_per_s_per_1000": idle_reads / IDLE_S * 1000 / n,
        "churn_lag_p99_s": lag_p99,
        "churn_recovered_s": recovered,
        "memory": breakdown,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--keep-cluster", action="store_true")
    parser.add_argument("--memory-breakdown", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    cluster = bench_cluster(CLUSTER_NAME)
    flags = " --memory-breakdown" if args.memory_breakdown else ""
    print(f"command: .venv/bin/python bench/operator/scale.py --sizes {args.sizes}{flags}")
    # Each row as soon as its size is measured: a large size takes tens of minutes, and
    # the smaller sizes' rows are worth having if it is stopped.
    print(
        f"{'N':>6} {'all Ready s':>12} {'floor s':>9} {'ratio':>6} {'op CPU s':>9} "
        f"{'CPU ms/MD':>10} {'peak RSS MiB':>13} {'API req/MD':>11} {'idle writes':>12} "
        f"{'idle reads/s/1k':>16} {'churn lag p99 s':>16} {'churn recovery s':>17} "
        f"{'webhook calls/MD':>17}",
        flush=True,
    )
    rows = []
    try:
        install(cluster)
        add_nodes(cluster)
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                r = run_size(cluster, n, Path(tmp), args.memory_breakdown)
                rows.append(r)
                print(
                    f"{r['n']:>6} {r['all_ready_s']:>12.1f} {r['floor_s']:>9.1f} "
                    f"{r['ratio']:>6.2f} {r['cpu_s']:>9.1f} {r['cpu_ms_per_md']:>10.0f} "
                    f"{r['peak_rss_mib']:>13.0f} {r['requests_per_md']:>11.1f} "
                    f"{r['idle_writes']:>12.0f} {r['idle_reads_per_s_per_1000']:>16.2f} "
                    f"{r['churn_lag_p99_s']:>16.2f} {r['churn_recovered_s']:>17.1f} "
                    f"{r['conversions_per_md']:>17.1f}",
                    flush=True,
                )
    finally:
        if not args.keep_cluster:
            subprocess.run([str(CLUSTER_SCRIPT), "down", CLUSTER_NAME], capture_output=True)

    for r in rows:
        if r["memory"]:
            print(f"\nmemory after all Ready, N={r['n']} (tracemalloc, top sites):")
            print(r["memory"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

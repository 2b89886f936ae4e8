"""Operator restart and leader failover at N ModelDeployments (default 50) on KWOK.

With N ModelDeployments Ready it measures, on one cluster:
  * restart: the operator SIGKILLed and started again (one replica, no leader
    election) ->
      - stores listed (the ModelDeployment barrier, from its log),
      - a spec change made right after the start followed (its
        status.observedGeneration catches up),
      - steady: every ModelDeployment reconciled once and the work queue empty;
  * failover: two replicas with --leader-elect; the leader SIGKILLed ->
      - the standby's first write (from the write log every replica keeps with
        MODELOPS_LOG_WRITES), and that the killed leader wrote nothing after it,
      - steady: the new leader reconciled every ModelDeployment, queue empty.

Run: .venv/bin/python bench/operator/failover.py [--n 200] [--keep-cluster]
It starts its own cluster (`modelops-bench-failover`) and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import add_nodes, bench_cluster, create_all, md, ready_mds, wait_count  # noqa: E402
from tests.support.cluster import CLUSTER_SCRIPT, Cluster  # noqa: E402
from tests.support.operator import OperatorProcess, install  # noqa: E402

CLUSTER_NAME = "modelops-bench-failover"
TIMEOUT_S = 1800.0


def reconciles(op: OperatorProcess) -> float:
    return op.metric("modelops_reconcile_duration_seconds_count", kind="ModelDeployment")


def busy(op: OperatorProcess) -> float:
    return op.metric("modelops_workqueue_keys", state="ready") + op.metric(
        "modelops_workqueue_keys", state="processing"
    )


def wait_steady(op: OperatorProcess, n: int, start: float) -> float:
    """Seconds from ``start`` until ``op`` reconciled n ModelDeployments and its queue is empty."""
    while time.monotonic() - start < TIMEOUT_S:
        try:
            if reconciles(op) >= n and busy(op) == 0:
                return time.monotonic() - start
        except OSError:
            pass  # metrics endpoint not up yet
        time.sleep(0.2)
    raise TimeoutError(f"not steady after {TIMEOUT_S}s")


def logged_at(op: OperatorProcess, text: str, start: float) -> float:
    """Seconds from ``start`` until ``text`` appears in the operator's log."""
    while time.monotonic() - start < TIMEOUT_S:
        if text in op.log_path.read_text(errors="replace"):
            return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not logged")


def spec_followed(cluster: Cluster, namespace: str, name: str, start: float) -> float:
    """Change one ModelDeployment's spec now; seconds from ``start`` until its status follows."""
    patched = cluster.custom.patch_namespaced_custom_object(
        "modelops.io",
        "v1alpha1",
        namespace,
        "modeldeployments",
        name,
        {"spec": {"resources": {"memory": "17Mi"}}},
    )
    generation = patched["metadata"]["generation"]
    while time.monotonic() - start < TIMEOUT_S:
        live = cluster.custom.get_namespaced_custom_object(
            "modelops.io", "v1alpha1", namespace, "modeldeployments", name
        )
        if (live.get("status") or {}).get("observedGeneration") == generation:
            return time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutError("spec change not followed")


def restart(cluster: Cluster, namespace: str, n: int, workdir: Path) -> dict[str, float]:
    op = OperatorProcess(kubeconfig=cluster.kubeconfig, log_path=workdir / "restart.log")
    op.start()
    create_all(cluster, namespace, [md(f"m-{i}") for i in range(n)], "modeldeployments")
    wait_count(lambda: ready_mds(cluster, namespace), n, timeout=TIMEOUT_S)
    time.sleep(2.0)
    op.kill()
    op.log_path.write_text("")  # only the new process's lines from here
    start = time.monotonic()
    op.start()
    try:
        listed = logged_at(op, "ModelDeployment stores listed", start)
        followed = spec_followed(cluster, namespace, "m-0", start)
        steady = wait_steady(op, n, start)
    finally:
        op.stop()
    return {"restart_listed_s": listed, "restart_followed_s": followed, "restart_steady_s": steady}


def failover(cluster: Cluster, namespace: str, n: int, workdir: Path) -> dict[str, float]:
    args = ["--leader-elect", "--leader-elect-id", f"bench-{uuid.uuid4().hex[:6]}"]
    replicas = [
        OperatorProcess(
            kubeconfig=cluster.kubeconfig,
            log_path=workdir / f"replica-{name}.log",
            extra_env={"MODELOPS_LOG_WRITES": "true", "POD_NAME": f"bench-{name}"},
            args=args,
        )
        for name in ("a", "b")
    ]
    a, b = replicas
    try:
        start = time.monotonic()
        a.start()
        logged_at(a, "acquired the Lease", start)
        wait_steady(a, n, start)
        b.start()
        logged_at(b, "ModelDeployment stores listed", start)
        a.kill()
        killed_at = time.time()
        start = time.monotonic()
        while not b.writes():
            if time.monotonic() - start > TIMEOUT_S:
                raise TimeoutError("the standby never wrote")
            time.sleep(0.05)
        first = min(w.at for w in b.writes())
        steady = wait_steady(b, n, start)
        late = [w for w in a.writes() if w.at >= first]
    finally:
        for op in replicas:
            op.stop()
    return {
        "failover_first_write_s": first - killed_at,
        "failover_steady_s": steady,
        "double_writes": float(len(late)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="ModelDeployments (default 50)")
    parser.add_argument("--keep-cluster", action="store_true")
    args = parser.parse_args()

    cluster = bench_cluster(CLUSTER_NAME)
    namespace = f"failover-{args.n}"
    try:
        install(cluster)
        add_nodes(cluster)
        cluster.kubectl("create", "namespace", namespace)
        with tempfile.TemporaryDirectory() as tmp:
            row = restart(cluster, namespace, args.n, Path(tmp))
            row.update(failover(cluster, namespace, args.n, Path(tmp)))
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    finally:
        if not args.keep_cluster:
            subprocess.run([str(CLUSTER_SCRIPT), "down", CLUSTER_NAME], capture_output=True)

    print(f"command: .venv/bin/python bench/operator/failover.py --n {args.n}")
    print(
        f"{'N':>6} {'restart: listed s':>18} {'1st spec followed s':>20} {'steady s':>9} "
        f"{'failover: 1st write s':>22} {'steady s':>9} {'double writes':>14}"
    )
    print(
        f"{args.n:>6} {row['restart_listed_s']:>18.1f} {row['restart_followed_s']:>20.1f} "
        f"{row['restart_steady_s']:>9.1f} {row['failover_first_write_s']:>22.1f} "
        f"{row['failover_steady_s']:>9.1f} {row['double_writes']:>14.0f}"
    )
    return 0 if row["double_writes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

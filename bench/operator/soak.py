"""Soak with faults: steady churn while the API server restarts and the leader dies.

Two operator replicas (Lease leader election) manage --base ModelDeployments on
KWOK. For --minutes a driver keeps changing the cluster at --rate operations per
second, picked at random: create a ModelDeployment, edit one's spec (its memory),
delete one, delete one of their pods. Meanwhile, at fixed points of the run:

  * the kube-apiserver is restarted --apiserver-restarts times (SIGKILL, then
    started again with its own command line), which also cuts every watch;
  * the leader is SIGKILLed once (halfway) and a fresh replica joins as standby.

A process that exits on its own is started again within a second, as a kubelet
restarts a container: by design an operator replica that cannot renew its Lease
within the renew deadline (10 s) exits, which an API-server restart longer than
that causes for the leader; kube-controller-manager and kube-scheduler do the
same with theirs (kwokctl runs them as plain processes, so this script plays
their kubelet). Those restarts are counted and printed.

The driver retries each operation until the API server accepts it, then records
the intent (which objects exist, with which memory). After the last operation
it waits for the operator to settle and an independent reader (this script,
against the live objects) checks every intent:

  * every ModelDeployment that should exist has observedGeneration ==
    generation, Ready=True, status.readyReplicas equal to its Deployment's, and
    a Deployment whose pod template asks for the memory last written;
  * every deleted ModelDeployment is gone with its Deployment and Service;
  * no write by the killed leader after the standby's first write;
  * memory: each replica's RSS sampled every 10 s with its role (leader or
    standby); over its last stretch in one role, the second half's mean against
    the first half's (flat: a ratio near 1; the population stays near --base).

It prints the operations done, faults injected, the seconds to settle after the
churn stopped, every disagreement (expected: none) and the memory figures; it
exits 1 when any check fails.

Run: .venv/bin/python bench/operator/soak.py [--minutes 30] [--base 200] [--rate 2]
It starts its own cluster (`modelops-bench-soak`) and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import kubernetes  # noqa: E402
import urllib3  # noqa: E402
from scale import add_nodes, bench_cluster, create_all, md  # noqa: E402
from tests.support.cluster import CLUSTER_SCRIPT, Cluster  # noqa: E402
from tests.support.operator import OperatorProcess, install  # noqa: E402

CLUSTER_NAME = "modelops-bench-soak"
GROUP, VERSION, PLURAL = "modelops.io", "v1alpha1", "modeldeployments"
MEMORIES = ("16Mi", "17Mi", "18Mi", "19Mi")
SETTLE_TIMEOUT_S = 600.0
T = TypeVar("T")


# -- the control plane, as static pods under a kubelet ---------------------------------


class ControlPlane:
    """The cluster's processes (kwokctl's binary runtime), restarted like static pods.

    kube-controller-manager and kube-scheduler exit when they cannot renew their
    leader Lease (an API-server outage longer than their renew deadline); a
    kubelet would start them again, so this does too (``revive``)."""

    COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.dir = kubeconfig.parent
        self.commands: dict[str, tuple[list[bytes], str]] = {}
        for name in self.COMPONENTS:
            pid = self._pid(name)
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            self.commands[name] = (argv, os.readlink(f"/proc/{pid}/cwd"))
        self.revived: list[str] = []
        # A restart in progress is not an exit for revive() to repair.
        self._lock = threading.Lock()

    def _pid(self, name: str) -> int:
        return int((self.dir / "pids" / f"{name}.pid").read_text().strip())

    def _start(self, name: str) -> None:
        argv, cwd = self.commands[name]
        with (self.dir / "logs" / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        # kwokctl stops the cluster's processes by these files.
        (self.dir / "pids" / f"{name}.pid").write_text(str(proc.pid))

    def revive(self, at: float) -> None:
        with self._lock:
            self._revive(at)

    def _revive(self, at: float) -> None:
        for name in self.COMPONENTS:
            pid = self._pid(name)
            if not _alive(pid):
                self._start(name)
                self.revived.append(f"{at:7.0f}s {name} had exited; started again")

    def restart_apiserver(self) -> float:
        """Kill the kube-apiserver, start it again with the same command line;
        returns the seconds until it answered /readyz again."""
        with self._lock:
            start = time.monotonic()
            self._kill_and_start_apiserver()
        kubectl = ["kubectl", "--kubeconfig", str(self.kubeconfig)]  # on PATH (main puts it there)
        while time.monotonic() - start < 300:
            ok = subprocess.run([*kubectl, "get", "--raw=/readyz"], capture_output=True)
            if ok.returncode == 0:
                return time.monotonic() - start
            time.sleep(0.2)
        raise TimeoutError("kube-apiserver did not come back")

    def _kill_and_start_apiserver(self) -> None:
        pid = self._pid("kube-apiserver")
        # SIGKILL, the crash case: a graceful stop waits a minute or more for open
        # watches, and its port, once free, can be taken by another process here
        # before the new server binds it (kwokctl allocates from the same range).
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.02)
        self._start("kube-apiserver")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- the driver ---------------------------------------------------------------------


def retried(call: Callable[[], T], what: str, timeout: float = 180.0) -> T:
    """``call`` until the API server accepts it (it may be restarting)."""
    start = time.monotonic()
    while True:
        try:
            return call()
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as err:
            status = getattr(err, "status", None)
            if status in (404, 409):
                raise
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{what}: {err}") from err
            time.sleep(0.5)


@dataclass
class Intent:
    """What the driver has done, as the cluster should show it at the end."""

    memory: dict[str, str] = field(default_factory=dict)  # live name -> memory
    deleted: set[str] = field(default_factory=set)
    ops: dict[str, int] = field(default_factory=dict)

    def count(self, op: str) -> None:
        self.ops[op] = self.ops.get(op, 0) + 1


class Driver:
    def __init__(
        self, cluster: Cluster, namespace: str, intent: Intent, seed: int, population: int
    ) -> None:
        self.cluster = cluster
        self.population = population
        self.namespace = namespace
        self.intent = intent
        self.rng = random.Random(seed)
        self.serial = 0

    def step(self) -> None:
        live = sorted(self.intent.memory)
        # Creates and deletes balance around the starting population, so that the
        # operator's memory can be compared over time (it grows with the objects).
        grow = 0.25 if len(live) < self.population else 0.20
        roll = self.rng.random()
        if roll < grow or len(live) < 10:
            self.create()
        elif roll < 0.55:
            self.edit(self.rng.choice(live))
        elif roll < 0.75:
            self.delete(self.rng.choice(live))
        else:
            self.delete_pod()

    def create(self) -> None:
        self.serial += 1
        name = f"s-{self.serial}-{uuid.uuid4().hex[:4]}"
        body = md(name)
        custom = self.cluster.custom

        def call() -> None:
            try:
                custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
            except kubernetes.client.ApiException as err:
                if err.status != 409:  # 409: an earlier try got through
                    raise

        retried(call, f"create {name}")
        self.intent.memory[name] = body["spec"]["resources"]["memory"]
        self.intent.count("create")

    def edit(self, name: str) -> None:
        memory = self.rng.choice([m for m in MEMORIES if m != self.intent.memory[name]])
        patch = {"spec": {"resources": {"memory": memory}}}
        retried(
            lambda: self.cluster.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, patch
            ),
            f"edit {name}",
        )
        self.intent.memory[name] = memory
        self.intent.count("edit")

    def delete(self, name: str) -> None:
        def call() -> None:
            try:
                self.cluster.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name
                )
            except kubernetes.client.ApiException as err:
                if err.status != 404:
                    raise

        retried(call, f"delete {name}")
        del self.intent.memory[name]
        self.intent.deleted.add(name)
        self.intent.count("delete")

    def delete_pod(self) -> None:
        pods = retried(
            lambda: self.cluster.core.list_namespaced_pod(self.namespace, limit=200).items,
            "list pods",
        )
        if not pods:
            return
        pod = self.rng.choice(pods)

        def call() -> None:
            try:
                self.cluster.core.delete_namespaced_pod(
                    pod.metadata.name, self.namespace, grace_period_seconds=0
                )
            except kubernetes.client.ApiException as err:
                if err.status != 404:
                    raise

        retried(call, "delete pod")
        self.intent.count("delete-pod")


# -- the independent reader ---------------------------------------------------------


def disagreements(cluster: Cluster, namespace: str, intent: Intent) -> list[str]:
    """Every way the live objects differ from the intent (empty: they agree)."""
    mds = {
        m["metadata"]["name"]: m
        for m in cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]
    }
    deployments = {
        d.metadata.name: d for d in cluster.apps.list_namespaced_deployment(namespace).items
    }
    services = {s.metadata.name for s in cluster.core.list_namespaced_service(namespace).items}
    out = []
    for name, memory in sorted(intent.memory.items()):
        live = mds.get(name)
        if live is None:
            out.append(f"{name}: missing")
            continue
        status: dict[str, Any] = live.get("status") or {}
        if status.get("observedGeneration") != live["metadata"]["generation"]:
            out.append(
                f"{name}: observedGeneration {status.get('observedGeneration')} "
                f"!= generation {live['metadata']['generation']}"
            )
        ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
        if not ready or ready[0].get("status") != "True":
            out.append(f"{name}: not Ready ({ready[0].get('reason') if ready else 'no condition'})")
        deployment = deployments.get(name)
        if deployment is None:
            out.append(f"{name}: no Deployment")
            continue
        asked = deployment.spec.template.spec.containers[0].resources.requests.get("memory")
        if asked != memory:
            out.append(f"{name}: Deployment asks {asked}, spec says {memory}")
        if (deployment.status.ready_replicas or 0) != status.get("readyReplicas"):
            out.append(
                f"{name}: status.readyReplicas {status.get('readyReplicas')} "
                f"!= Deployment's {deployment.status.ready_replicas or 0}"
            )
    for name in sorted(intent.deleted):
        left = [
            what
            for what, there in (
                ("object", name in mds),
                ("Deployment", name in deployments),
                ("Service", name in services),
            )
            if there
        ]
        if left:
            out.append(f"{name}: deleted, but its {', '.join(left)} remain")
    return out


# -- memory -------------------------------------------------------------------------


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class MemorySampler(threading.Thread):
    """Each replica's RSS every ``every_s``, with the role it had then (a leader keeps
    more than a standby: its render memo and ledgers)."""

    def __init__(
        self,
        replicas: Callable[[], list[OperatorProcess]],
        holder: Callable[[], str],
        every_s: float = 10.0,
    ) -> None:
        super().__init__(daemon=True)
        self.replicas = replicas
        self.holder = holder
        self.every_s = every_s
        self.samples: dict[str, list[tuple[float, float, bool]]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.done.wait(self.every_s):
            try:
                holder = self.holder()
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError):
                continue  # the API server is restarting: no role to note
            for op in self.replicas():
                if op.proc is None or op.proc.poll() is not None:
                    continue
                value = rss_mib(op.proc.pid)
                if value is not None:
                    name = op.extra_env.get("POD_NAME", str(op.proc.pid))
                    leads = holder.startswith(name + "_")
                    self.samples.setdefault(name, []).append(
                        (time.monotonic() - start, value, leads)
                    )


def flatness(samples: list[tuple[float, float, bool]]) -> tuple[str, int, float, float, float]:
    """Over the replica's last stretch in one role: (role, samples, first half's mean
    RSS, second half's, their ratio)."""
    role = samples[-1][2]
    tail: list[float] = []
    for _, value, leads in reversed(samples):
        if leads != role:
            break
        tail.append(value)
    tail.reverse()
    half = max(1, len(tail) // 2)
    first, second = tail[:half], tail[half:] or tail
    a, b = sum(first) / len(first), sum(second) / len(second)
    return ("leader" if role else "standby"), len(tail), a, b, b / a


class Supervisor(threading.Thread):
    """Starts again every replica that exited by itself (the kubelet's job)."""

    def __init__(self, replicas: list[OperatorProcess], plane: ControlPlane) -> None:
        super().__init__(daemon=True)
        self.replicas = replicas
        self.plane = plane
        self.retired: set[int] = set()  # id() of replicas killed on purpose
        self.restarts: list[str] = []
        self.done = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.plane.revive(time.monotonic() - self.start_time)
            for op in list(self.replicas):
                if id(op) in self.retired or op.proc is None or op.proc.poll() is None:
                    continue
                at = time.monotonic() - self.start_time
                why = "exited " + str(op.proc.returncode)
                try:
                    op.start()
                except AssertionError as err:  # it exited again at once: next round
                    why += f" (restart failed: {str(err).splitlines()[0]})"
                self.restarts.append(f"{at:7.0f}s {op.extra_env['POD_NAME']} {why}; started again")


# -- the run ------------------------------------------------------------------------


def replica(cluster: Cluster, workdir: Path, name: str, lease: str) -> OperatorProcess:
    return OperatorProcess(
        kubeconfig=cluster.kubeconfig,
        log_path=workdir / f"replica-{name}.log",
        extra_env={"MODELOPS_LOG_WRITES": "true", "POD_NAME": f"soak-{name}"},
        args=["--leader-elect", "--leader-elect-id", lease],
    )


def leader_of(cluster: Cluster, namespace: str, lease: str) -> str:
    api = kubernetes.client.CoordinationV1Api(cluster.api_client)
    return api.read_namespaced_lease(lease, namespace).spec.holder_identity or ""


def run(cluster: Cluster, args: argparse.Namespace, workdir: Path) -> int:
    namespace = f"soak-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    lease = f"soak-{uuid.uuid4().hex[:6]}"
    replicas = [replica(cluster, workdir, n, lease) for n in ("a", "b")]
    for op in replicas:
        op.start()
    sampler = MemorySampler(
        lambda: list(replicas), lambda: leader_of(cluster, "modelops-system", lease)
    )
    sampler.start()
    plane = ControlPlane(cluster.kubeconfig)
    supervisor = Supervisor(replicas, plane)
    supervisor.start()
    intent = Intent()
    names = [f"base-{i}" for i in range(args.base)]
    create_all(cluster, namespace, [md(n) for n in names], PLURAL)
    intent.memory.update({n: md(n)["spec"]["resources"]["memory"] for n in names})

    driver = Driver(cluster, namespace, intent, seed=args.seed, population=args.base)
    duration = args.minutes * 60
    restarts_at = [
        duration * (i + 1) / (args.apiserver_restarts + 1) for i in range(args.apiserver_restarts)
    ]
    # Halfway, unless an API server restart is there too: then a little later.
    kill_at = duration / 2 + (duration / 20 if duration / 2 in restarts_at else 0)
    faults: list[str] = []
    killed: OperatorProcess | None = None
    standby_first_write = float("nan")
    start = time.monotonic()
    next_op = start
    try:
        while (now := time.monotonic() - start) < duration:
            if restarts_at and now >= restarts_at[0]:
                restarts_at.pop(0)
                back = plane.restart_apiserver()
                faults.append(
                    f"{now:7.0f}s kube-apiserver restarted (answered again after {back:.1f}s)"
                )
            if killed is None and now >= kill_at:
                holder = retried(
                    lambda: leader_of(cluster, "modelops-system", lease), "read the Lease"
                )
                leader = next(op for op in replicas if holder.startswith(op.extra_env["POD_NAME"]))
                supervisor.retired.add(id(leader))
                leader.kill()
                killed = leader
                killed_wall = time.time()
                fresh = replica(cluster, workdir, "c", lease)
                fresh.start()
                replicas.append(fresh)
                faults.append(f"{now:7.0f}s leader {holder} SIGKILLed; soak-c joined as standby")
            driver.step()
            next_op += 1.0 / args.rate
            time.sleep(max(0.0, next_op - time.monotonic()))
        churn_end = time.monotonic()

        settled = float("nan")
        wrong: list[str] = []
        while time.monotonic() - churn_end < SETTLE_TIMEOUT_S:
            wrong = retried(lambda: disagreements(cluster, namespace, intent), "read back")
            if not wrong:
                settled = time.monotonic() - churn_end
                break
            time.sleep(2.0)
        double_writes: list[str] = []
        if killed is not None:
            others = [
                w for op in replicas if op is not killed for w in op.writes() if w.at >= killed_wall
            ]
            if others:
                standby_first_write = min(w.at for w in others) - killed_wall
                first = min(w.at for w in others)
                double_writes = [
                    f"{w.verb} {w.kind} {w.obj}" for w in killed.writes() if w.at >= first
                ]
    finally:
        sampler.done.set()
        supervisor.done.set()
        supervisor.join(timeout=70)
        for op in replicas:
            op.stop()

    print(
        f"command: .venv/bin/python bench/operator/soak.py --minutes {args.minutes} "
        f"--base {args.base} --rate {args.rate} --apiserver-restarts {args.apiserver_restarts}"
    )
    print(
        f"operations: {dict(sorted(intent.ops.items()))}; "
        f"live at the end {len(intent.memory)}, deleted {len(intent.deleted)}"
    )
    print("faults:")
    for line in faults:
        print(f"  {line}")
    print("processes restarted after exiting by themselves (as a kubelet would):")
    for line in sorted(plane.revived + supervisor.restarts):
        print(f"  {line}")
    print(
        f"standby's first write after the leader's death: {standby_first_write:.1f}s; "
        f"writes by the dead leader after it: {len(double_writes)}"
    )
    print(
        f"settled {settled:.1f}s after the churn stopped"
        if wrong == []
        else f"NOT settled after {SETTLE_TIMEOUT_S:.0f}s"
    )
    for line in wrong[:40]:
        print(f"  disagrees: {line}")
    print(
        "memory (RSS MiB), each replica over its last stretch in one role: "
        "role, samples, first half mean, second half mean, ratio"
    )
    ratios = []
    for name, samples in sorted(sampler.samples.items()):
        role, count, first, second, ratio = flatness(samples)
        if count >= 6:
            ratios.append(ratio)
            print(f"  {name}: {role}, {count}, {first:.0f}, {second:.0f}, {ratio:.2f}")
    failed = bool(wrong) or bool(double_writes) or any(r > args.max_memory_growth for r in ratios)
    print("result:", "FAIL" if failed else "ok")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--base", type=int, default=200, help="ModelDeployments at the start")
    parser.add_argument("--rate", type=float, default=2.0, help="operations per second")
    parser.add_argument("--apiserver-restarts", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--max-memory-growth",
        type=float,
        default=1.15,
        help="second half's mean RSS over the first half's (one replica, one role), "
        "above which memory is not flat",
    )
    parser.add_argument("--keep-cluster", action="store_true")
    args = parser.parse_args()

    cluster = bench_cluster(CLUSTER_NAME)
    try:
        install(cluster)
        add_nodes(cluster)
        with tempfile.TemporaryDirectory() as tmp:
            code = run(cluster, args, Path(tmp))
            if code and args.keep_cluster:
                print(f"logs kept in {tmp}.kept")
                subprocess.run(["cp", "-r", tmp, f"{tmp}.kept"])
            return code
    finally:
        if not args.keep_cluster:
            subprocess.run([str(CLUSTER_SCRIPT), "down", CLUSTER_NAME], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())

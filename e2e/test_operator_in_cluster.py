"""The operator as users run it: the chart's Deployment, the built image, two
replicas on the real node (``real-1``: a real kubelet and containerd).

Everything the local-process e2e tests stand in for is real here: the image
runs as its non-root user on a read-only root filesystem, the kubelet's probes
of the chart's health endpoint make the replicas Ready, the operator finds the
API server through the ``kubernetes`` Service with its mounted ServiceAccount
token (in-cluster configuration, no kubeconfig), the chart's RBAC is all it
gets, its metrics answer on the pod IP, and the two replicas elect a leader
through the chart's Lease.

Two failovers, each followed by a spec change only a leader can carry out:
a crash (the leader's container SIGKILLed: no Lease release, the standby waits
the Lease out) and the leader's pod deleted as a drain or a rollout deletes it,
with its grace period (the kubelet sends SIGTERM and the leader hands the Lease
back). Not with grace period 0: that removes the pod object at once, and with it
the validity of the pod-bound ServiceAccount token the release is written with
(a 401 whenever the API server's token cache has expired). Every write is
logged with the writer's Lease identity and wall time (``MODELOPS_LOG_WRITES``
through the chart's ``operator.env``); the pods run on this machine, so their
clocks are the test's, and no object may be written by two leaders. The
failover times are printed; the bound is generous (45 s against a 15 s Lease).

The session's local operator is stopped for the test (two operators acting
on the same objects would fight) and started again afterwards.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from tests.chart.helm import CHART, Helm, build_helm
from tests.support.cluster import Cluster, fresh_namespace, wait_for
from tests.support.conversion import convert_directly, install_crds, use_service, wait_converting
from tests.support.operator import _WRITE, OperatorProcess, Write, get_md, wait_ready
from tests.support.project_images import build_images, import_images
from tests.support.real_node import TOLERATION, RealNode

from modelops.controllers.conversion import WEBHOOK_IDENTITY

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# The chart's Lease: 15 s duration, 2 s retry. The standby takes over at most
# a lease duration after the last renewal it saw, then reconciles; 45 s leaves
# room for a loaded machine. The measured figure is printed.
FAILOVER_BOUND_S = 45.0
# The chart's leaderElection.leaseDuration: a standby that saw no release waits this long.
LEASE_DURATION_S = 15.0
# How long a write may meet a conversion webhook replica that was killed a moment before
# (the kubelet and kube-proxy take it out of the Service within seconds).
WEBHOOK_RETRY_S = 30.0


def md(name: str, memory: str = "128Mi") -> dict[str, Any]:
    """A small ModelDeployment for KWOK's simulated GPU nodes (the real node is tainted)."""
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": f"file:///models/{name}", "version": "1"},
            "resources": {"gpu": {"count": 1}, "cpu": "100m", "memory": memory},
        },
    }


@pytest.fixture
def local_operator_stopped(operator: OperatorProcess) -> Iterator[None]:
    operator.stop()
    try:
        yield
    finally:
        operator.start()


@pytest.fixture
def release_namespace(cluster: Cluster) -> Iterator[str]:
    yield from fresh_namespace(cluster)


class LogFollower:
    """``kubectl logs -f`` of one pod into a file, started while the pod lives: a
    deleted pod takes its logs with it."""

    def __init__(self, cluster: Cluster, namespace: str, pod: str, path: Path) -> None:
        self.path = path
        self._out = path.open("wb")
        self.proc = subprocess.Popen(
            ["kubectl", "logs", "-f", "-n", namespace, pod, "-c", "operator"],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=cluster.env,
        )

    def text(self) -> str:
        return self.path.read_text(errors="replace")

    def writes(self) -> list[Write]:
        return _parse_writes(self.text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


def _parse_writes(text: str) -> list[Write]:
    """The writes of the reconciler. Those of the conversion webhook (its certificate
    Secret, the CRDs' caBundle) are left out: every replica makes them, leader or
    not, by design (controllers/conversion.py)."""
    out = []
    for line in text.splitlines():
        found = _WRITE.search(line)
        if found:
            verb, kind, obj, who, at = found.groups()
            if who != WEBHOOK_IDENTITY:
                out.append(Write(verb, kind, obj, who, float(at)))
    return out


def _processes(namespace: str, pod: str) -> dict[int, dict[str, str]]:
    """The processes of ``pod``'s container with their environments. The real node's
    containers are processes of this machine; the chart gives each its pod's name
    and namespace in the environment, which finds them."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("POD_NAME") == pod and env.get("POD_NAMESPACE") == namespace:
            found[int(entry.name)] = env
    return found


def _uid(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _sigkill(namespace: str, pod: str) -> None:
    """SIGKILL the pod's container: a crash, no SIGTERM, no Lease release."""
    pids = _processes(namespace, pod)
    assert pids, f"no process of pod {namespace}/{pod} on this machine"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def _change(cluster: Cluster, namespace: str, memory: str) -> None:
    """A spec change of the ModelDeployment `served` that only a leader can follow.

    The write goes through the conversion webhook (v1beta1 is stored), which both
    replicas serve behind one Service. Right after a replica's container is killed, a
    conversion the Service sends to it fails (connection reset) until the kubelet marks
    the pod unready and kube-proxy drops it, and the API server does not retry a
    webhook: the client gets a 500 naming the webhook. It retries, as kubectl users and
    GitOps controllers do; any other failure, or one that lasts, fails the test."""
    deadline = time.monotonic() + WEBHOOK_RETRY_S
    while True:
        try:
            cluster.custom.patch_namespaced_custom_object(
                "modelops.io", "v1alpha1", namespace, "modeldeployments", "served",
                {"spec": {"resources": {"memory": memory}}},
            )  # fmt: skip
            return
        except kubernetes.client.ApiException as err:
            transient = err.status == 500 and "conversion webhook" in (err.body or "")
            if not transient or time.monotonic() > deadline:
                raise
            print(f"conversion webhook unavailable, retrying: {(err.body or '')[:200]}")
            time.sleep(1.0)


def _memory(cluster: Cluster, namespace: str) -> str:
    deployment = cluster.apps.read_namespaced_deployment("served", namespace)
    return deployment.spec.template.spec.containers[0].resources.requests["memory"]


def _restarts(cluster: Cluster, namespace: str, pod: str) -> int:
    statuses = cluster.core.read_namespaced_pod(pod, namespace).status.container_statuses or []
    return sum(s.restart_count for s in statuses)


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _lease_holder(cluster: Cluster, namespace: str, name: str) -> str | None:
    try:
        lease = kubernetes.client.CoordinationV1Api(cluster.api_client).read_namespaced_lease(
            name, namespace
        )
    except kubernetes.client.ApiException as err:
        if err.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


def _metrics(pod_ip: str) -> str:
    with urllib.request.urlopen(f"http://{pod_ip}:8080/metrics", timeout=5) as response:
        return response.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
    return total


def test_two_replicas_from_the_chart_on_a_real_node_fail_over_without_double_writes(
    cluster: Cluster,
    installed: Cluster,
    real_node: RealNode,
    local_operator_stopped: None,
    release_namespace: str,
    namespace: str,
    tmp_path: Path,
):
    # Only the operator image: the pods the operator creates here go to KWOK's nodes.
    entries = build_images(("operator",))
    import_images(entries)
    repository, tag = entries["operator"]["ref"].rsplit(":", 1)

    helm = Helm(binary=build_helm(), home=tmp_path / "helm", kubeconfig=cluster.kubeconfig)
    release = f"modelops-ic-{uuid.uuid4().hex[:6]}"
    operator_name = f"{release}-operator"  # the release name holds the chart's name
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        # Both replicas on the real node; its taint keeps every other pod off it.
        "nodeSelector": {"kubernetes.io/hostname": real_node.name},
        "tolerations": [TOLERATION],
        "watchNamespaces": [namespace],
        # The CRDs are the session's (applied by the `installed` fixture), switched
        # below to this release's webhook Service.
        "crds": {"install": False},
        "operator": {"env": [{"name": "MODELOPS_LOG_WRITES", "value": "true"}]},
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    followers: list[LogFollower] = []
    # True from the first try on: a failed install leaves a release to uninstall too.
    installed_release = True
    try:
        # The chart's form of the CRDs: conversions through the release's webhook
        # Service to the pods on the real node, which make their certificate and
        # patch its CA in (no caBundle until they do: nothing reads modelops objects
        # meanwhile, the local operator is stopped).
        use_service(cluster, release_namespace, f"{release}-webhook")
        started = time.monotonic()
        proc = helm.run(
            "install", release, str(CHART), "--namespace", release_namespace,
            "--values", str(values_file), "--wait", "--timeout", "240s",
            check=False, timeout=300,
        )  # fmt: skip
        pods = cluster.core.list_namespaced_pod(
            release_namespace, label_selector="app.kubernetes.io/name=modelops-operator"
        ).items
        assert proc.returncode == 0, f"helm install failed:\n{proc.stderr}\npods:\n" + "\n".join(
            f"{p.metadata.name}: {p.status.phase} {p.status.container_statuses}" for p in pods
        )
        print(f"\nchart installed, 2 replicas Ready on {real_node.name}: "
              f"{time.monotonic() - started:.1f}s")  # fmt: skip

        # Both replicas run on the real node and are Ready: the kubelet ran them
        # and its probes of the chart's health endpoint pass.
        assert len(pods) == 2
        for pod in pods:
            assert pod.spec.node_name == real_node.name
            assert ipaddress.ip_address(pod.status.pod_ip) in real_node.pod_cidr
            assert _ready(pod), pod.status
            container = pod.spec.containers[0]
            assert container.image == entries["operator"]["ref"]
            assert container.liveness_probe.http_get.path == "/healthz"
            assert container.readiness_probe is not None
            assert container.security_context.read_only_root_filesystem
        by_name = {p.metadata.name: p for p in pods}
        # In-cluster configuration: the kubelet gave the process the `kubernetes`
        # Service's address, and nothing points it at a kubeconfig.
        service_ip = cluster.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
        for name in by_name:
            processes = _processes(release_namespace, name)
            assert processes, f"no process of {name} on this machine"
            for pid, env in processes.items():
                assert env.get("KUBERNETES_SERVICE_HOST") == service_ip
                assert "KUBECONFIG" not in env
                # The image's user, not root (the chart's restricted securityContext).
                uid = _uid(pid)
                assert uid is not None and uid != 0
        followers = [
            LogFollower(cluster, release_namespace, name, tmp_path / f"{name}.log")
            for name in by_name
        ]

        # The API server converts through the Service, and each replica, leader or
        # standby, answers conversions on its pod IP with the Secret's certificate.
        wait_converting(cluster, timeout=120)
        secret = cluster.core.read_namespaced_secret(f"{release}-webhook-cert", release_namespace)
        ca = base64.b64decode(secret.data["ca.crt"]).decode()
        for name, pod in by_name.items():
            answer = convert_directly(
                9443, f"{release}-webhook.{release_namespace}.svc", ca, pod.status.pod_ip
            )
            assert answer["response"]["result"]["status"] == "Success", (name, answer)

        # One holder of the chart's Lease, one of the two pods: a write to the API
        # server through the `kubernetes` Service from inside the pod.
        holder = wait_for(
            lambda: _lease_holder(cluster, release_namespace, operator_name),
            timeout=60,
            what="the Lease held",
        )
        leader = next((n for n in by_name if holder.startswith(n)), None)
        assert leader is not None, f"holder {holder} is none of {list(by_name)}"
        standby = next(n for n in by_name if n != leader)
        follow = {f.path.stem: f for f in followers}

        # A ModelDeployment in the watched namespace, reconciled by the leader pod.
        cluster.apply(md("served"), namespace)
        try:
            wait_ready(cluster, namespace, "served", timeout=120)
        except AssertionError as err:
            raise AssertionError(f"{err}\nleader log:\n{follow[leader].text()[-4000:]}") from None
        leader_writes = wait_for(follow[leader].writes, timeout=10, what="the leader's writes")
        assert {w.identity for w in leader_writes} == {holder}
        assert any(w.obj == f"{namespace}/served" for w in leader_writes)
        assert follow[standby].writes() == [], "the standby wrote while the leader was alive"

        # The metrics endpoint answers from each pod IP; the leader's counts reconciles.
        for name, pod in by_name.items():
            text = _metrics(pod.status.pod_ip)
            assert "modelops_reconcile_duration_seconds" in text, name
        reconciles = _sample(
            _metrics(by_name[leader].status.pod_ip),
            "modelops_reconcile_duration_seconds_count",
            kind="ModelDeployment",
        )
        assert reconciles >= 1

        # 1. A crash: the leader's process SIGKILLed (no SIGTERM, so no Lease
        # release), then a spec change only a leader can follow. The standby
        # waits out the Lease.
        before = get_md(cluster, namespace, "served")
        crashed_at = time.time()
        _sigkill(release_namespace, leader)
        _change(cluster, namespace, "192Mi")
        wait_for(
            lambda: [w for w in follow[standby].writes() if w.obj == f"{namespace}/served"],
            timeout=90,
            what="the standby's first write after the crash",
        )
        second_writes = follow[standby].writes()
        second_first = min(w.at for w in second_writes)
        second_holder = _lease_holder(cluster, release_namespace, operator_name)
        crash_failover = second_first - crashed_at
        print(
            f"failover after a crash (leader SIGKILLed) -> standby's first write: "
            f"{crash_failover:.1f}s ({holder} -> {second_holder})"
        )
        assert second_holder and second_holder.startswith(standby)
        assert crash_failover < FAILOVER_BOUND_S, follow[standby].text()[-4000:]
        after = wait_ready(cluster, namespace, "served", timeout=120)
        assert after["metadata"]["generation"] > before["metadata"]["generation"]
        assert _memory(cluster, namespace) == "192Mi"
        # No double write: everything the old leader wrote came before the new
        # leader's first write, and the new leader wrote nothing before the crash.
        assert max(w.at for w in follow[leader].writes()) < second_first
        assert min(w.at for w in second_writes) > crashed_at
        assert {w.identity for w in second_writes} == {second_holder}
        # The kubelet restarted the crashed container: a new identity, a standby.
        wait_for(
            lambda: _restarts(cluster, release_namespace, leader) >= 1,
            timeout=60,
            what="the crashed container restarted",
        )

        # 2. The leader's pod deleted with its grace period, as a drain or a
        # rollout deletes it: the kubelet sends SIGTERM, and the leader hands the
        # Lease back on its way out, while its pod (and so its token) still exists.
        deleted_at = time.time()
        cluster.core.delete_namespaced_pod(standby, release_namespace)
        _change(cluster, namespace, "256Mi")

        def third_leader() -> tuple[str, list[Write]] | None:
            who = _lease_holder(cluster, release_namespace, operator_name)
            if who is None or who == second_holder:
                return None
            pod = who.rsplit("_", 1)[0]
            proc = cluster.kubectl("logs", "-n", release_namespace, pod, "-c", "operator",
                                   check=False)  # fmt: skip
            mine = [w for w in _parse_writes(proc.stdout) if w.identity == who]
            return (who, mine) if any(w.obj == f"{namespace}/served" for w in mine) else None

        third_holder, third_writes = wait_for(
            third_leader, timeout=90, what="a new leader's first write after the pod deletion"
        )
        third_first = min(w.at for w in third_writes)
        handover = third_first - deleted_at
        print(
            f"failover after the leader pod's deletion -> new leader's first write: "
            f"{handover:.1f}s ({second_holder} -> {third_holder})"
        )
        # Sooner than any takeover without a release (a lease duration): the
        # deleted leader handed the Lease back.
        assert "released the Lease" in follow[standby].text(), follow[standby].text()[-4000:]
        assert handover < LEASE_DURATION_S
        wait_ready(cluster, namespace, "served", timeout=120)
        assert _memory(cluster, namespace) == "256Mi"
        assert max(w.at for w in follow[standby].writes()) < third_first
        assert third_first > deleted_at
        # Three leaders in turn, each writing as itself.
        assert len({holder, second_holder, third_holder}) == 3

        # A clean uninstall: the ModelDeployment goes while its operator runs.
        cluster.kubectl("delete", "md", "served", "-n", namespace, "--wait=true", "--timeout=60s")
        helm.run("uninstall", release, "--namespace", release_namespace, "--wait", timeout=180)
        installed_release = False
        wait_for(
            lambda: not cluster.core.list_namespaced_pod(release_namespace).items,
            timeout=60,
            what="the operator pods gone",
        )
        leftovers = cluster.kubectl(
            "get", "clusterrole,clusterrolebinding", "-l",
            f"app.kubernetes.io/instance={release}", "-o", "name",
        ).stdout.strip()  # fmt: skip
        assert leftovers == ""
    finally:
        for follower in followers:
            follower.stop()
        if installed_release:
            helm.run("uninstall", release, "--namespace", release_namespace, check=False)
        install_crds(cluster)  # the harness's webhook again, for the rest of the session

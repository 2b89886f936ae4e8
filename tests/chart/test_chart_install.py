"""The Helm chart on the real control plane: install into a namespace that
enforces Pod Security "restricted", run the operator with the chart's
ServiceAccount until the sample is Ready, run two replicas with the
Deployment's command line to see the standby take the Lease over, upgrade,
uninstall.

The tests of this module run in order on one release; each name of it is
random (namespace `modelops-helm-<hex>`, release of the same name), so the
install never meets the modelops-system install of e2e/ or another run.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

import tests.support.operator as operator_support
from tests.chart.helm import CHART, Helm
from tests.support.cluster import REPO, Cluster, fresh_namespace, wait_for
from tests.support.conversion import convert_directly
from tests.support.operator import (
    OperatorProcess,
    free_port,
    service_account_kubeconfig,
    wait_ready,
)

pytestmark = pytest.mark.cluster

SAMPLE = REPO / "manifests" / "samples" / "modeldeployment.yaml"
CLUSTER_KINDS = ("clusterroles", "clusterrolebindings")
NAMESPACED_KINDS = (
    "deployments",
    "replicasets",
    "services",
    "serviceaccounts",
    "poddisruptionbudgets",
    "roles",
    "rolebindings",
    "configmaps",
)


@dataclass
class Release:
    name: str
    namespace: str
    helm: Helm
    cluster: Cluster

    @property
    def operator(self) -> str:
        return f"{self.name}-operator"

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name}"

    def deployment(self, name: str) -> Any:
        return self.cluster.apps.read_namespaced_deployment(name, self.namespace)

    def pods(self) -> list[Any]:
        return self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=self.selector
        ).items

    def leftovers(self) -> list[str]:
        """Objects of the release still in the cluster (CRDs are never the release's)."""
        found = []
        for kind in (*CLUSTER_KINDS, *NAMESPACED_KINDS):
            proc = self.cluster.kubectl(
                "get", kind, "-A", "-l", self.selector, "-o", "name", check=False
            )
            found += proc.stdout.split()
        return found


@pytest.fixture(scope="module")
def release(
    cluster: Cluster, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    name = f"modelops-helm-{uuid.uuid4().hex[:8]}"
    chart_helm = Helm(binary=helm.binary, home=helm.home, kubeconfig=cluster.kubeconfig)
    rel = Release(name=name, namespace=name, helm=chart_helm, cluster=cluster)
    cluster.core.create_namespace(
        kubernetes.client.V1Namespace(
            metadata=kubernetes.client.V1ObjectMeta(
                name=name,
                labels={
                    "modelops.io/test": "true",
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            )
        )
    )
    # The CRDs are cluster-wide and shared with the rest of the session, so this
    # release leaves them to kubectl (crds.install=false, the "CRDs managed
    # elsewhere" mode); tests/chart/test_chart_upgrade.py installs them with a release.
    operator_support.install(cluster)
    try:
        chart_helm.run(
            "install", name, str(CHART), "--namespace", name,
            "--set", "crds.install=false",
            "--wait", "--timeout", "90s",
        )  # fmt: skip
        yield rel
    finally:
        # Whatever a failed test left: the release, then anything cluster-scoped
        # it owned (other test sessions share this cluster), then the namespace.
        chart_helm.run("uninstall", name, "--namespace", name, "--wait", check=False)
        for kind in CLUSTER_KINDS:
            cluster.kubectl("delete", kind, "-l", rel.selector, "--ignore-not-found", check=False)
        cluster.core.delete_namespace(name, propagation_policy="Background")


def test_install_runs_the_operator_pods_under_restricted_pod_security(release: Release):
    # The namespace really enforces "restricted": a pod that violates it is refused...
    refused = release.cluster.kubectl(
        "run", "privileged", "-n", release.namespace, "--image=busybox",
        "--dry-run=server", "--overrides",
        '{"spec": {"containers": [{"name": "privileged", "image": "busybox",'
        ' "securityContext": {"privileged": true}}]}}',
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "restricted" in refused.stderr, refused.stderr
    # ...and both operator replicas were admitted and run.
    status = release.deployment(release.operator).status
    assert status.ready_replicas == 2, status
    pods = release.pods()
    assert len(pods) == 2 and all(p.status.phase == "Running" for p in pods)
    assert {p.spec.service_account_name for p in pods} == {release.operator}
    nodes = {p.spec.node_name for p in pods}
    assert len(nodes) == 2, f"the two replicas share node {nodes}"
    # Cluster-scoped objects carry the release's name.
    release.cluster.kubectl("get", "clusterrole", release.operator)
    release.cluster.kubectl("get", "clusterrolebinding", release.operator)
    release.cluster.kubectl(
        "get", "role,rolebinding", f"{release.operator}-leader-election", "-n", release.namespace
    )


def test_operator_with_the_charts_service_account_makes_the_sample_ready(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # service_account_kubeconfig takes the account from this module constant.
    monkeypatch.setattr(operator_support, "SERVICE_ACCOUNT", (release.namespace, release.operator))
    kubeconfig = service_account_kubeconfig(release.cluster, tmp_path / "kubeconfig")
    op = OperatorProcess(kubeconfig=kubeconfig, log_path=tmp_path / "operator.log").start()
    sample = yaml.safe_load(SAMPLE.read_text())
    try:
        with contextlib.closing(fresh_namespace(release.cluster)) as namespaces:
            namespace = next(namespaces)
            release.cluster.apply(sample, namespace)
            try:
                live = wait_ready(release.cluster, namespace, sample["metadata"]["name"])
            except AssertionError as err:
                raise AssertionError(f"{err}\noperator log:\n{op.log_tail()}") from None
            assert live["status"]["readyReplicas"] >= 1
            # Deleting while the operator still runs, so nothing waits on it.
            release.cluster.kubectl(
                "delete", "md", sample["metadata"]["name"], "-n", namespace, "--wait=true"
            )
    finally:
        op.stop()
    assert not rbac_denials(tmp_path / "operator.log")


def rbac_denials(log: Path) -> list[str]:
    """Requests the chart's RBAC refused, from an operator log, as "verb resource".
    (Other 403s, such as writes into a terminating namespace, are not about
    permissions.) The message may be JSON-escaped inside a response body."""
    pattern = re.compile(
        r'User \\?"system:serviceaccount:[^"\\]+\\?" cannot ([\w-]+) resource \\?"([^"\\]+)'
    )
    text = log.read_text(errors="replace")
    return sorted({f"{verb} {resource}" for verb, resource in pattern.findall(text)})


class PodProcess:
    """An operator pod's container command line (args + env), run locally."""

    def __init__(self, deployment: Any, kubeconfig: Path, log: Path) -> None:
        (container,) = deployment.spec.template.spec.containers
        self.args = list(container.args)
        # Every replica serves the conversion webhook on the same port in its pod;
        # processes of one host each need their own.
        self.webhook_port: int | None = None
        if "--conversion-webhook-port" in self.args:
            self.webhook_port = free_port()
            self.args[self.args.index("--conversion-webhook-port") + 1] = str(self.webhook_port)
        self.env = {e.name: e.value for e in container.env if e.value is not None}
        # The downward API's pod name and namespace, as the kubelet would set them.
        pod_fields = {
            "metadata.namespace": deployment.metadata.namespace,
            "metadata.name": f"{deployment.metadata.name}-local-{free_port()}",
        }
        for e in container.env:
            ref = e.value_from.field_ref if e.value_from is not None else None
            if ref is not None and ref.field_path in pod_fields:
                self.env[e.name] = pod_fields[ref.field_path]
        self.liveness = free_port()
        self.log = log
        env = dict(
            os.environ,
            **self.env,
            KUBECONFIG=str(kubeconfig),
            MODELOPS_METRICS_PORT=str(free_port()),
            MODELOPS_LIVENESS=f"http://127.0.0.1:{self.liveness}/healthz",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", *self.args],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def logged(self, text: str) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.args} exited:\n{self.tail()}")
        return text in self.log.read_text(errors="replace")

    def alive(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness}/healthz", timeout=3) as r:
            return r.status == 200

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def lease_holder(release: Release) -> str | None:
    proc = release.cluster.kubectl(
        "get", "lease", release.operator, "-n", release.namespace, "-o", "yaml", check=False
    )
    if proc.returncode != 0:
        return None
    return (yaml.safe_load(proc.stdout).get("spec") or {}).get("holderIdentity") or None


def test_two_replicas_command_lines_give_one_leader_and_a_standby_that_takes_over(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(operator_support, "SERVICE_ACCOUNT", (release.namespace, release.operator))
    kubeconfig = service_account_kubeconfig(release.cluster, tmp_path / "kubeconfig")
    deployment = release.deployment(release.operator)
    processes: list[PodProcess] = []
    try:
        first = PodProcess(deployment, kubeconfig, tmp_path / "first.log")
        processes.append(first)
        holder = wait_for(lambda: lease_holder(release), timeout=60, what="a Lease holder")
        assert first.logged(f"{holder} acquired the Lease")
        second = PodProcess(deployment, kubeconfig, tmp_path / "second.log")
        processes.append(second)
        wait_for(
            lambda: second.logged("ModelDeployment stores listed"),
            timeout=60,
            what="the standby's stores listed",
        )
        assert second.alive(), "a standby must pass its liveness probe"
        assert not second.logged("leading: reconciling"), second.tail()
        # Both replicas answer conversions (the webhook Service sends the API server
        # to either), with the certificate the first made in the release's Secret,
        # valid for the Service's name.
        secret = release.cluster.core.read_namespaced_secret(
            f"{release.name}-webhook-cert", release.namespace
        )
        ca = base64.b64decode(secret.data["ca.crt"]).decode()
        for process in (first, second):
            assert process.webhook_port is not None
            answer = convert_directly(
                process.webhook_port, f"{release.name}-webhook.{release.namespace}.svc", ca
            )
            assert answer["response"]["result"]["status"] == "Success", answer
            (converted,) = answer["response"]["convertedObjects"]
            assert converted["spec"]["activeDeadline"] == "2h"

        # The leader stops (an upgrade's rolling update): it hands the Lease
        # back and the standby takes it at its next look, well within the lease.
        first.stop()
        stopped = time.monotonic()
        wait_for(
            lambda: second.logged("leading: reconciling"), timeout=15, what="the standby to lead"
        )
        print(f"\nLease handed over {time.monotonic() - stopped:.1f}s after the leader stopped")
        assert lease_holder(release) != holder
    except AssertionError as err:
        logs = "\n".join(f"--- {p.log.name}\n{p.tail()}" for p in processes)
        raise AssertionError(f"{err}\n{logs}") from None
    finally:
        for process in processes:
            process.stop()
    for process in processes:
        assert not rbac_denials(process.log)


def template_hash(release: Release, name: str) -> tuple[str, int]:
    deployment = release.deployment(name)
    sets = release.cluster.apps.list_namespaced_replica_set(
        release.namespace, label_selector=release.selector
    ).items
    current = [
        rs
        for rs in sets
        if any(o.name == name for o in rs.metadata.owner_references or [])
        and rs.spec.replicas
        and int(rs.metadata.annotations["deployment.kubernetes.io/revision"])
        == int(deployment.metadata.annotations["deployment.kubernetes.io/revision"])
    ]
    assert len(current) == 1, [rs.metadata.name for rs in current]
    return current[0].metadata.labels["pod-template-hash"], deployment.metadata.generation


def test_upgrade_with_new_resources_rolls_the_operator(release: Release):
    before = {release.operator: template_hash(release, release.operator)}
    release.helm.run(
        "upgrade", release.name, str(CHART), "--namespace", release.namespace,
        "--reset-then-reuse-values", "--set", "resources.limits.memory=768Mi",
        "--wait", "--timeout", "90s",
    )  # fmt: skip
    for name, (old_hash, old_generation) in before.items():
        new_hash, generation = template_hash(release, name)
        assert new_hash != old_hash and generation > old_generation, name
    pods = wait_for(
        lambda: (
            (ps := [p for p in release.pods() if not p.metadata.deletion_timestamp])
            and all(p.status.phase == "Running" for p in ps)
            and len(ps) == 2
            and ps
        ),
        timeout=60,
        what="the new operator pods",
    )
    for pod in pods:
        assert pod.spec.containers[0].resources.limits["memory"] == "768Mi"
    history = release.helm.run("history", release.name, "-n", release.namespace, "-o", "yaml")
    assert [h["status"] for h in yaml.safe_load(history.stdout)] == ["superseded", "deployed"]


def test_uninstall_leaves_no_operator_objects_but_keeps_the_crds(release: Release):
    release.helm.run("uninstall", release.name, "--namespace", release.namespace, "--wait")
    # Helm's --wait covers the objects it deleted; pods and ReplicaSets go by
    # garbage collection right after.
    deadline = time.monotonic() + 60
    while (leftovers := release.leftovers()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not leftovers, f"left behind by helm uninstall: {leftovers}"
    proc = release.cluster.kubectl(
        "get", "deployment", release.operator, "-n", release.namespace, check=False
    )
    assert proc.returncode != 0 and "NotFound" in proc.stderr
    for kind, name in (
        ("clusterrole", release.operator),
        ("clusterrolebinding", release.operator),
        ("serviceaccount", release.operator),
    ):
        ns = ["-n", release.namespace] if kind == "serviceaccount" else []
        proc = release.cluster.kubectl("get", kind, name, *ns, check=False)
        assert proc.returncode != 0 and "NotFound" in proc.stderr, (kind, name)
    # crds.install=false: the CRDs were never the release's and stay untouched.
    crds = release.cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    for crd in ("modeldeployments.modelops.io", "trainingjobs.modelops.io"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{crd}" in crds
    # Helm's own release records are gone too.
    assert not release.helm.run("list", "-n", release.namespace, "-q").stdout.strip()

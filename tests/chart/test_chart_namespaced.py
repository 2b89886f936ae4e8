"""The namespaced install on the real control plane: the chart's Role in one
namespace is all the operator needs there, it leaves other namespaces alone,
and the NetworkPolicies are accepted by the API server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

import tests.support.operator as operator_support
from tests.chart.helm import CHART, Helm
from tests.chart.test_chart_install import PodProcess, rbac_denials
from tests.support.cluster import REPO, Cluster, fresh_namespace, wait_for
from tests.support.operator import service_account_kubeconfig, wait_ready

pytestmark = pytest.mark.cluster

SAMPLE = REPO / "manifests" / "samples" / "modeldeployment.yaml"


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """(watched, not watched)"""
    with (
        contextlib.closing(fresh_namespace(cluster)) as a,
        contextlib.closing(fresh_namespace(cluster)) as b,
    ):
        yield next(a), next(b)


def test_operator_with_only_namespaced_roles_serves_its_namespaces_only(
    cluster: Cluster,
    helm: Helm,
    namespaces: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    watched, other = namespaces
    name = f"modelops-ns-{uuid.uuid4().hex[:8]}"
    chart_helm = Helm(binary=helm.binary, home=helm.home, kubeconfig=cluster.kubeconfig)
    cluster.core.create_namespace(
        kubernetes.client.V1Namespace(
            metadata=kubernetes.client.V1ObjectMeta(name=name, labels={"modelops.io/test": "true"})
        )
    )
    # The CRDs are shared with the rest of the session: applied with kubectl, and
    # left alone by the release (crds.install=false), as test_chart_install does.
    operator_support.install(cluster)
    process = None
    try:
        chart_helm.run(
            "install", name, str(CHART), "--namespace", name,
            "--set", "crds.install=false",
            "--set", f"watchNamespaces={{{watched}}}",
            "--set", "networkPolicy.enabled=true",
            "--wait", "--timeout", "90s",
        )  # fmt: skip
        operator = f"{name}-operator"
        # Nothing cluster-scoped that writes is bound to the operator: only the reader
        # (the tenant roles are aggregated into edit/view for users) and the conversion
        # webhook's caBundle in the two modelops CRDs, by name.
        bindings = cluster.kubectl(
            "get", "clusterrolebinding", "-l", f"app.kubernetes.io/instance={name}",
            "-o", "jsonpath={.items[*].roleRef.name}",
        ).stdout.split()  # fmt: skip
        assert sorted(bindings) == [f"{operator}-cluster-reader", f"{operator}-webhook"]
        # The NetworkPolicies were accepted where the workloads run.
        policies = cluster.kubectl("get", "networkpolicy", "-n", watched, "-o", "name").stdout
        assert f"{name}-serving" in policies and f"{name}-training" in policies

        # The operator pod's command line, with the chart's ServiceAccount.
        monkeypatch.setattr(operator_support, "SERVICE_ACCOUNT", (name, operator))
        kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kubeconfig")
        deployment = cluster.apps.read_namespaced_deployment(operator, name)
        process = PodProcess(deployment, kubeconfig, tmp_path / "operator.log")
        at = process.args.index("--namespace")
        assert process.args[at : at + 2] == ["--namespace", watched]
        assert process.args.count("--namespace") == 1

        sample = yaml.safe_load(SAMPLE.read_text())
        cluster.apply(sample, watched)
        cluster.apply(sample, other)
        md = sample["metadata"]["name"]
        try:
            live = wait_ready(cluster, watched, md)
        except AssertionError as err:
            raise AssertionError(f"{err}\noperator log:\n{process.tail()}") from None
        assert live["status"]["readyReplicas"] >= 1
        # The leader Lease is in the release namespace (its Role is there, not in
        # the watched namespaces), held by this process.
        holder = wait_for(
            lambda: _lease_holder(cluster, name, operator),
            timeout=30,
            what="the leader Lease",
        )
        assert process.logged(f"{holder} acquired the Lease")
        # The other namespace is not the operator's: no children, no status.
        untouched = cluster.custom.get_namespaced_custom_object(
            "modelops.io", "v1alpha1", other, "modeldeployments", md
        )
        assert not untouched.get("status")
        assert not cluster.apps.list_namespaced_deployment(other).items
        cluster.kubectl("delete", "md", md, "-n", watched, "--wait=true")
    finally:
        if process is not None:
            process.stop()
        chart_helm.run("uninstall", name, "--namespace", name, "--wait", check=False)
        cluster.core.delete_namespace(name, propagation_policy="Background")
    assert not rbac_denials(tmp_path / "operator.log")


def _lease_holder(cluster: Cluster, namespace: str, name: str) -> str | None:
    proc = cluster.kubectl("get", "lease", "-n", namespace, name, "-o", "yaml", check=False)
    if proc.returncode != 0:
        return None
    return (yaml.safe_load(proc.stdout).get("spec") or {}).get("holderIdentity") or None

"""The chart's wake activator (templates/activator.yaml): when it is rendered,
that it is the activator of manifests/activator/ named after the release, that
the operator is pointed at it, and, installed into the real API server, that
its pod is admitted under Pod Security "restricted" and its ServiceAccount may
do exactly the activator's job (cluster-wide, or in the watched namespaces
only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml

import tests.support.operator as operator_support
from tests.chart.helm import CHART, Helm, find, of_kind
from tests.support.cluster import REPO, Cluster, wait_for

MANIFEST = REPO / "manifests" / "activator" / "activator.yaml"
KEDA_API = "keda.sh/v1alpha1"
ENV = "MODELOPS_ACTIVATOR_URL"


def plain() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def render(helm: Helm, *sets: str, keda: bool = False, release: str = "modelops") -> list[dict]:
    """`helm template`, as on a cluster that serves KEDA's API when `keda`."""
    args = ["template", release, str(CHART), "--namespace", "modelops-system"]
    for item in sets:
        args += ["--set", item]
    if keda:
        args += ["--api-versions", KEDA_API]
    return [d for d in yaml.safe_load_all(helm.run(*args).stdout) if d]


def activator_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["metadata"]["name"].endswith("-activator")]


def operator_env(docs: list[dict[str, Any]], name: str = "modelops-operator") -> dict[str, Any]:
    deployment = find(docs, "Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_auto_renders_the_activator_only_where_keda_is_served(helm: Helm):
    # Without KEDA no model reaches zero: nothing to wake, and the operator
    # marks no Service.
    without = render(helm)
    assert activator_objects(without) == []
    assert ENV not in operator_env(without)
    with_keda = render(helm, keda=True)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in activator_objects(with_keda))
    assert kinds == sorted(f"{d['kind']}/{d['metadata']['name']}" for d in plain())
    assert operator_env(with_keda)[ENV] == "http://modelops-activator.modelops-system.svc:8080"


def test_enabled_true_or_false_overrides_auto(helm: Helm):
    assert activator_objects(render(helm, "activator.enabled=true"))
    off = render(helm, "activator.enabled=false", keda=True)
    assert activator_objects(off) == [] and ENV not in operator_env(off)


def test_rendered_activator_is_the_one_of_the_manifest(helm: Helm):
    docs = render(helm, keda=True)
    manifest = plain()
    assert (
        find(docs, "ClusterRole", "modelops-activator")["rules"]
        == (find(manifest, "ClusterRole")["rules"])
    )
    for kind in ("ClusterRoleBinding",):
        chart, ours = find(docs, kind, "modelops-activator"), find(manifest, kind)
        assert chart["roleRef"] == ours["roleRef"] and chart["subjects"] == ours["subjects"]
    chart_dep, plain_dep = (
        find(docs, "Deployment", "modelops-activator"),
        find(manifest, "Deployment"),
    )
    assert chart_dep["spec"]["replicas"] == plain_dep["spec"]["replicas"] == 1
    for key in ("name", "image", "args", "env", "ports", "readinessProbe", "resources"):
        assert container(chart_dep).get(key) == container(plain_dep).get(key), key
    for key in ("serviceAccountName", "securityContext"):
        assert (
            chart_dep["spec"]["template"]["spec"][key]
            == (plain_dep["spec"]["template"]["spec"][key])
        )
    assert container(chart_dep)["securityContext"] == container(plain_dep)["securityContext"]
    # The Service the operator's URL names selects the activator's pod, on its port.
    service = find(docs, "Service", "modelops-activator")
    assert service["spec"]["ports"] == find(manifest, "Service")["spec"]["ports"]
    labels = chart_dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert all(labels.get(k) == v for k, v in chart_dep["spec"]["selector"]["matchLabels"].items())
    # The operator's own objects are untouched by it (one operator Deployment).
    assert find(docs, "Deployment", "modelops-operator")


def test_settings_reach_the_activator_and_the_release_names_it(helm: Helm):
    docs = render(
        helm,
        "activator.queueLimit=7",
        "activator.timeoutSeconds=42",
        "activator.retryAfterSeconds=3",
        "activator.resources.limits.memory=1Gi",
        keda=True,
        release="ml",
    )
    deployment = find(docs, "Deployment", "ml-modelops-activator")
    args = container(deployment)["args"]
    assert [args[args.index(f) + 1] for f in ("--queue-limit", "--timeout", "--retry-after")] == [
        "7",
        "42",
        "3",
    ]
    assert container(deployment)["resources"]["limits"]["memory"] == "1Gi"
    assert operator_env(docs, "ml-modelops-operator")[ENV] == (
        "http://ml-modelops-activator.modelops-system.svc:8080"
    )
    # Cluster-scoped names carry the release: two releases never share one.
    assert find(docs, "ClusterRole", "ml-modelops-activator")


def test_namespaced_install_grants_the_activator_a_role_per_namespace(helm: Helm):
    docs = render(helm, "watchNamespaces={team-a,team-b}", keda=True)
    assert not [
        d for d in of_kind(docs, "ClusterRole") if d["metadata"]["name"].endswith("-activator")
    ]
    rules = find(plain(), "ClusterRole")["rules"]
    for namespace in ("team-a", "team-b"):
        [role] = [
            d
            for d in of_kind(docs, "Role")
            if d["metadata"]["namespace"] == namespace
            and d["metadata"]["name"] == "modelops-activator"
        ]
        assert role["rules"] == rules
    args = container(find(docs, "Deployment", "modelops-activator"))["args"]
    assert args[args.index("--namespace") :] == ["--namespace", "team-a", "--namespace", "team-b"]


@pytest.mark.parametrize("sets", [[], ["watchNamespaces={team-a,team-b}"]])
def test_lint_with_the_activator_is_clean_even_strict(helm: Helm, sets: list[str]):
    args = [a for s in ["activator.enabled=true", *sets] for a in ("--set", s)]
    proc = helm.run("lint", "--strict", str(CHART), *args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("value", ["yes", "1"])
def test_schema_refuses_other_enabled_values(helm: Helm, value: str):
    assert "activator" in helm.template_error(f"activator.enabled={value}")


# --- installed into the real API server ----------------------------------------------


@pytest.fixture(scope="module")
def installed_release(cluster: Cluster, helm: Helm) -> Iterator[tuple[str, Cluster]]:
    """A release with the activator (and one operator replica) in a namespace
    that enforces Pod Security "restricted"; pods run on KWOK's nodes."""
    name = f"modelops-wake-{uuid.uuid4().hex[:8]}"
    chart_helm = Helm(binary=helm.binary, home=helm.home, kubeconfig=cluster.kubeconfig)
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
    operator_support.install(cluster)  # the CRDs, shared with the session
    try:
        chart_helm.run(
            "install", name, str(CHART), "--namespace", name,
            "--set", "crds.install=false",
            "--set", "replicaCount=1", "--set", "leaderElection.enabled=false",
            "--set", "activator.enabled=true",
            "--wait", "--timeout", "90s",
        )  # fmt: skip
        yield name, cluster
    finally:
        chart_helm.run("uninstall", name, "--namespace", name, "--wait", check=False)
        selector = f"app.kubernetes.io/instance={name}"
        for kind in ("clusterroles", "clusterrolebindings"):
            cluster.kubectl("delete", kind, "-l", selector, "--ignore-not-found", check=False)
        cluster.core.delete_namespace(name, propagation_policy="Background")


def test_installed_activator_runs_restricted_and_its_account_may_do_its_job(
    installed_release: tuple[str, Cluster],
):
    name, cluster = installed_release
    activator = f"{name}-activator"
    deployment = wait_for(
        lambda: (
            d
            if (d := cluster.apps.read_namespaced_deployment(activator, name)).status.ready_replicas
            else None
        ),
        timeout=60,
        what="the activator Deployment ready",
    )
    assert deployment.spec.template.spec.service_account_name == activator
    operator = cluster.apps.read_namespaced_deployment(f"{name}-operator", name)
    (op_container,) = operator.spec.template.spec.containers
    urls = [e.value for e in op_container.env if e.name == ENV]
    assert urls == [f"http://{activator}.{name}.svc:8080"]
    # The URL's Service has the activator pod behind it.
    slices = cluster.kubectl(
        "get", "endpointslices", "-n", name, "-l", f"kubernetes.io/service-name={activator}",
        "-o", "jsonpath={.items[*].endpoints[*].conditions.ready}",
    ).stdout  # fmt: skip
    assert "true" in slices, slices
    who = f"--as=system:serviceaccount:{name}:{activator}"
    for verb, resource, allowed in [
        ("list", "services", "yes"),
        ("create", "endpointslices.discovery.k8s.io", "yes"),
        ("delete", "endpointslices.discovery.k8s.io", "yes"),
        ("patch", "deployments.apps", "yes"),
        ("delete", "deployments.apps", "no"),
        ("get", "secrets", "no"),
        ("create", "pods", "no"),
    ]:
        out = cluster.kubectl("auth", "can-i", verb, resource, "-A", who, check=False)
        assert out.stdout.strip() == allowed, (verb, resource, out.stdout, out.stderr)

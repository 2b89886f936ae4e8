"""The Helm chart without a cluster: lint, rendered output for the default and
non-default values, schema rejections, and the guards that keep the chart and
the rest of the repository (manifests/install, crds/, deploy/) from drifting
apart."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART, Helm, find, objname, of_kind
from tests.support.cluster import REPO, Cluster

INSTALL = REPO / "manifests" / "install"
MONITORING = REPO / "deploy" / "monitoring"
ARGOCD_CM = REPO / "deploy" / "argocd" / "argocd-cm.yaml"

# Release `modelops` in modelops-system: the layout of manifests/install.
DEFAULT_RELEASE = "modelops"
DEFAULT_NAMESPACE = "modelops-system"


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(INSTALL.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[dict[str, Any]]:
    return helm.template()


# --- lint ----------------------------------------------------------------------------

LINT_SETS = {
    "default": [],
    "one-replica": ["replicaCount=1", "leaderElection.enabled=false"],
    "namespaced": ["watchNamespaces={team-a,team-b}", "networkPolicy.enabled=true"],
    "everything": [
        "monitoring.enabled=true",
        "monitoring.labels.release=kube-prometheus-stack",
        "grafanaDashboard.enabled=true",
        "argocd.healthChecks.enabled=true",
        "namespace.create=true",
        "namespace.name=modelops-system",
    ],
}


@pytest.mark.parametrize("name", LINT_SETS)
def test_lint_is_clean_even_strict(helm: Helm, name: str):
    sets = [a for s in LINT_SETS[name] for a in ("--set", s)]
    for strict in ([], ["--strict"]):
        proc = helm.run("lint", *strict, str(CHART), *sets, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # helm lint exits 0 on warnings without --strict; no warning is allowed either way.
        assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


# --- the chart and the plain manifests -----------------------------------------------


def crds() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((REPO / "crds").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_default_install_has_exactly_the_objects_of_the_plain_manifests(default):
    # The Namespace is --create-namespace's job (namespace.create is off by default).
    # The plain install takes its CRDs from crds/; the chart renders them.
    expected = [objname(d) for d in manifests() if d["kind"] != "Namespace"]
    expected += [objname(d) for d in crds()]
    assert sorted(objname(d) for d in default) == sorted(expected)


@pytest.mark.parametrize(
    "name", ["modelops-operator", "modelops-operator-webhook", "modelops-edit", "modelops-view"]
)
def test_cluster_roles_have_exactly_the_rules_of_the_manifests(default, name):
    plain = find(manifests(), "ClusterRole", name)
    chart = find(default, "ClusterRole", name)
    assert chart["rules"] == plain["rules"]
    aggregation = {k: v for k, v in chart["metadata"]["labels"].items() if "aggregate-to" in k}
    assert aggregation == (plain["metadata"].get("labels") or {})


def test_tenant_roles_aggregate_into_the_built_in_roles(default):
    edit = find(default, "ClusterRole", "modelops-edit")["metadata"]["labels"]
    view = find(default, "ClusterRole", "modelops-view")["metadata"]["labels"]
    assert edit["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert not [k for k in view if k.endswith(("aggregate-to-edit", "aggregate-to-admin"))]


def test_tenant_roles_can_be_left_out(helm: Helm):
    roles = of_kind(helm.template("rbac.tenantRoles=false"), "ClusterRole")
    assert [r["metadata"]["name"] for r in roles] == [
        "modelops-operator",
        "modelops-operator-webhook",
    ]


def test_binding_and_service_account_match_the_plain_manifests(default):
    for name in ("modelops-operator", "modelops-operator-webhook"):
        plain = find(manifests(), "ClusterRoleBinding", name)
        chart = find(default, "ClusterRoleBinding", name)
        assert chart["roleRef"] == plain["roleRef"]
        assert chart["subjects"] == plain["subjects"]
    sa = find(default, "ServiceAccount")
    assert (sa["metadata"]["namespace"], sa["metadata"]["name"]) == (
        plain["subjects"][0]["namespace"],
        plain["subjects"][0]["name"],
    )


# What has to be the same in the two operator pods; labels, annotations and
# imagePullPolicy (explicit in the chart, defaulted in the manifest) may differ.
POD_FIELDS = ("serviceAccountName", "securityContext")
CONTAINER_FIELDS = (
    "name",
    "image",
    "args",
    "env",
    "ports",
    "livenessProbe",
    "readinessProbe",
    "resources",
    "securityContext",
)


def test_operator_deployment_matches_the_plain_manifest(default):
    plain = find(manifests(), "Deployment")
    chart = find(default, "Deployment")
    assert chart["metadata"]["name"] == plain["metadata"]["name"]
    for key in ("replicas", "strategy"):
        assert chart["spec"].get(key) == plain["spec"].get(key), key
    plain_pod, chart_pod = plain["spec"]["template"]["spec"], chart["spec"]["template"]["spec"]
    for key in POD_FIELDS:
        assert chart_pod.get(key) == plain_pod.get(key), key
    for key in CONTAINER_FIELDS:
        assert container(chart).get(key) == container(plain).get(key), key
    # The same selector (immutable in a Deployment): an install moves between the
    # plain manifests and the chart (release `modelops`) without deleting it.
    assert chart["spec"]["selector"] == plain["spec"]["selector"]
    # Whatever selects the manifests' operator pod selects the chart's too.
    pod_labels = chart["spec"]["template"]["metadata"]["labels"]
    assert matches(plain["spec"]["selector"]["matchLabels"], pod_labels)
    assert matches(chart["spec"]["selector"]["matchLabels"], pod_labels)


def test_metrics_service_matches_the_plain_manifest(default):
    plain = find(manifests(), "Service", "modelops-operator-metrics")
    chart = find(default, "Service", "modelops-operator-metrics")
    assert chart["spec"]["ports"] == plain["spec"]["ports"]
    pod_labels = find(default, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert matches(chart["spec"]["selector"], pod_labels)
    # The ServiceMonitor of deploy/monitoring selects the Service by these labels.
    assert matches(plain["metadata"]["labels"], chart["metadata"]["labels"])


def test_leader_election_role_and_pdb_match_the_plain_manifests(default):
    for kind, name in (
        ("Role", "modelops-operator-leader-election"),
        ("RoleBinding", "modelops-operator-leader-election"),
        ("Role", "modelops-operator-webhook"),
        ("RoleBinding", "modelops-operator-webhook"),
        ("PodDisruptionBudget", None),
    ):
        plain, chart = find(manifests(), kind, name), find(default, kind, name)
        assert chart["metadata"]["name"] == plain["metadata"]["name"], kind
        for key in ("rules", "roleRef", "subjects"):
            if key in plain:
                assert chart[key] == plain[key], (kind, key)
    # The chart's selectors also carry the release (app.kubernetes.io/instance).
    plain_pdb = find(manifests(), "PodDisruptionBudget")["spec"]
    chart_pdb = find(default, "PodDisruptionBudget")["spec"]
    assert chart_pdb["minAvailable"] == plain_pdb["minAvailable"] == 1
    assert matches(plain_pdb["selector"]["matchLabels"], chart_pdb["selector"]["matchLabels"])
    args = container(find(default, "Deployment"))["args"]
    assert args[args.index("--leader-elect-id") + 1] == "modelops-operator"
    pod_labels = find(default, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert matches(
        find(default, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels
    )


def test_every_namespaced_object_goes_to_the_release_namespace(helm: Helm):
    docs = helm.template(release="r1", namespace="ops")
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
        "CustomResourceDefinition",
    }
    for doc in docs:
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"], objname(doc)
        else:
            assert doc["metadata"].get("namespace") == "ops", objname(doc)


def test_cluster_scoped_names_carry_the_release(helm: Helm):
    # Two releases in one cluster must not share (and on uninstall delete) a
    # ClusterRole or binding.
    one = helm.template(release="team-a", namespace="a")
    two = helm.template(release="team-b", namespace="b")
    for kind in ("ClusterRoleBinding",):
        a = find(one, kind, "team-a-modelops-operator")["metadata"]["name"]
        b = find(two, kind, "team-b-modelops-operator")["metadata"]["name"]
        assert a != b and "team-a" in a and "team-b" in b, (kind, a, b)
    for suffix in ("operator", "operator-webhook", "edit", "view"):
        find(one, "ClusterRole", f"team-a-modelops-{suffix}")
        find(two, "ClusterRole", f"team-b-modelops-{suffix}")
    binding = find(one, "ClusterRoleBinding", "team-a-modelops-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "team-a-modelops-operator", "namespace": "a"}
    ]
    assert binding["roleRef"]["name"] == "team-a-modelops-operator"


def test_name_overrides_rename_objects_but_keep_the_app_label(helm: Helm):
    docs = helm.template("nameOverride=mlops", release="prod")
    assert find(docs, "Deployment")["metadata"]["name"] == "prod-mlops-operator"
    docs = helm.template("fullnameOverride=platform-ml", release="prod")
    find(docs, "ClusterRole", "platform-ml-operator")
    find(docs, "Role", "platform-ml-operator-leader-election")
    find(docs, "Service", "platform-ml-webhook")
    # The ServiceMonitor's job name (and so OperatorDown) comes from this label.
    assert find(docs, "Service", "platform-ml-operator-metrics")["metadata"]["labels"][
        "app.kubernetes.io/name"
    ] == ("modelops-operator")


def test_default_pod_meets_pod_security_restricted(default):
    pod = find(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container(find(default, "Deployment"))["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not of_kind(default, "Namespace")
    for kind in (
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
    ):
        assert not of_kind(default, kind), f"{kind} rendered with default values"


# --- non-default values --------------------------------------------------------------


def test_replicas_elect_a_leader_with_the_configured_durations(helm: Helm):
    docs = helm.template(
        "replicaCount=3",
        "leaderElection.leaseDuration=30",
        "leaderElection.renewDeadline=20",
        "leaderElection.retryPeriod=4",
        release="prod",
        namespace="ops",
    )
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    # Rolling: a new pod starts as a standby before an old one goes.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    args = container(deployment)["args"]
    flags = {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--leader-elect-")}
    assert flags == {
        "--leader-elect-id": "prod-modelops-operator",
        "--leader-elect-lease-duration": "30",
        "--leader-elect-renew-deadline": "20",
        "--leader-elect-retry-period": "4",
    }
    assert "--leader-elect" in args
    assert env(deployment)["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    role = find(docs, "Role", "prod-modelops-operator-leader-election")
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update", "delete"],
        }
    ]
    # Spread over nodes, and never all evicted at once by a drain.
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    term = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert matches(term["labelSelector"]["matchLabels"], pod_labels)
    assert find(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_one_replica_needs_no_leader_election_but_two_do(helm: Helm):
    docs = helm.template("replicaCount=1", "leaderElection.enabled=false")
    args = container(find(docs, "Deployment"))["args"]
    assert not [a for a in args if a.startswith("--leader-elect")]
    assert not of_kind(docs, "PodDisruptionBudget")
    assert [r["metadata"]["name"] for r in of_kind(docs, "Role")] == ["modelops-operator-webhook"]
    err = helm.template_error("leaderElection.enabled=false")
    assert "replicaCount 2 needs leaderElection.enabled" in err
    err = helm.template_error("leaderElection.renewDeadline=15")
    assert "leaderElection.leaseDuration (15) must be longer than" in err


def test_custom_image_resources_and_operator_settings(helm: Helm, tmp_path: Path):
    values = {
        "image": {
            "repository": "registry.example/ml/modelops",
            "tag": "0.2.0-rc1",
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}],
        # null removes a default (Helm merges maps): no CPU limit.
        "resources": {
            "requests": {"cpu": "250m", "memory": "300Mi"},
            "limits": {"cpu": None, "memory": "1Gi"},
        },
        "operator": {
            "childImage": "registry.example/ml/modelops-runtime:0.2.0",
            "prometheusAddress": "http://prometheus.mon.svc:9090",
            "workers": 4,
            "storeEndpoints": ["https://minio.store.svc:9000", "http://10.0.0.5"],
            "verbose": True,
            "env": [{"name": "TZ", "value": "UTC"}],
        },
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
        "serviceAccount": {"annotations": {"iam.example/role": "modelops"}},
        "podAnnotations": {"example/scrape": "yes"},
        "defaultImages": {
            "triton": "registry.example/nvidia/tritonserver:25.08-py3",
            "trainer": "registry.example/ml/modelops-train:0.2.0",
        },
    }
    docs = helm.template(values=values, tmp=tmp_path)
    deployment = find(docs, "Deployment")
    c, pod = container(deployment), deployment["spec"]["template"]["spec"]
    assert c["image"] == "registry.example/ml/modelops:0.2.0-rc1"
    assert c["imagePullPolicy"] == "Always"
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "300Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert c["args"][0] == "run" and "--verbose" in c["args"]
    assert env(deployment) == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "MODELOPS_IMAGE": "registry.example/ml/modelops-runtime:0.2.0",
        "MODELOPS_TRITON_IMAGE": "registry.example/nvidia/tritonserver:25.08-py3",
        "MODELOPS_TRAINER_IMAGE": "registry.example/ml/modelops-train:0.2.0",
        "MODELOPS_PROMETHEUS_ADDRESS": "http://prometheus.mon.svc:9090",
        "MODELOPS_WORKERS": "4",
        "MODELOPS_STORE_ENDPOINTS": "https://minio.store.svc:9000,http://10.0.0.5",
        "TZ": "UTC",
    }
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert deployment["spec"]["template"]["metadata"]["annotations"] == values["podAnnotations"]
    assert find(docs, "ServiceAccount")["metadata"]["annotations"] == {
        "iam.example/role": "modelops"
    }


def test_image_digest_pins_the_operator_and_child_image(helm: Helm):
    digest = "sha256:" + "ab" * 32
    deployment = find(helm.template(f"image.digest={digest}"), "Deployment")
    assert container(deployment)["image"] == f"ghcr.io/modelops/modelops-operator:0.2.0@{digest}"
    assert env(deployment)["MODELOPS_IMAGE"] == container(deployment)["image"]


def test_existing_service_account(helm: Helm):
    docs = helm.template("serviceAccount.create=false", "serviceAccount.name=ops-sa")
    assert not of_kind(docs, "ServiceAccount")
    assert find(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"
    for binding in of_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"][0]["name"] == "ops-sa"
    err = helm.template_error("serviceAccount.create=false")
    assert "serviceAccount.name is required" in err


def test_namespace_created_by_the_chart_enforces_pod_security(helm: Helm):
    docs = helm.template(
        "namespace.create=true", "namespace.name=modelops-system", namespace="default"
    )
    ns = find(docs, "Namespace")
    assert ns["metadata"]["name"] == "modelops-system"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if "namespace" in doc["metadata"]:
            assert doc["metadata"]["namespace"] == "modelops-system", objname(doc)
    # The release namespace has to exist before the chart does: refused.
    err = helm.template_error(
        "namespace.create=true", "namespace.name=modelops-system", namespace="modelops-system"
    )
    assert "release namespace" in err


# --- monitoring, dashboards, Argo CD -------------------------------------------------


def source_monitors() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((MONITORING / "servicemonitors.yaml").read_text())
    return {d["metadata"]["name"]: d for d in docs if d}


def source_rule() -> dict[str, Any]:
    return yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())


def test_monitoring_with_labels_follows_deploy_monitoring(helm: Helm):
    docs = helm.template(
        "monitoring.enabled=true",
        "monitoring.labels.release=prom-stack",
        release="prod",
        namespace="ops",
    )
    monitors = of_kind(docs, "ServiceMonitor") + of_kind(docs, "PodMonitor")
    rule = find(docs, "PrometheusRule")
    sources = source_monitors()
    assert len(monitors) == len(sources)
    for obj in [*monitors, rule]:
        labels = obj["metadata"]["labels"]
        # The user's Prometheus selector replaces deploy/monitoring's example one.
        assert labels["release"] == "prom-stack", objname(obj)
        assert labels["app.kubernetes.io/instance"] == "prod"
        assert obj["metadata"]["namespace"] == "ops"
        assert obj["metadata"]["name"].startswith("prod-modelops")
    # Everything but the release-specific selector is deploy/monitoring's spec.
    for obj in monitors:
        source = sources["modelops" + obj["metadata"]["name"].removeprefix("prod-modelops")]
        assert obj["kind"] == source["kind"]
        spec, expected = dict(obj["spec"]), dict(source["spec"])
        if obj["kind"] == "ServiceMonitor":
            service = find(docs, "Service", "prod-modelops-operator-metrics")
            assert spec.pop("selector") == {"matchLabels": service["spec"]["selector"]}
            assert matches(
                spec_selector := service["spec"]["selector"], service["metadata"]["labels"]
            )
            assert spec_selector["app.kubernetes.io/instance"] == "prod"
            expected.pop("selector")
            # jobLabel -> job="modelops-operator", which OperatorDown matches.
            assert service["metadata"]["labels"][spec["jobLabel"]] == "modelops-operator"
        assert spec == expected
    assert rule["spec"] == source_rule()["spec"]


def test_prometheus_rule_tunables(helm: Helm, tmp_path: Path):
    values = {
        "monitoring": {
            "enabled": True,
            "serviceMonitor": {"interval": "15s"},
            "podMonitors": {"enabled": False},
            "prometheusRule": {
                "runbookBaseURL": "https://runbooks.example/ml/",
                "queueTimeThresholdMicroseconds": 20000,
                "reconcileErrorsPerMinute": 0.5,
                "alerts": {
                    "ModelDriftDetected": {"for": "30m", "severity": "info"},
                    "TrainingJobFailed": {"enabled": False},
                },
                "additionalAlertLabels": {"team": "ml-platform"},
            },
        }
    }
    docs = helm.template(values=values, tmp=tmp_path)
    assert not of_kind(docs, "PodMonitor")
    for endpoint in find(docs, "ServiceMonitor")["spec"]["endpoints"]:
        assert endpoint["interval"] == "15s"
    rules = [r for g in find(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    expected_alerts = {
        r["alert"] for g in source_rule()["spec"]["groups"] for r in g["rules"] if "alert" in r
    }
    assert set(alerts) == expected_alerts - {"TrainingJobFailed"}
    drift = alerts["ModelDriftDetected"]
    assert (drift["for"], drift["labels"]["severity"]) == ("30m", "info")
    # The description says how long, from the overridden `for`, not the source's.
    description = " ".join(drift["annotations"]["description"].split())
    assert "for 30m" in description and "for 5m" not in description
    unchanged = " ".join(alerts["ModelDeploymentStalled"]["annotations"]["description"].split())
    assert "for 5m" in unchanged
    for alert in alerts.values():
        assert alert["labels"]["team"] == "ml-platform"
        assert alert["annotations"]["runbook_url"].startswith("https://runbooks.example/ml#")
    queue = alerts["TritonQueueTimeHigh"]
    assert (
        re.search(r"> 20000\s*$", queue["expr"])
        and "threshold 20000" in queue["annotations"]["description"]
    )
    assert re.search(r"> 0\.5\s*$", alerts["OperatorReconcileErrorsRising"]["expr"])
    # Recording rules are untouched.
    assert [r for r in rules if "record" in r] == [
        r for g in source_rule()["spec"]["groups"] for r in g["rules"] if "record" in r
    ]


def test_misspelt_alert_override_is_refused(helm: Helm):
    err = helm.template_error(
        "monitoring.enabled=true", "monitoring.prometheusRule.alerts.OperatorDwn.for=1m"
    )
    assert "monitoring.prometheusRule.alerts.OperatorDwn: no such alert" in err


def test_grafana_dashboard_configmap(helm: Helm):
    docs = helm.template(
        "grafanaDashboard.enabled=true",
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.annotations.grafana_folder=ML",
    )
    cm = find(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "ML"}
    (text,) = cm["data"].values()
    assert json.loads(text) == json.loads((MONITORING / "grafana-dashboard.json").read_text())


def test_argocd_health_configmap_carries_the_argocd_cm_keys(helm: Helm):
    cm = find(helm.template("argocd.healthChecks.enabled=true"), "ConfigMap")
    assert cm["metadata"]["name"] == "modelops-argocd-health"
    assert cm["data"] == yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert set(cm["data"]) == {
        "resource.customizations.health.modelops.io_ModelDeployment",
        "resource.customizations.health.modelops.io_TrainingJob",
    }


# --- values.schema.json --------------------------------------------------------------

REJECTIONS = [
    (["replicaCount=two"], "/replicaCount", "want integer"),
    (["replicaCount=-1"], "/replicaCount", "minimum"),
    (["nonsense=1"], "'nonsense' not allowed", "additional properties"),
    (["image.pullPolicy=Sometimes"], "/image/pullPolicy", "IfNotPresent"),
    (["image.repository="], "/image/repository", "minLength"),
    (["image.repository=null"], "/image", "missing property 'repository'"),
    (["operator.env[0].value=x"], "/operator/env/0", "missing property 'name'"),
    (["image.tag=2"], "/image/tag", "want string"),
    (["image.digest=latest"], "/image/digest", "does not match pattern"),
    (["leaderElection.enabled=yes"], "/leaderElection/enabled", "want boolean"),
    (["leaderElection.leaseDuration=long"], "/leaderElection/leaseDuration", "want number"),
    (["operator.workers=0"], "/operator/workers", "minimum"),
    (["resources.limits.memory=true"], "/resources/limits/memory", "want"),
    (["metrics.service.port=70000"], "/metrics/service/port", "maximum"),
    (["namespace.podSecurity=strict"], "/namespace/podSecurity", "restricted"),
    (["monitoring.labels.release=1"], "/monitoring/labels/release", "want string"),
    (
        ["monitoring.prometheusRule.alerts.OperatorDown.for=soon"],
        "/alerts/OperatorDown/for",
        "pattern",
    ),
    (
        ["monitoring.prometheusRule.alerts.OperatorDown.silence=true"],
        "'silence' not allowed",
        "additional",
    ),
    (["monitoring.serviceMonitor.interval=often"], "/monitoring/serviceMonitor/interval", ""),
    (["argocd.healthChecks=true"], "/argocd/healthChecks", "want object"),
    (["defaultImages.triton="], "/defaultImages/triton", "minLength"),
    (["defaultImages.trainer=a b"], "/defaultImages/trainer", "does not match pattern"),
    (["crds.keep=maybe"], "/crds/keep", "want boolean"),
    (["rbac.tenantRoles=yes"], "/rbac/tenantRoles", "want boolean"),
]


@pytest.mark.parametrize(("sets", "field", "why"), REJECTIONS, ids=[r[0][0] for r in REJECTIONS])
def test_schema_rejects_wrong_values_naming_the_field(helm: Helm, sets, field, why):
    err = helm.template_error(*sets)
    assert "values don't meet the specifications of the schema" in err, err
    assert field in err and why in err, err


def test_schema_accepts_the_documented_examples(helm: Helm):
    # The examples in values.yaml comments must pass the schema.
    helm.template(
        "replicaCount=0",
        "operator.workers=null",
        "image.digest=sha256:" + "0" * 64,
        "monitoring.prometheusRule.alerts.ModelDriftDetected.for=30m",
        "monitoring.prometheusRule.alerts.ModelDriftDetected.severity=info",
        "monitoring.prometheusRule.alerts.OperatorDown.enabled=false",
        "monitoring.serviceMonitor.interval=1m30s",
    )


# --- documentation and copies --------------------------------------------------------


def chart_values(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the chart's values as values.schema.json declares them:
    a property with a description is a chart value; one whose properties have
    none (resources, securityContext: Kubernetes structures passed through) is
    documented as a whole."""
    out = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        children = {k: v for k, v in sub.get("properties", {}).items() if "description" in v}
        if children:
            out += chart_values({"properties": children}, path + ".")
        else:
            out.append(path)
    return out


def values_paths(values: dict[str, Any], declared: set[str], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if path not in declared and isinstance(value, dict) and value:
            out += values_paths(value, declared, path + ".")
        else:
            out.append(path)
    return out


def key_lines(text: str) -> dict[str, int]:
    """Dotted path of every mapping key in a YAML file written with two-space
    indents (values.yaml) -> its line number."""
    stack: list[str] = []
    out = {}
    for number, line in enumerate(text.splitlines()):
        m = re.match(r"^( *)([A-Za-z_][\w]*):", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        del stack[depth:]
        stack.append(m.group(2))
        out[".".join(stack)] = number
    return out


def test_every_value_is_commented_documented_and_in_the_schema():
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    readme = (CHART / "README.md").read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines, where = text.splitlines(), key_lines(text)
    declared = chart_values(schema)
    paths = values_paths(values, set(declared))
    assert sorted(paths) == sorted(declared), "values.yaml and values.schema.json disagree"
    undocumented = [p for p in paths if f"`{p}`" not in readme]
    uncommented = [p for p in paths if not lines[where[p] - 1].lstrip().startswith("#")]
    assert not undocumented, f"values missing from charts/modelops/README.md: {undocumented}"
    assert not uncommented, (
        f"values without a comment right above them in values.yaml: {uncommented}"
    )


def chart_crd_copy(source: Path) -> Path:
    # kopf's CRD in Helm's install-once crds/; the modelops CRDs rendered from files/crds.
    folder = CHART / "crds" if source.name.startswith("kopf.dev_") else CHART / "files" / "crds"
    return folder / source.name


def test_chart_copies_are_identical_to_their_sources():
    pairs = [(p, chart_crd_copy(p)) for p in sorted((REPO / "crds").glob("*.yaml"))]
    pairs += [
        (MONITORING / name, CHART / "files" / "monitoring" / name)
        for name in ("servicemonitors.yaml", "prometheusrule.yaml", "grafana-dashboard.json")
    ]
    pairs.append((ARGOCD_CM, CHART / "files" / "argocd" / "argocd-cm.yaml"))
    sample = REPO / "manifests" / "samples" / "modeldeployment.yaml"
    pairs.append((sample, CHART / "files" / "samples" / "modeldeployment.yaml"))
    stale = [
        str(copy.relative_to(REPO))
        for source, copy in pairs
        if not copy.exists() or copy.read_bytes() != source.read_bytes()
    ]
    extra = sorted(
        p.name
        for p in [*(CHART / "crds").glob("*"), *(CHART / "files" / "crds").glob("*")]
        if chart_crd_copy(REPO / "crds" / p.name) != p or not (REPO / "crds" / p.name).exists()
    )
    assert not stale and not extra, (
        f"stale copies {stale}, CRDs not in crds/ {extra}: run hack/helm/sync.sh"
    )
    # The script agrees (it is what the message above tells people to run).
    proc = subprocess.run(
        [str(REPO / "hack" / "helm" / "sync.sh"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


# --- namespaced install and NetworkPolicies ------------------------------------------------

CLUSTER_ONLY_RESOURCES = {"customresourcedefinitions"}


def test_namespaced_install_has_a_role_per_namespace_and_no_cluster_write(helm: Helm):
    docs = helm.template("watchNamespaces={team-a,team-b}")
    cluster_rules = find(manifests(), "ClusterRole", "modelops-operator")["rules"]
    namespaced = [r for r in cluster_rules if not set(r["resources"]) & CLUSTER_ONLY_RESOURCES]
    for namespace in ("team-a", "team-b"):
        role = find([d for d in of_kind(docs, "Role") if d["metadata"]["namespace"] == namespace],
                    "Role")  # fmt: skip
        # The ClusterRole's rules, rule for rule.
        assert role["rules"] == namespaced
        binding = find(
            [d for d in of_kind(docs, "RoleBinding") if d["metadata"]["namespace"] == namespace],
            "RoleBinding",
        )
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"][0]["namespace"] == DEFAULT_NAMESPACE
    # The leader Lease stays in the release namespace.
    lease_role = find(of_kind(docs, "Role"), "Role", "modelops-operator-leader-election")
    assert lease_role["metadata"]["namespace"] == DEFAULT_NAMESPACE
    # What stays cluster-scoped for the operator only reads (the tenant roles are
    # aggregated into edit/view for users, not bound to the operator), but for the
    # conversion webhook's caBundle in the two modelops CRDs, by name. The storage
    # migration's patch of every object is left out (an admin's job here).
    bound = {b["roleRef"]["name"] for b in of_kind(docs, "ClusterRoleBinding")}
    assert bound == {"modelops-operator-cluster-reader", "modelops-operator-webhook"}
    reader = find(of_kind(docs, "ClusterRole"), "ClusterRole", "modelops-operator-cluster-reader")
    for rule in reader["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    webhook = find(of_kind(docs, "ClusterRole"), "ClusterRole", "modelops-operator-webhook")
    for rule in webhook["rules"]:
        assert rule["apiGroups"] == ["apiextensions.k8s.io"], rule
        assert rule["resourceNames"] == [
            "modeldeployments.modelops.io",
            "trainingjobs.modelops.io",
        ], rule
    assert "--no-migrate-storage" in container(find(docs, "Deployment"))["args"]
    args = container(find(docs, "Deployment"))["args"]
    assert args[args.index("--namespace") :][:4] == [
        "--namespace", "team-a", "--namespace", "team-b",
    ]  # fmt: skip


def test_network_policies_are_off_by_default_and_need_namespaces(default, helm: Helm):
    assert not of_kind(default, "NetworkPolicy")
    assert "networkPolicy.namespaces" in helm.template_error("networkPolicy.enabled=true")


def test_network_policies_guard_the_admin_and_rendezvous_ports(helm: Helm):
    docs = helm.template(
        "networkPolicy.enabled=true",
        "networkPolicy.namespaces={ml}",
        "networkPolicy.adminPortFrom[0].namespaceSelector.matchLabels.team=monitoring",
    )
    serving = find(docs, "NetworkPolicy", "modelops-serving")
    assert serving["metadata"]["namespace"] == "ml"
    assert serving["spec"]["podSelector"]["matchExpressions"] == [
        {"key": "modelops.io/model-deployment", "operator": "Exists"}
    ]
    open_rule, admin_rule = serving["spec"]["ingress"]
    assert "from" not in open_rule and {p["port"] for p in open_rule["ports"]} == {
        8000, 8001, 8002, 8080, 8081,
    }  # fmt: skip
    assert admin_rule["ports"] == [{"port": 8090, "protocol": "TCP"}]
    operator_peer, monitoring_peer = admin_rule["from"]
    assert operator_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": DEFAULT_NAMESPACE
    }
    operator_pod = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert matches(operator_peer["podSelector"]["matchLabels"], operator_pod)
    assert monitoring_peer == {"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}
    training = find(docs, "NetworkPolicy", "modelops-training")
    trainers = {"matchExpressions": [{"key": "modelops.io/training-job", "operator": "Exists"}]}
    assert training["spec"]["podSelector"] == trainers
    assert training["spec"]["ingress"] == [{"from": [{"podSelector": trainers}]}]


# --- CRDs and the operator's image settings ------------------------------------------

KEEP = "helm.sh/resource-policy"


def test_crds_are_templates_equal_to_crds_and_kept_on_uninstall(default):
    rendered = {d["metadata"]["name"]: d for d in of_kind(default, "CustomResourceDefinition")}
    sources = {d["metadata"]["name"]: d for d in crds() if d["spec"]["group"] == "modelops.io"}
    assert (
        set(rendered)
        == set(sources)
        == {
            "modeldeployments.modelops.io",
            "trainingjobs.modelops.io",
        }
    )
    for name, crd in rendered.items():
        # The schema is the generated one, to the last number and string.
        assert crd["spec"] == sources[name]["spec"], name
        assert crd["metadata"]["annotations"] == {KEEP: "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelops"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    # Nothing in Helm's install-once crds/ (kopf's peering CRDs went with the peering).
    assert not list((CHART / "crds").glob("*.yaml"))


def test_crds_keep_false_lets_uninstall_delete_them_and_install_false_skips_them(helm: Helm):
    for crd in of_kind(helm.template("crds.keep=false"), "CustomResourceDefinition"):
        assert KEEP not in (crd["metadata"].get("annotations") or {})
    assert not of_kind(helm.template("crds.install=false"), "CustomResourceDefinition")


def test_default_images_are_one_setting_in_values_and_manifests(default):
    from modelops.api import constants as c

    values = yaml.safe_load((CHART / "values.yaml").read_text())["defaultImages"]
    assert values == {"triton": c.DEFAULT_TRITON_IMAGE, "trainer": c.DEFAULT_TRAINER_IMAGE}
    for deployment in (find(default, "Deployment"), find(manifests(), "Deployment")):
        assert env(deployment)["MODELOPS_TRITON_IMAGE"] == c.DEFAULT_TRITON_IMAGE
        assert env(deployment)["MODELOPS_TRAINER_IMAGE"] == c.DEFAULT_TRAINER_IMAGE


def test_default_images_reach_every_operator_deployment(helm: Helm):
    docs = helm.template("defaultImages.triton=mirror.example/tritonserver:25.08-py3")
    for deployment in of_kind(docs, "Deployment"):
        assert env(deployment)["MODELOPS_TRITON_IMAGE"] == "mirror.example/tritonserver:25.08-py3"


@pytest.mark.cluster
def test_notes_print_the_sample_of_this_release(helm: Helm, cluster: Cluster):
    # NOTES must not send people to a branch URL whose sample may belong to
    # another release: they print the chart's own copy (files/samples). helm
    # renders NOTES only for an install (its lookup needs a cluster): a dry run.
    on_cluster = Helm(binary=helm.binary, home=helm.home, kubeconfig=cluster.kubeconfig)
    notes = on_cluster.run(
        "install", "notes-test", str(CHART), "-n", "default", "--dry-run=server",
        "--set", "crds.install=false",  # the session's CRDs belong to no release
    ).stdout  # fmt: skip
    assert "raw.githubusercontent.com" not in notes
    body = notes.split("-f - <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    sample = REPO / "manifests" / "samples" / "modeldeployment.yaml"
    assert yaml.safe_load(body) == yaml.safe_load(sample.read_text())


# --- the conversion webhook ------------------------------------------------------------


def test_webhook_service_reaches_every_replica_on_9443_and_matches_the_manifests(default):
    plain = find(manifests(), "Service", "modelops-webhook")
    chart = find(default, "Service", "modelops-webhook")
    assert (
        chart["spec"]["ports"]
        == plain["spec"]["ports"]
        == [{"name": "webhook", "port": 443, "targetPort": "webhook"}]
    )
    deployment = find(default, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    # Every replica, leader or standby: the selector names no role.
    assert matches(chart["spec"]["selector"], pod_labels)
    assert "modelops.io/peering-role" not in chart["spec"]["selector"]
    c = container(deployment)
    assert {"name": "webhook", "containerPort": 9443} in c["ports"]
    args = c["args"]
    assert args[args.index("--conversion-webhook-port") + 1] == "9443"
    assert args[args.index("--conversion-webhook-service") + 1] == "modelops-webhook"
    assert args[args.index("--conversion-webhook-secret") + 1] == "modelops-webhook-cert"
    assert "--no-migrate-storage" not in args
    # Ready only once the webhook answers.
    assert c["readinessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "webhook",
        "scheme": "HTTPS",
    }
    # The Secret it writes, by name where RBAC allows one.
    role = find(default, "Role", "modelops-operator-webhook")
    assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [
        "modelops-webhook-cert"], "verbs": ["get", "patch"]} in role["rules"]  # fmt: skip


def test_crds_convert_through_the_releases_own_service(helm: Helm):
    docs = helm.template(release="team-a", namespace="ml-platform")
    service = find(docs, "Service", "team-a-modelops-webhook")
    assert service["metadata"]["namespace"] == "ml-platform"
    for crd in of_kind(docs, "CustomResourceDefinition"):
        webhook = crd["spec"]["conversion"]["webhook"]
        assert crd["spec"]["conversion"]["strategy"] == "Webhook"
        assert webhook["clientConfig"] == {
            "service": {
                "namespace": "ml-platform",
                "name": "team-a-modelops-webhook",
                "path": "/convert",
                "port": 443,
            }
        }
        storage = [v["name"] for v in crd["spec"]["versions"] if v["storage"]]
        assert storage == ["v1beta1"]
    args = container(find(docs, "Deployment"))["args"]
    assert args[args.index("--conversion-webhook-service") + 1] == "team-a-modelops-webhook"

"""Pod controls (v1beta1) end to end: the operator against the real API server, KWOK nodes.

A v1beta1 ModelDeployment and TrainingJob with every pod control: the
Deployment's and the Job's pod templates carry them, and the pods the
workload controllers create from them (so the API server's own pod
validation accepted what the operator rendered) do too. A v1alpha1 object
edited through v1beta1 keeps the controls through later v1alpha1 edits; a
control that collides with the operator's own is refused with a condition
naming the field.

Written for both states of the CRDs: where they serve v1beta1 the objects are
applied as v1beta1; where they serve only v1alpha1, as the v1alpha1 form
api/conversion.py writes (the v1beta1-only fields in its annotation), which
is what the API server hands a v1alpha1 client once v1beta1 is stored.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition, get_md

from e2e.test_modeldeployment import H100, md
from modelops.api.conversion import BETA_FIELDS, to_v1alpha1, to_v1beta1

pytestmark = pytest.mark.cluster

LABELS = {"team": "fraud", "cost-center": "42"}
ANNOTATIONS = {"example.com/owner": "ml-platform"}
PULL_SECRETS = [{"name": "registry"}]
VOLUMES = [
    {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
    {"name": "certs", "secret": {"secretName": "ca", "optional": True}},
]
MOUNTS = [{"name": "cache", "mountPath": "/cache"}, {"name": "certs", "mountPath": "/etc/ca"}]
ENV = [
    {"name": "LOG_LEVEL", "value": "debug"},
    {
        "name": "API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t", "optional": True}},
    },
]
AFFINITY = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "podAffinityTerm": {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"team": "fraud"}},
                },
            }
        ]
    }
}
SPREAD = {
    "maxSkew": 1,
    "topologyKey": "kubernetes.io/hostname",
    "whenUnsatisfiable": "ScheduleAnyway",
}


def serves_v1beta1(cluster: Cluster, plural: str) -> bool:
    crd = json.loads(cluster.kubectl("get", "crd", f"{plural}.modelops.io", "-o", "json").stdout)
    return any(v["name"] == "v1beta1" and v.get("served") for v in crd["spec"]["versions"])


def apply_v1beta1(cluster: Cluster, namespace: str, body: dict[str, Any], plural: str) -> None:
    """As v1beta1 where served; else as the v1alpha1 form carrying the annotation."""
    if serves_v1beta1(cluster, plural):
        cluster.apply(body, namespace)
    else:
        cluster.apply(to_v1alpha1(body), namespace)


def controls(spec: dict[str, Any]) -> None:
    """The pod controls both kinds share, into a v1beta1 spec."""
    spec["podMetadata"] = {
        "labels": {**LABELS, **((spec.get("podMetadata") or {}).get("labels") or {})},
        "annotations": {
            **ANNOTATIONS,
            **((spec.get("podMetadata") or {}).get("annotations") or {}),
        },
    }
    spec["imagePullSecrets"] = copy.deepcopy(PULL_SECRETS)
    spec["volumes"] = copy.deepcopy(VOLUMES)
    spec["scheduling"] = {
        **(spec.get("scheduling") or {}),
        "affinity": copy.deepcopy(AFFINITY),
        "topologySpreadConstraints": [copy.deepcopy(SPREAD)],
    }
    spec["resources"]["cpuLimit"] = "2"


def beta_md(name: str) -> dict[str, Any]:
    body = to_v1beta1(md(name))
    spec = body["spec"]
    controls(spec)
    spec["runtime"] = {"volumeMounts": copy.deepcopy(MOUNTS), "env": copy.deepcopy(ENV)}
    return body


def as_json(cluster: Cluster, obj: Any) -> dict[str, Any]:
    return cluster.api_client.sanitize_for_serialization(obj)


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [
        x
        for x in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]
        if x["name"] == name
    ]
    assert found, f"no container {name}"
    return found[0]


def holds(actual: Any, expected: Any) -> bool:
    """expected is in actual, leaving out what the API server defaults (defaultMode...)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and holds(actual[k], v) for k, v in expected.items()
        )
    return actual == expected


def assert_pod_controls(template: dict[str, Any], main: str, own: dict[str, str]) -> None:
    """A pod template (or a pod) carries every control; the operator's entries stayed."""
    meta, pod = template["metadata"], template["spec"]
    assert LABELS.items() <= meta["labels"].items()
    assert own.items() <= meta["labels"].items()
    assert ANNOTATIONS.items() <= meta["annotations"].items()
    assert pod["imagePullSecrets"] == PULL_SECRETS
    by_name = {v["name"]: v for v in pod["volumes"]}
    for volume in VOLUMES:
        assert holds(by_name[volume["name"]], volume)
    assert "scratch" in by_name  # the operator's volumes are all still there
    assert holds(pod["affinity"], AFFINITY)
    (spread,) = pod["topologySpreadConstraints"]
    assert holds(spread, SPREAD)
    assert spread["labelSelector"] == {"matchLabels": own}
    main_container = container(pod, main)
    mounts = {m["mountPath"]: m["name"] for m in main_container["volumeMounts"]}
    assert {m["mountPath"]: m["name"] for m in MOUNTS}.items() <= mounts.items()
    env = {e["name"]: e for e in main_container["env"]}
    assert env["LOG_LEVEL"]["value"] == "debug"
    assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "tok"
    resources = main_container["resources"]
    assert resources["limits"]["cpu"] == "2" and resources["requests"]["cpu"] == "1"


def deployment_template(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        dep = cluster.apps.read_namespaced_deployment(name, namespace)
    except Exception:  # not there yet
        return None
    return as_json(cluster, dep)["spec"]["template"]


def test_a_v1beta1_model_deployment_with_every_pod_control_gets_them_on_its_pods(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    apply_v1beta1(cluster, namespace, beta_md("controls"), "modeldeployments")
    own = {"modelops.io/model-deployment": "controls"}

    def carried() -> dict[str, Any] | None:
        template = deployment_template(cluster, namespace, "controls")
        return template if template and template["spec"].get("imagePullSecrets") else None

    template = wait_for(carried, timeout=90, what="the Deployment's template with the controls")
    assert_pod_controls(template, "triton", own)
    # Neither the puller nor the drift sidecar gets the user's mounts or variables.
    pull = container(template["spec"], "pull-model")
    assert "/cache" not in {m["mountPath"] for m in pull["volumeMounts"]}
    assert "API_TOKEN" not in {e["name"] for e in pull.get("env") or []}

    def pods() -> list[dict[str, Any]] | None:
        found = cluster.core.list_namespaced_pod(namespace, label_selector="team=fraud").items
        return [as_json(cluster, p) for p in found] or None

    # The ReplicaSet's pods: the API server accepted the rendered pod spec.
    (pod,) = wait_for(pods, timeout=90, what="a pod created from that template")
    assert_pod_controls(pod, "triton", own)


def test_a_v1alpha1_object_edited_through_v1beta1_keeps_the_controls_through_v1alpha1_edits(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    cluster.apply(md("edited"), namespace)  # written as v1alpha1, no controls
    first = wait_for(
        lambda: deployment_template(cluster, namespace, "edited"),
        timeout=90,
        what="the Deployment of the v1alpha1 object",
    )
    assert "imagePullSecrets" not in first["spec"]

    apply_v1beta1(cluster, namespace, beta_md("edited"), "modeldeployments")

    def carried() -> dict[str, Any] | None:
        template = deployment_template(cluster, namespace, "edited")
        return template if template and template["spec"].get("imagePullSecrets") else None

    assert_pod_controls(
        wait_for(carried, timeout=90, what="the controls added through v1beta1"),
        "triton",
        {"modelops.io/model-deployment": "edited"},
    )
    # Read as v1alpha1, the object carries them in the conversion's annotation.
    live = get_md(cluster, namespace, "edited")
    assert "podMetadata" in live["metadata"]["annotations"][BETA_FIELDS]
    assert "volumes" not in live["spec"]

    # An edit through v1alpha1 (a merge patch that does not know the controls).
    cluster.custom.patch_namespaced_custom_object(
        "modelops.io",
        "v1alpha1",
        namespace,
        "modeldeployments",
        "edited",
        {"spec": {"replicas": 2}},
    )

    def scaled() -> dict[str, Any] | None:
        dep = as_json(cluster, cluster.apps.read_namespaced_deployment("edited", namespace))
        return dep if dep["spec"]["replicas"] == 2 else None

    dep = wait_for(scaled, timeout=90, what="the v1alpha1 edit applied")
    assert_pod_controls(
        dep["spec"]["template"], "triton", {"modelops.io/model-deployment": "edited"}
    )


def test_a_control_colliding_with_the_operators_is_refused_naming_the_field(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    """Sent as v1alpha1 with the annotation, the v1beta1 schema never sees the fields:
    the operator's check is the guard, whatever versions the CRD serves."""
    body = beta_md("clash")
    body["spec"]["volumes"].append({"name": "shm", "emptyDir": {}})  # the operator's /dev/shm
    cluster.apply(to_v1alpha1(body), namespace)

    def stalled() -> dict[str, Any] | None:
        live = get_md(cluster, namespace, "clash")
        return live if condition(live, "Stalled").get("reason") == "InvalidSpec" else None

    live = wait_for(stalled, timeout=90, what="Stalled InvalidSpec")
    assert condition(live, "Stalled")["message"].startswith("spec.volumes[2].name: shm ")
    deployments = cluster.apps.list_namespaced_deployment(namespace).items
    assert not deployments, "a colliding template must not be applied"


def tj(name: str) -> dict[str, Any]:
    body = to_v1beta1(
        {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {
                "nodes": 2,
                "procsPerNode": 1,
                "resources": {"gpu": {"count": 1, "product": H100}, "cpu": "1", "memory": "2Gi"},
                "dataset": {"uri": "file:///data/tabular.npz"},
                "output": {"storageUri": "file:///models/tabular"},
                # The simulated pods keep running (hack/cluster/stages.yaml).
                "podMetadata": {"annotations": {"sim.modelops.io/result": "Hold"}},
            },
        }
    )
    spec = body["spec"]
    controls(spec)
    spec["volumeMounts"] = copy.deepcopy(MOUNTS)
    spec["env"] = copy.deepcopy(ENV)
    return body


def test_a_v1beta1_training_job_with_every_pod_control_gets_them_on_master_and_workers(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    apply_v1beta1(cluster, namespace, tj("trained"), "trainingjobs")
    own = {"modelops.io/training-job": "trained"}

    def job() -> dict[str, Any] | None:
        found = cluster.batch.list_namespaced_job(namespace).items
        return as_json(cluster, found[0]) if found else None

    created = wait_for(job, timeout=90, what="the attempt's Job")
    assert_pod_controls(created["spec"]["template"], "trainer", own)

    def pods() -> list[dict[str, Any]] | None:
        found = cluster.core.list_namespaced_pod(
            namespace, label_selector="modelops.io/training-job=trained"
        ).items
        return [as_json(cluster, p) for p in found] if len(found) == 2 else None

    for pod in wait_for(pods, timeout=90, what="rank 0 (master) and rank 1 (worker)"):
        assert_pod_controls(pod, "trainer", own)

"""One registry of kinds: REST paths from it, render's child kinds from it."""

from __future__ import annotations

import pytest

from modelops.api import kinds
from modelops.api.kinds import Kind, UnknownKind, kind_of, kind_of_object
from modelops.kube import object_path
from modelops.render import child_kinds


def test_kinds_are_unique_by_type_and_by_resource():
    assert len({(k.api_version, k.kind) for k in kinds.KINDS}) == len(kinds.KINDS)
    assert len({(k.group, k.version, k.plural) for k in kinds.KINDS}) == len(kinds.KINDS)
    # Only modelops' own resources are registered in two versions: the one the
    # planners read and the storage version the operator watches.
    resources = [(k.group, k.plural) for k in kinds.KINDS]
    twice = {r for r in resources if resources.count(r) > 1}
    assert twice == {("modelops.io", "modeldeployments"), ("modelops.io", "trainingjobs")}
    assert kinds.MODEL_DEPLOYMENT_STORED.version == "v1beta1"


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "path"),
    [
        (kinds.SERVICE, "ns", "md", "/api/v1/namespaces/ns/services/md"),
        (kinds.DEPLOYMENT, "ns", "md", "/apis/apps/v1/namespaces/ns/deployments/md"),
        (
            kinds.HPA,
            "ns",
            "md",
            "/apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers/md",
        ),
        (kinds.PDB, "ns", "md", "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/md"),
        (kinds.SCALED_OBJECT, "ns", "md", "/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/md"),
        (kinds.JOB, "ns", "tj-0", "/apis/batch/v1/namespaces/ns/jobs/tj-0"),
        (
            kinds.MODEL_DEPLOYMENT,
            "ns",
            "md",
            "/apis/modelops.io/v1alpha1/namespaces/ns/modeldeployments/md",
        ),
        (kinds.EVENT, "ns", None, "/api/v1/namespaces/ns/events"),
        (kinds.NAMESPACE, None, "ns", "/api/v1/namespaces/ns"),
        (
            kinds.CUSTOM_RESOURCE_DEFINITION,
            None,
            "scaledobjects.keda.sh",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/scaledobjects.keda.sh",
        ),
    ],
)
def test_object_paths_use_the_registered_plural(kind: Kind, namespace, name, path: str):
    assert object_path(kind, namespace, name) == path


def test_scope_mistakes_are_refused():
    with pytest.raises(ValueError, match="namespaced"):
        object_path(kinds.SERVICE, None, "md")
    with pytest.raises(ValueError, match="cluster-scoped"):
        object_path(kinds.NAMESPACE, "ns", "x")


def test_an_unknown_kind_is_an_error_not_a_guessed_plural():
    with pytest.raises(UnknownKind, match=r"networking\.k8s\.io/v1/Ingress is not a kind"):
        kind_of("networking.k8s.io/v1", "Ingress")
    with pytest.raises(UnknownKind):
        kind_of_object({"apiVersion": "v1", "kind": "Endpoints", "metadata": {}})
    with pytest.raises(UnknownKind):
        kind_of_object({"metadata": {"name": "x"}})


def test_lookup_by_manifest():
    assert kind_of_object({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}) is kinds.PDB
    assert kinds.HPA.group == "autoscaling"
    assert kinds.HPA.version == "v2"
    assert kinds.SERVICE.group == ""


def test_render_takes_its_child_kinds_from_the_registry():
    assert set(child_kinds()) <= set(kinds.KINDS)
    assert {k.kind for k in child_kinds()} == {
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "PodDisruptionBudget",
        "ResourceClaimTemplate",
    }

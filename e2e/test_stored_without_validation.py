"""Objects stored before the CRD's safety rules existed are refused at reconcile.

The API server does not re-validate stored objects when a CRD changes. Here
the CRDs are put back without their CEL rules, objects breaking those rules
are created, and the real CRDs are restored: the operator must refuse the
objects with Stalled/InvalidSpec naming the field, and render no child.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.conversion import harness_crds, install_crds
from tests.support.operator import OperatorProcess, condition

pytestmark = pytest.mark.cluster


def _without_cel(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_cel(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [_without_cel(v) for v in node]
    return node


def _apply_crds(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    # Replaced whole, with the session's conversion webhook (tests/support/conversion.py).
    install_crds(cluster, docs)


@pytest.fixture
def crds_without_cel(cluster: Cluster) -> Iterator[None]:
    real = harness_crds(cluster)
    _apply_crds(cluster, [_without_cel(copy.deepcopy(d)) for d in real])
    try:
        yield
    finally:
        _apply_crds(cluster, real)


def _stalled(cluster: Cluster, namespace: str, plural: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        live = cluster.custom.get_namespaced_custom_object(
            "modelops.io", "v1alpha1", namespace, plural, name
        )
        stalled = condition(live, "Stalled")
        return live if stalled.get("reason") == "InvalidSpec" else None

    return wait_for(probe, timeout=60, what=f"{plural}/{name} Stalled=InvalidSpec")


def test_objects_stored_without_the_cel_rules_are_refused_naming_the_field(
    cluster: Cluster, operator: OperatorProcess, namespace: str, crds_without_cel: None
):
    md = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "old-md"},
        "spec": {
            "model": {"storageUri": "file:///models/old-md", "version": "1"},
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "runtime": {
                "args": ["--log-verbose=1", "--model-repository=/etc"],
                "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}],
            },
        },
    }
    tj = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "old-tj"},
        "spec": {
            "dataset": {"uri": "https://alice:hunter2@data.example.com/train.npz"},
            "output": {"storageUri": "file:///models/old-tj"},
            "env": [{"name": "MASTER_ADDR", "value": "attacker.example.com"}],
        },
    }
    cluster.apply(md, namespace)
    cluster.apply(tj, namespace)
    # The rules are back; the stored objects are not re-validated by the API server.
    _apply_crds(cluster, harness_crds(cluster))

    live_md = _stalled(cluster, namespace, "modeldeployments", "old-md")
    message = condition(live_md, "Stalled")["message"]
    assert "spec.runtime.args[1]: --model-repository" in message
    assert "spec.runtime.env[0].name: NVIDIA_VISIBLE_DEVICES" in message
    assert condition(live_md, "Ready")["status"] == "False"

    live_tj = _stalled(cluster, namespace, "trainingjobs", "old-tj")
    message = condition(live_tj, "Stalled")["message"]
    assert "spec.env[0].name: MASTER_ADDR" in message
    assert "spec.dataset.uri" in message
    assert "hunter2" not in str(live_tj["status"])  # the credential never reaches status

    # Never rendered: no Deployment, no Job, no rendezvous Service.
    assert not cluster.apps.list_namespaced_deployment(namespace).items
    assert not cluster.batch.list_namespaced_job(namespace).items
    assert not cluster.core.list_namespaced_service(namespace).items
    events = cluster.core.list_namespaced_event(namespace).items
    assert all("hunter2" not in (e.message or "") for e in events)

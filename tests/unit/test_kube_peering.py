"""ensure_cluster_peering: create the kopf peering record once, tolerate its CRD not
being served yet. The real path (a one-shot apply on a fresh cluster) is
tests/integration/test_install_manifests.py; this file drives the answers a real
API server gives in the moment between creating a CRD and serving it, which a
test cannot produce on demand (it lasts milliseconds), through a stand-in for Kube."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from modelops.kube.peering import ensure_cluster_peering, peering_record


class FakeKube:
    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)  # answers before success; 0 = success
        self.created: list[dict[str, Any]] = []

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        status = self.statuses.pop(0) if self.statuses else 0
        if status:
            raise kubernetes.client.ApiException(status=status, reason="test")
        self.created.append(obj)
        return obj


def test_creates_the_record_named_by_peering():
    kube = FakeKube()
    assert ensure_cluster_peering(kube, "modelops") == "created"  # type: ignore[arg-type]
    assert kube.created == [peering_record("modelops")]
    assert kube.created[0]["kind"] == "ClusterKopfPeering"
    assert kube.created[0]["apiVersion"] == "kopf.dev/v1"


def test_an_existing_record_is_left_alone():
    assert ensure_cluster_peering(FakeKube(409), "modelops") == "exists"  # type: ignore[arg-type]


def test_waits_while_the_crd_is_not_served_yet():
    sleeps: list[float] = []
    kube = FakeKube(404, 404)
    result = ensure_cluster_peering(kube, "p", sleep=sleeps.append)  # type: ignore[arg-type]
    assert result == "created" and len(sleeps) == 2


def test_gives_up_without_the_crd_and_runs_on():
    kube = FakeKube(*([404] * 1000))
    result = ensure_cluster_peering(kube, "p", timeout_s=0, sleep=lambda _: None)  # type: ignore[arg-type]
    assert result == "unavailable" and not kube.created


def test_other_errors_are_raised():
    with pytest.raises(kubernetes.client.ApiException):
        ensure_cluster_peering(FakeKube(403), "p")  # type: ignore[arg-type]

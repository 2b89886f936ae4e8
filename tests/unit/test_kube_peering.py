"""ensure_cluster_peering: create the kopf peering record once, tolerate its CRD not
being served yet. The real path (a one-shot apply on a fresh cluster) is
tests/integration/test_install_manifests.py; this file drives the answers a real
API server gives in the moment between creating a CRD and serving it, which a
test cannot produce on demand (it lasts milliseconds), through the recording fake."""

from __future__ import annotations

import pytest

from modelops.api.kinds import CLUSTER_KOPF_PEERING, KINDS
from modelops.kube.errors import Forbidden, NotFound
from modelops.kube.peering import ensure_cluster_peering, peering_record
from tests.support.fake_kube import FakeKube

NOT_SERVED = NotFound("NotFound", "the server could not find the requested resource", 404)


def test_creates_the_record_named_by_peering():
    kube = FakeKube()
    assert ensure_cluster_peering(kube, "modelops") == "created"
    live = kube.live(CLUSTER_KOPF_PEERING, None, "modelops")
    assert live is not None and live["kind"] == "ClusterKopfPeering"
    assert peering_record("modelops")["apiVersion"] == "kopf.dev/v1"


def test_an_existing_record_is_left_alone():
    kube = FakeKube()
    kube.put(peering_record("modelops"))
    assert ensure_cluster_peering(kube, "modelops") == "exists"


def test_waits_while_the_crd_is_not_served_yet():
    sleeps: list[float] = []
    kube = FakeKube()
    kube.fail(NOT_SERVED, verb="create", times=2)
    assert ensure_cluster_peering(kube, "p", sleep=sleeps.append) == "created"
    assert len(sleeps) == 2


def test_gives_up_without_the_crd_and_runs_on():
    kube = FakeKube(served=set(KINDS) - {CLUSTER_KOPF_PEERING})
    result = ensure_cluster_peering(kube, "p", timeout_s=0, sleep=lambda _: None)
    assert result == "unavailable"
    assert kube.live(CLUSTER_KOPF_PEERING, None, "p") is None


def test_other_errors_are_raised():
    kube = FakeKube()
    kube.fail(Forbidden("Forbidden", "no", 403), verb="create")
    with pytest.raises(Forbidden):
        ensure_cluster_peering(kube, "p")

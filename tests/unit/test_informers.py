"""The operator's informers together (controllers/informers.py), on their threads
against the recording fake: per-reconcile barriers, and a CRD (KEDA's) that
appears and disappears while the operator runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelops.api.conversion import BETA_FIELDS, to_v1alpha1
from modelops.api.kinds import CUSTOM_RESOURCE_DEFINITION, MODEL_DEPLOYMENT_STORED, SCALED_OBJECT
from modelops.controllers.indexes import MD_STORES, TJ_STORES
from modelops.controllers.informers import Informers
from modelops.controllers.stores import Change
from modelops.kube import errors
from modelops.render.projections import project_custom_object
from tests.support.fake_kube import FakeKube

NS = "ml"
CRD_NAME = "scaledobjects.keda.sh"
MANAGED = {"app.kubernetes.io/managed-by": "modelops", "modelops.io/model-deployment": "fraud"}


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {"group": "keda.sh"},
    }


def scaled_object() -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "fraud", "namespace": NS, "labels": MANAGED},
        "spec": {"scaleTargetRef": {"name": "fraud"}},
    }


class Hub:
    def __init__(self, kube: FakeKube) -> None:
        self.changes: list[tuple[str, Change]] = []
        self.crds: list[tuple[str, bool]] = []
        self.informers = Informers(
            kube,
            asyncio.get_running_loop(),
            on_changes=lambda store, changes: self.changes.extend((store, c) for c in changes),
            on_crd=lambda name, present: self.crds.append((name, present)),
        )

    async def until(self, predicate, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)


@pytest.fixture
def kube() -> FakeKube:
    kube = FakeKube()
    kube.watch_wait_s = 0.02
    return kube


def test_each_reconcile_waits_only_for_the_stores_it_reads(kube: FakeKube):
    asyncio.run(_waits_only_for_its_stores(kube))


async def _waits_only_for_its_stores(kube: FakeKube) -> None:
    # The Jobs list keeps failing: the TrainingJob reconcile waits, the
    # ModelDeployment one does not.
    forbidden = errors.Forbidden("Forbidden", "jobs is forbidden", 403)
    kube.fail(forbidden, verb="list", kind="Job", times=10**6)
    hub = Hub(kube)
    hub.informers.start()
    try:
        async with asyncio.timeout(5):
            await hub.informers.wait_synced(MD_STORES)
        assert not hub.informers.synced(TJ_STORES)
        assert not hub.informers.stores["tj_jobs"].synced
    finally:
        hub.informers.stop()


def test_keda_installed_later_starts_its_watch_and_removed_stops_it(kube: FakeKube):
    asyncio.run(_late_crd(kube))


async def _late_crd(kube: FakeKube) -> None:
    hub = Hub(kube)
    hub.informers.start()
    try:
        store = hub.informers.stores["md_scaled_objects"]
        async with asyncio.timeout(5):
            await hub.informers.wait_synced(MD_STORES)
        assert len(store) == 0 and kube.count("list", "ScaledObject") == 0
        # KEDA is installed: its CRD appears, then a ScaledObject of ours.
        kube.served.add(SCALED_OBJECT)
        kube.put(crd())
        kube.put(scaled_object())
        await hub.until(lambda: len(store) == 1)
        assert hub.crds == [(CRD_NAME, True)]
        version = store.get((NS, "fraud"))[0]["metadata"]["resourceVersion"]
        assert ("md_scaled_objects", Change((NS, "fraud"), "ADDED", version)) in hub.changes
        # KEDA is removed: its objects go, the CRD goes, the watch stops.
        kube.served.discard(SCALED_OBJECT)
        kube.remove(CUSTOM_RESOURCE_DEFINITION, None, CRD_NAME)
        await hub.until(lambda: hub.crds == [(CRD_NAME, True), (CRD_NAME, False)])
        assert len(store) == 0 and store.synced
        assert ("md_scaled_objects", (NS, "fraud"), "DELETED") in [
            (s, c.key, c.type) for s, c in hub.changes
        ]
        await asyncio.sleep(0.2)
        kube.reset_calls()
        await asyncio.sleep(0.2)
        assert kube.count(kind="ScaledObject") == 0  # no informer left polling it
    finally:
        hub.informers.stop()


def test_modeldeployments_are_watched_stored_and_read_converted(kube: FakeKube):
    asyncio.run(_stored_version(kube))


async def _stored_version(kube: FakeKube) -> None:
    # The operator lists and watches the storage version, so the API server
    # converts nothing; the store holds the v1alpha1 form the planners read,
    # made by the conversion webhook's own functions.
    stored = {
        "apiVersion": "modelops.io/v1beta1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": NS},
        "spec": {
            "model": {"name": "fraud", "storageUri": "s3://models/fraud"},
            "podMetadata": {"labels": {"team": "risk"}},
        },
        "status": {"servedVersions": [{"version": "3"}, {"version": "4"}]},
    }
    kube.put(stored)
    hub = Hub(kube)
    hub.informers.start()
    try:
        async with asyncio.timeout(5):
            await hub.informers.wait_synced(MD_STORES)
        # The fake keeps each version apart: found only through a v1beta1 list.
        read = hub.informers.stores["md_index"].get((NS, "fraud"))
        read = read[0] if isinstance(read, list) else read
        assert read["apiVersion"] == "modelops.io/v1alpha1"
        assert read["status"]["servedVersion"] == "3,4"
        assert BETA_FIELDS in read["metadata"]["annotations"]  # podMetadata, kept losslessly
        live = kube.get(MODEL_DEPLOYMENT_STORED, NS, "fraud")
        assert read == to_v1alpha1(project_custom_object(live))
    finally:
        hub.informers.stop()


def test_what_a_failed_list_brought_in_is_still_reported(kube: FakeKube):
    asyncio.run(_failed_list(kube))


async def _failed_list(kube: FakeKube) -> None:
    # Two pods, one per page; the second page fails once. The first pod is in the
    # store after the failed list, and its owner must be queued then: the next,
    # complete list finds it unchanged and reports nothing for it.
    kube.list_page_size = 1
    for name, owner in (("a", "fraud"), ("b", "churn")):
        kube.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "labels": {**MANAGED, "modelops.io/model-deployment": owner},
                },
            }
        )
    kube.fail(errors.Unavailable("Unreachable", "reset", 0), verb="list", kind="Pod", skip=1)
    hub = Hub(kube)
    hub.informers.start()
    try:
        await hub.until(lambda: hub.informers.synced(["md_pods"]))
        added = {c.key for s, c in hub.changes if s == "md_pods" and c.type == "ADDED"}
        assert added == {(NS, "churn"), (NS, "fraud")}
        assert kube.count("list", "Pod") >= 3  # a failed list of two pages, then a complete one
    finally:
        hub.informers.stop()

"""Behaviour every `KubeApi` must show, as scenarios run against two implementations.

tests/integration/test_kube_client.py runs them against `Kube` on the real API
server: that is where the expected behaviour comes from. tests/unit/
test_fake_kube.py runs the same scenarios against `FakeKube`, so a controller
unit test on the fake sees what the real API server would do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from modelops.api import constants as c
from modelops.api.kinds import DEPLOYMENT, MODEL_DEPLOYMENT, SERVICE
from modelops.kube import errors
from modelops.kube.protocol import KubeApi

Scenario = Callable[[KubeApi, str], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def service(namespace: str, name: str = "svc", port: int = 80, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]},
    }


def deployment(namespace: str, name: str = "dep", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


def model_deployment(namespace: str, name: str = "md") -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.MD_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"storageUri": "s3://models/fraud", "format": "torchscript"},
            "resources": {"gpu": {"count": 1}},
        },
    }


# -- apply ----------------------------------------------------------------------


@scenario
def apply_creates_an_absent_object_and_reports_its_identity(kube: KubeApi, ns: str) -> None:
    live = kube.apply(deployment(ns))
    assert live["metadata"]["uid"]
    assert live["metadata"]["generation"] == 1
    assert live["metadata"]["resourceVersion"]


@scenario
def apply_with_a_uid_precondition_never_creates(kube: KubeApi, ns: str) -> None:
    wanted = str(uuid.uuid4())
    with pytest.raises(errors.PreconditionFailed) as refused:
        kube.apply(service(ns), uid_precondition=wanted)
    err = refused.value
    assert (err.status, err.reason) == (409, "Conflict")
    assert err.precondition_failed
    assert isinstance(err, errors.Conflict)
    assert f"uid mismatch: the provided object specified uid {wanted}" in err.message
    assert "no existing object was found" in err.message
    assert kube.get(SERVICE, ns, "svc") is None


@scenario
def apply_with_the_live_uid_updates_the_object(kube: KubeApi, ns: str) -> None:
    first = kube.apply(deployment(ns, replicas=1))
    uid = first["metadata"]["uid"]
    second = kube.apply(deployment(ns, replicas=2), uid_precondition=uid)
    assert second["metadata"]["uid"] == uid
    assert second["spec"]["replicas"] == 2
    assert second["metadata"]["generation"] == 2


@scenario
def apply_with_another_uid_is_refused_and_changes_nothing(kube: KubeApi, ns: str) -> None:
    live = kube.apply(deployment(ns, replicas=1))
    other = str(uuid.uuid4())
    with pytest.raises(errors.PreconditionFailed) as refused:
        kube.apply(deployment(ns, replicas=3), uid_precondition=other)
    err = refused.value
    # The API server words it as a change of an immutable field (422 Invalid).
    assert (err.status, err.reason) == (422, "Invalid")
    assert err.precondition_failed
    assert err.fields[0] == "metadata.uid"
    assert err.message == (
        f'Deployment.apps "dep" is invalid: metadata.uid: Invalid value: "{other}": '
        "field is immutable"
    )
    after = kube.get(DEPLOYMENT, ns, "dep")
    assert after is not None
    assert after["spec"]["replicas"] == 1
    # (resourceVersion moves anyway: the Deployment controller writes status.)
    assert after["metadata"]["generation"] == live["metadata"]["generation"] == 1


@scenario
def create_only_apply_creates_once(kube: KubeApi, ns: str) -> None:
    live = kube.apply(service(ns, team="a"), create_only=True)
    assert live["metadata"]["uid"]
    with pytest.raises(errors.AlreadyExists) as refused:
        kube.apply(service(ns, team="b"), create_only=True)
    assert refused.value.status == 409
    assert refused.value.message == 'services "svc" already exists'
    after = kube.get(SERVICE, ns, "svc")
    assert after is not None
    assert after["metadata"]["labels"] == {"team": "a"}


@scenario
def fields_a_later_apply_drops_are_removed_after_a_create_only_apply(kube: KubeApi, ns: str):
    kube.apply(service(ns, team="a", tier="x"), create_only=True)
    live = kube.apply(service(ns, team="a"))
    assert live["metadata"]["labels"] == {"team": "a"}


@scenario
def fields_set_by_create_survive_a_later_apply_that_drops_them(kube: KubeApi, ns: str):
    # `create` records its fields under an update, not an apply: the trap that
    # apply(create_only=True) avoids.
    kube.create(service(ns, team="a", tier="x"))
    live = kube.apply(service(ns, team="a"))
    assert live["metadata"]["labels"] == {"team": "a", "tier": "x"}


@scenario
def applying_the_same_object_again_changes_nothing(kube: KubeApi, ns: str) -> None:
    first = kube.apply(service(ns, team="a"))
    again = kube.apply(service(ns, team="a"))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


# -- create ---------------------------------------------------------------------


@scenario
def create_refuses_a_taken_name(kube: KubeApi, ns: str) -> None:
    kube.create(service(ns))
    with pytest.raises(errors.AlreadyExists) as refused:
        kube.create(service(ns, port=81))
    err = refused.value
    assert (err.status, err.reason) == (409, "AlreadyExists")
    assert isinstance(err, errors.Conflict)
    assert not err.precondition_failed
    assert err.message == 'services "svc" already exists'


# -- get / merge_patch ---------------------------------------------------------------


@scenario
def get_of_an_absent_object_is_none(kube: KubeApi, ns: str) -> None:
    assert kube.get(SERVICE, ns, "nothing-here") is None


@scenario
def merge_patch_changes_fields_and_removes_nulls(kube: KubeApi, ns: str) -> None:
    kube.apply(service(ns, team="a", tier="x"))
    patched = kube.merge_patch(SERVICE, ns, "svc", {"metadata": {"labels": {"tier": None}}})
    assert patched["metadata"]["labels"] == {"team": "a"}


@scenario
def merge_patch_of_an_absent_object_is_not_found(kube: KubeApi, ns: str) -> None:
    with pytest.raises(errors.NotFound) as refused:
        kube.merge_patch(DEPLOYMENT, ns, "nothing-here", {"spec": {"replicas": 2}})
    assert (refused.value.status, refused.value.reason) == (404, "NotFound")


# -- delete ---------------------------------------------------------------------


@scenario
def delete_needs_the_live_uid(kube: KubeApi, ns: str) -> None:
    live = kube.create(service(ns))
    uid = live["metadata"]["uid"]
    other = str(uuid.uuid4())
    with pytest.raises(errors.PreconditionFailed) as refused:
        kube.delete(SERVICE, ns, "svc", uid=other)
    assert (refused.value.status, refused.value.reason) == (409, "Conflict")
    assert refused.value.message == (
        f'Operation cannot be fulfilled on Service "svc": the UID in the precondition ({other}) '
        f"does not match the UID in record ({uid}). The object might have been deleted and "
        "then recreated"
    )
    assert kube.get(SERVICE, ns, "svc") is not None
    assert kube.delete(SERVICE, ns, "svc", uid=uid) is True
    assert kube.delete(SERVICE, ns, "svc", uid=uid) is False


@scenario
def a_recreated_object_is_not_deleted_with_the_old_uid(kube: KubeApi, ns: str) -> None:
    old = kube.create(service(ns))["metadata"]["uid"]
    assert kube.delete(SERVICE, ns, "svc", uid=old)
    kube.create(service(ns))  # someone else's now, by the same name
    with pytest.raises(errors.PreconditionFailed):
        kube.delete(SERVICE, ns, "svc", uid=old)


# -- status ---------------------------------------------------------------------


@scenario
def patch_status_merges_into_status_only(kube: KubeApi, ns: str) -> None:
    kube.create(model_deployment(ns))
    live = kube.patch_status(
        MODEL_DEPLOYMENT, ns, "md", {"observedGeneration": 1, "servedVersion": "3"}
    )
    assert live["status"]["servedVersion"] == "3"
    live = kube.patch_status(MODEL_DEPLOYMENT, ns, "md", {"servedVersion": None})
    assert "servedVersion" not in live["status"]
    assert live["status"]["observedGeneration"] == 1
    assert live["metadata"]["generation"] == 1


@scenario
def patch_status_of_an_absent_object_is_not_found(kube: KubeApi, ns: str) -> None:
    with pytest.raises(errors.NotFound):
        kube.patch_status(MODEL_DEPLOYMENT, ns, "nothing-here", {"observedGeneration": 1})


# -- events and discovery -----------------------------------------------------------------


@scenario
def posted_events_are_listed_by_field_selector(kube: KubeApi, ns: str) -> None:
    md = kube.create(model_deployment(ns))
    kube.post_event(md, "Warning", "ApplyFailed", "the Service is invalid")
    kube.post_event(md, "Normal", "Ready", "serving")
    warnings = kube.list_events(ns, "type=Warning,involvedObject.name=md")
    assert [(e["reason"], e["message"]) for e in warnings] == [
        ("ApplyFailed", "the Service is invalid")
    ]
    assert warnings[0]["involvedObject"]["uid"] == md["metadata"]["uid"]
    assert kube.list_events(ns, "involvedObject.name=someone-else") == []


@scenario
def discovery_knows_built_in_kinds(kube: KubeApi, ns: str) -> None:
    assert kube.api_available(SERVICE)
    assert kube.api_available(DEPLOYMENT)


# -- list, watch and the leader Lease ----------------------------------------------------


@scenario
def a_watch_from_the_lists_version_sees_later_changes_only(kube: Any, ns: str) -> None:
    kube.apply(service(ns, "before", team="a"))
    items, version = kube.list_objects(SERVICE, ns, label_selector="team=a")
    assert [i["metadata"]["name"] for i in items] == ["before"]
    # Each item says what it is, as a watched object does.
    assert (items[0]["apiVersion"], items[0]["kind"]) == ("v1", "Service")
    kube.apply(service(ns, "after", team="a"))
    kube.apply(service(ns, "stranger", team="b"))
    seen = []
    for type_, obj in kube.watch_objects(
        SERVICE, ns, resource_version=version, label_selector="team=a", timeout_s=1
    ):
        if type_ != "BOOKMARK":
            seen.append((type_, obj["metadata"]["name"]))
    assert seen == [("ADDED", "after")]


@scenario
def a_list_is_handed_on_page_by_page_with_its_version_last(kube: Any, ns: str) -> None:
    for name in ("one", "two", "three"):
        kube.apply(service(ns, name, team="a"))
    pages = kube.list_pages(SERVICE, ns, label_selector="team=a", page_size=2)
    first, version = next(pages)
    # The first page is there before the rest is asked for, without a version yet.
    assert len(first) == 2 and version == ""
    rest = list(pages)
    assert [len(items) for items, _ in rest] == [1] and rest[-1][1]
    names = {i["metadata"]["name"] for i in first + rest[0][0]}
    assert names == {"one", "two", "three"}
    assert (rest[0][0][0]["apiVersion"], rest[0][0][0]["kind"]) == ("v1", "Service")


@scenario
def a_lease_is_updated_only_from_the_version_read(kube: Any, ns: str) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader", "namespace": ns},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }
    assert kube.get_lease(ns, "leader") is None
    created = kube.create_lease(lease)
    with pytest.raises(errors.AlreadyExists):
        kube.create_lease(lease)
    taken = {**created, "spec": {**created["spec"], "holderIdentity": "b"}}
    kube.replace_lease(taken)
    # The first writer's version is stale now: its renewal is refused.
    renewed = {**created, "spec": {**created["spec"], "renewTime": "2026-12-07T04:00:00.000000Z"}}
    with pytest.raises(errors.Conflict):
        kube.replace_lease(renewed)
    assert kube.get_lease(ns, "leader")["spec"]["holderIdentity"] == "b"

"""FakeKube behaves as the real API server does (the shared scenarios), and records calls."""

from __future__ import annotations

import pytest

from modelops.api.kinds import DEPLOYMENT, SCALED_OBJECT, SERVICE
from modelops.kube import errors
from tests.support.fake_kube import Call, FakeKube
from tests.support.kube_contract import SCENARIOS, deployment, service

NS = "team-a"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fake_kube_behaves_like_the_api_server(name: str):
    SCENARIOS[name](FakeKube(), NS)


def test_every_call_is_recorded_with_verb_kind_namespace_and_name():
    kube = FakeKube()
    live = kube.apply(service(NS))
    kube.get(SERVICE, NS, "svc")
    kube.delete(SERVICE, NS, "svc", uid=live["metadata"]["uid"])
    kube.post_event(live, "Normal", "Deleted", "gone")
    assert kube.calls == [
        Call("apply", "Service", NS, "svc"),
        Call("get", "Service", NS, "svc"),
        Call("delete", "Service", NS, "svc"),
        Call("create_event", "Event", NS, "svc"),
    ]
    assert kube.count() == 4
    assert kube.count("apply") == 1
    assert kube.count(kind="Service") == 3
    kube.reset_calls()
    assert kube.count() == 0


def test_test_helpers_are_not_counted():
    kube = FakeKube()
    kube.put(service(NS), uid="user-made")
    assert kube.live(SERVICE, NS, "svc")["metadata"]["uid"] == "user-made"
    assert kube.count() == 0


def test_an_object_someone_else_made_is_not_overwritten_with_a_uid_precondition():
    kube = FakeKube()
    kube.put(service(NS), uid="user-made")
    with pytest.raises(errors.PreconditionFailed):
        kube.apply(service(NS, port=81), uid_precondition="ours")
    assert kube.live(SERVICE, NS, "svc")["spec"]["ports"][0]["port"] == 80


def test_a_failed_call_is_recorded_and_raises_the_injected_error():
    kube = FakeKube()
    invalid = errors.Invalid("Invalid", "spec.replicas: Invalid value", 422)
    kube.fail(invalid, verb="apply", kind="Deployment")
    with pytest.raises(errors.Invalid):
        kube.apply(deployment(NS))
    kube.apply(deployment(NS))  # only once
    kube.apply(service(NS))
    assert kube.count("apply") == 3
    assert kube.live(DEPLOYMENT, NS, "dep") is not None


def test_post_event_never_raises_even_when_the_server_fails():
    kube = FakeKube()
    kube.fail(errors.Unavailable("ServiceUnavailable", "down", 503), verb="create_event")
    kube.post_event(service(NS), "Warning", "X", "y")
    assert kube.count("create_event") == 1
    assert kube.events == []


def test_unserved_kinds_are_not_found_and_discovery_is_cached():
    kube = FakeKube()
    assert not kube.api_available(SCALED_OBJECT)
    assert not kube.api_available(SCALED_OBJECT)
    assert kube.count("discovery") == 1
    so = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "md", "namespace": NS},
        "spec": {},
    }
    with pytest.raises(errors.NotFound):
        kube.apply(so)
    assert kube.delete(SCALED_OBJECT, NS, "md", uid="x") is False
    kube.served.add(SCALED_OBJECT)
    kube.forget_api_cache()
    assert kube.api_available(SCALED_OBJECT)
    assert kube.apply(so)["metadata"]["uid"]


def test_generation_moves_with_spec_not_with_metadata_or_status():
    kube = FakeKube()
    kube.apply(deployment(NS))
    labelled = deployment(NS)
    labelled["metadata"]["labels"] = {"a": "b"}
    live = kube.apply(labelled)
    assert live["metadata"]["generation"] == 1
    live = kube.apply(deployment(NS, replicas=5))
    assert live["metadata"]["generation"] == 2

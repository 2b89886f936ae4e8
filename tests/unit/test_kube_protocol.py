"""Kube and FakeKube both implement the KubeApi protocol, signatures included."""

from __future__ import annotations

import inspect

import kubernetes
import pytest

from modelops.kube import Kube, KubeApi
from tests.support.fake_kube import FakeKube

METHODS = [
    name
    for name, member in inspect.getmembers(KubeApi, inspect.isfunction)
    if not name.startswith("_")
]


@pytest.fixture(scope="module")
def kube() -> Kube:
    # No request is made: a client aimed at nothing is enough to inspect it.
    return Kube(kubernetes.client.ApiClient(kubernetes.client.Configuration()))


def test_the_protocol_covers_the_verbs_controllers_use():
    assert set(METHODS) == {
        "apply",
        "create",
        "get",
        "merge_patch",
        "delete",
        "patch_status",
        "list_events",
        "post_event",
        "api_available",
        "forget_api_cache",
        "read_secret",
    }


@pytest.mark.parametrize("impl", ["kube", "fake"])
def test_implementations_satisfy_the_protocol(impl: str, kube: Kube):
    obj = kube if impl == "kube" else FakeKube()
    assert isinstance(obj, KubeApi)
    for name in METHODS:
        wanted = inspect.signature(getattr(KubeApi, name))
        got = inspect.signature(getattr(type(obj), name))
        wanted_params = list(wanted.parameters.values())
        got_params = {p.name: p for p in got.parameters.values()}
        for param in wanted_params:
            assert param.name in got_params, f"{impl}.{name} lacks {param.name}"
            mine = got_params[param.name]
            assert mine.kind == param.kind, f"{impl}.{name}({param.name}) kind differs"
            assert mine.default == param.default, f"{impl}.{name}({param.name}) default differs"
            assert mine.annotation == param.annotation, f"{impl}.{name}({param.name}) type differs"
        extra = [p for p in got_params.values() if p.name not in wanted.parameters]
        assert all(p.default is not inspect.Parameter.empty for p in extra), (
            f"{impl}.{name} has extra required parameters: {extra}"
        )
        assert got.return_annotation == wanted.return_annotation, f"{impl}.{name} returns differ"


@pytest.mark.parametrize("protocol", ["watch", "lease"])
@pytest.mark.parametrize("impl", ["kube", "fake"])
def test_informers_and_the_elector_get_what_they_call(impl: str, protocol: str, kube: Kube):
    """The informer's WatchApi and the elector's LeaseApi, on both implementations:
    every parameter the protocol names exists, keyword-only where it says so."""
    from modelops.controllers.leader import LeaseApi
    from modelops.kube.informer import WatchApi

    wanted_protocol = WatchApi if protocol == "watch" else LeaseApi
    cls = Kube if impl == "kube" else FakeKube
    methods = [n for n, _ in inspect.getmembers(wanted_protocol, inspect.isfunction) if n[0] != "_"]
    assert methods
    for name in methods:
        wanted = inspect.signature(getattr(wanted_protocol, name)).parameters
        got = inspect.signature(getattr(cls, name)).parameters
        for param in wanted.values():
            assert param.name in got, (cls.__name__, name, param.name)
            assert got[param.name].kind == param.kind, (cls.__name__, name, param.name)

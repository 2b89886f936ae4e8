"""The informer (kube/informer.py) on the real API server: what the unit tests
(tests/unit/test_informer.py) assume of list and watch holds here.

- list then watch from the list's resourceVersion; the server-side label selector;
- a CRD created after the informer started: 404 until then (an empty, synced
  store), its objects once it is served; deleted while watched, the watch
  ends and the store empties.

Watches here use a 1-2 s server-side timeout so each `sync_once` returns soon.

- a watch from a resourceVersion etcd has compacted: the real server's 410 Gone
  (an ERROR event with code 410), then a relist that finds what changed meanwhile.

The 410 case watches PodTemplates: the test cluster serves them without the API
server's watch cache (hack/cluster/cluster.sh, ``watch-cache-sizes``), because
the cache answers a watch from a compacted version with a replay of its own
history for as long as it holds it, never a 410; etcd itself is compacted
through its v3 HTTP gateway. Against a cluster named by MODELOPS_KUBECONFIG
(whose etcd the test cannot reach) that case is skipped.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest
import yaml

from modelops.api.kinds import CONFIG_MAP, Kind
from modelops.controllers.stores import Store
from modelops.kube import Kube
from modelops.kube.informer import RELISTS, Informer
from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.cluster

SELECTOR = "modelops.io/test-informer=yes"


class Sink:
    def __init__(self) -> None:
        self.store = Store("cms", lambda body: (("", body["metadata"]["name"]), body["metadata"]))
        self.absences = 0

    def replace(self, namespace: str | None, objects: list[dict[str, Any]]) -> None:
        self.store.replace(namespace, objects)

    def event(self, type_: str, obj: dict[str, Any]) -> None:
        if type_ == "DELETED":
            self.store.delete(obj)
        else:
            self.store.upsert(obj)

    def absent(self, namespace: str | None) -> None:
        self.absences += 1
        self.store.clear(namespace)

    def names(self) -> list[str]:
        return sorted(key[1] for key in self.store.keys())  # noqa: SIM118 (a Store, not a dict)


def config_map(namespace: str, name: str, labelled: bool = True) -> dict[str, Any]:
    labels = {"modelops.io/test-informer": "yes"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"k": "v"},
    }


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster.api_client)


def test_list_then_watch_with_the_server_side_selector(kube: Kube, namespace: str):
    kube.apply(config_map(namespace, "a"))
    kube.apply(config_map(namespace, "other", labelled=False))
    sink = Sink()
    informer = Informer(
        kube, CONFIG_MAP, namespace, sink, label_selector=SELECTOR, watch_timeout_s=1
    )
    assert informer.sync_once() == 0
    assert sink.names() == ["a"] and sink.store.synced
    listed_at = informer.resource_version
    kube.apply(config_map(namespace, "b"))
    live = kube.get(CONFIG_MAP, namespace, "a")
    kube.delete(CONFIG_MAP, namespace, "a", uid=live["metadata"]["uid"])
    informer.sync_once()
    assert sink.names() == ["b"]
    assert int(informer.resource_version) > int(listed_at)


def _crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def test_a_crd_that_comes_late_and_goes_again(kube: Kube, cluster: Cluster, namespace: str):
    group = f"t{uuid.uuid4().hex[:6]}.modelops.io"
    widget = Kind(f"{group}/v1", "Widget", "widgets")
    sink = Sink()
    informer = Informer(kube, widget, namespace, sink, watch_timeout_s=2)
    assert informer.sync_once() == informer.absent_recheck_s
    assert informer.is_absent and sink.store.synced and sink.absences == 1
    crd = _crd(group)
    cluster.apply(crd)
    cluster.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")
    try:
        body = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w1", "namespace": namespace},
        }
        cluster.custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)

        def listed() -> bool:
            informer.sync_once()
            return sink.names() == ["w1"]

        wait_for(listed, timeout=30, what="the Widget listed once its CRD is served")
        assert not informer.is_absent
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=true")

    def emptied() -> bool:
        informer.sync_once()
        return informer.is_absent and sink.names() == []

    wait_for(emptied, timeout=60, what="the store emptied once the CRD is gone")


POD_TEMPLATE = Kind("v1", "PodTemplate", "podtemplates")


def _etcd_url(cluster: Cluster) -> str:
    """The test cluster's etcd client URL, from the kwokctl config beside its kubeconfig."""
    config = cluster.kubeconfig.parent / "kwok.yaml"
    if not config.is_file():
        pytest.skip("not a cluster started by hack/cluster/cluster.sh: its etcd is out of reach")
    for doc in yaml.safe_load_all(config.read_text()):
        port = ((doc or {}).get("options") or {}).get("etcdPort")
        if port:
            return f"http://127.0.0.1:{port}"
    pytest.skip("no etcdPort in the kwokctl config")


def _compact(etcd: str, revision: str) -> None:
    request = urllib.request.Request(
        f"{etcd}/v3/kv/compaction",
        data=json.dumps({"revision": revision, "physical": True}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def pod_template(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"modelops.io/test-informer": "yes"},
        },
        "template": {"spec": {"containers": [{"name": "c", "image": "none"}]}},
    }


def test_a_compacted_version_is_gone_and_a_relist_catches_up(
    kube: Kube, cluster: Cluster, namespace: str
):
    etcd = _etcd_url(cluster)
    core = cluster.core  # PodTemplate is no kind modelops manages: not through Kube
    core.create_namespaced_pod_template(namespace, pod_template(namespace, "before"))
    sink = Sink()
    informer = Informer(
        kube, POD_TEMPLATE, namespace, sink, label_selector=SELECTOR, watch_timeout_s=1
    )
    informer.sync_once()
    assert sink.names() == ["before"]
    stale = informer.resource_version
    # Meanwhile (the informer not watching): one object goes, one comes, and
    # etcd forgets the history in between.
    core.delete_namespaced_pod_template("before", namespace)
    after = core.create_namespaced_pod_template(namespace, pod_template(namespace, "after"))
    _compact(etcd, after.metadata.resource_version)

    relists = RELISTS.labels(informer.name, "gone")._value.get()
    assert informer.sync_once() == 0.0  # the watch from `stale` met 410 Gone
    assert informer.resource_version == ""
    assert RELISTS.labels(informer.name, "gone")._value.get() == relists + 1
    informer.sync_once()  # lists again
    assert sink.names() == ["after"]
    assert int(informer.resource_version) > int(stale)

"""The informer (kube/informer.py) and its store (controllers/stores.py) against the
recording fake: list then watch, bookmarks, relist on 410 Gone, errors, a kind
that is not served, and what the store reports to the work queue."""

from __future__ import annotations

from typing import Any

from modelops.api.kinds import POD, SCALED_OBJECT
from modelops.controllers import indexes as ix
from modelops.controllers.stores import ADDED, DELETED, MODIFIED, Change, Store
from modelops.kube import errors
from modelops.kube.informer import Informer
from tests.support.fake_kube import FakeKube

NS = "ml"


def pod(name: str, owner: str = "fraud", phase: str = "Running", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "labels": {
                "app.kubernetes.io/managed-by": "modelops",
                "modelops.io/model-deployment": owner,
                **labels,
            },
        },
        "spec": {"containers": [{"name": "triton", "image": "triton"}]},
        "status": {"phase": phase},
    }


class Recorder:
    """A Sink around the pods store that keeps what it was told."""

    def __init__(self) -> None:
        self.store = ix.StoreSpec("md_pods", ix.md_pods, ix.OWNED_BY_MD).build()
        self.changes: list[Change] = []
        self.replaced = 0
        self.absences = 0

    def replace(self, namespace: str | None, objects: list[dict[str, Any]]) -> None:
        self.replaced += 1
        self.changes += self.store.replace(namespace, objects)

    def event(self, type_: str, obj: dict[str, Any]) -> None:
        self.changes += self.store.delete(obj) if type_ == DELETED else self.store.upsert(obj)

    def absent(self, namespace: str | None) -> None:
        self.absences += 1
        self.changes += self.store.clear(namespace)

    def take(self) -> list[Change]:
        out, self.changes = self.changes, []
        return out


def informer(kube: FakeKube, sink: Recorder, kind=POD) -> Informer:
    return Informer(kube, kind, None, sink, label_selector=ix.MANAGED_SELECTOR)


def names(sink: Recorder) -> list[str]:
    return sorted(p["metadata"]["name"] for p in sink.store.get((NS, "fraud"), []))


def test_lists_then_watches_from_the_lists_version():
    kube = FakeKube()
    kube.put(pod("a"))
    sink = Recorder()
    inf = informer(kube, sink)
    assert not sink.store.synced
    assert inf.sync_once() == 0
    assert sink.store.synced
    assert names(sink) == ["a"]
    assert sink.take() == [Change((NS, "fraud"), ADDED, "1")]
    kube.put(pod("b"))
    kube.reset_calls()
    inf.sync_once()
    assert names(sink) == ["a", "b"]
    # Only a watch: the list is not repeated.
    assert kube.count("list") == 0 and kube.count("watch") == 1


def test_server_side_selector_keeps_other_pods_out():
    kube = FakeKube()
    stranger = pod("x")
    stranger["metadata"]["labels"] = {"app": "other"}
    kube.put(stranger)
    sink = Recorder()
    informer(kube, sink).sync_once()
    assert len(sink.store) == 0


def test_a_change_the_reconcile_does_not_read_queues_nothing():
    kube = FakeKube()
    kube.put(pod("a"))
    sink = Recorder()
    inf = informer(kube, sink)
    inf.sync_once()
    sink.take()
    changed = pod("a")
    changed["metadata"]["annotations"] = {"noise": "1"}  # not in the projection
    kube.put(changed)
    inf.sync_once()
    assert sink.take() == []
    kube.put(pod("a", phase="Failed"))
    inf.sync_once()
    assert [c.type for c in sink.take()] == [MODIFIED]


def test_bookmarks_keep_the_watch_version_recent_so_compaction_needs_no_relist():
    kube = FakeKube()
    kube.put(pod("a"))
    sink = Recorder()
    inf = informer(kube, sink)
    inf.sync_once()
    # The rest of the cluster moves on; nothing of ours changes.
    kube.touch_other(50)
    inf.sync_once()
    assert int(inf.resource_version) >= 51
    kube.compact()
    kube.reset_calls()
    kube.put(pod("b"))
    inf.sync_once()
    assert names(sink) == ["a", "b"]
    assert kube.count("list") == 0


def test_gone_relists_and_reports_deletes_missed_meanwhile():
    kube = FakeKube()
    kube.put(pod("a"))
    kube.put(pod("b"))
    sink = Recorder()
    inf = informer(kube, sink)
    inf.sync_once()
    sink.take()
    version = inf.resource_version
    # While the watch is down: b is deleted, c created, then history is compacted.
    kube.remove(POD, NS, "b")
    kube.put(pod("c"))
    kube.compact()
    inf.resource_version = version
    assert inf.sync_once() == 0  # Gone: list again at once
    assert inf.resource_version == ""
    kube.reset_calls()
    inf.sync_once()
    assert kube.count("list") == 1
    assert names(sink) == ["a", "c"]
    assert sorted(c.type for c in sink.take()) == [ADDED, DELETED]


def test_gone_inside_the_stream_relists_too():
    kube = FakeKube()
    sink = Recorder()
    inf = informer(kube, sink)
    inf.sync_once()
    kube.fail(errors.Gone("Expired", "too old resource version", 410), verb="watch")
    assert inf.sync_once() == 0
    assert inf.resource_version == ""
    kube.put(pod("a"))
    inf.sync_once()
    assert names(sink) == ["a"]


def test_errors_back_off_and_resume_the_watch_without_listing():
    kube = FakeKube()
    sink = Recorder()
    inf = informer(kube, sink)
    inf.sync_once()
    for _ in range(3):
        kube.fail(errors.Unavailable("Unreachable", "connection refused", 0), verb="watch")
    delays = [inf.sync_once() for _ in range(3)]
    assert delays[0] > 0 and delays[0] < delays[1] < delays[2]
    kube.put(pod("a"))
    kube.reset_calls()
    assert inf.sync_once() == 0
    assert names(sink) == ["a"]
    assert kube.count("list") == 0
    assert inf.failures == 0


def test_a_kind_not_served_is_an_empty_synced_store_until_it_is():
    kube = FakeKube()  # no KEDA
    sink = Recorder()
    inf = informer(kube, sink, kind=SCALED_OBJECT)
    wait = inf.sync_once()
    assert wait == inf.absent_recheck_s
    assert sink.store.synced and len(sink.store) == 0
    inf.sync_once()
    assert sink.absences == 1  # said once, not at every recheck
    kube.served.add(SCALED_OBJECT)
    assert inf.sync_once() == 0
    assert not inf.is_absent


def test_a_kind_that_stops_being_served_empties_its_store():
    kube = FakeKube()
    kube.put(pod("a"))
    sink = Recorder()
    inf = informer(kube, sink)
    inf.sync_once()
    sink.take()
    kube.served.discard(POD)
    inf.sync_once()
    assert len(sink.store) == 0 and sink.store.synced
    assert [c.type for c in sink.take()] == [DELETED]


def test_an_object_whose_owner_label_changes_moves_between_keys():
    store = Store("md_pods", ix.indexer(ix.md_pods), ix.has_labels(ix.OWNED_BY_MD))
    p = pod("a", owner="one")
    p["metadata"]["resourceVersion"] = "1"
    assert store.upsert(p) == [Change((NS, "one"), ADDED, "1")]
    moved = pod("a", owner="two")
    moved["metadata"]["resourceVersion"] = "2"
    assert store.upsert(moved) == [
        Change((NS, "one"), DELETED, "2"),
        Change((NS, "two"), ADDED, "2"),
    ]
    unlabelled = pod("a")
    unlabelled["metadata"]["labels"] = {}
    unlabelled["metadata"]["resourceVersion"] = "3"
    assert store.upsert(unlabelled) == [Change((NS, "two"), DELETED, "3")]
    assert store.keys() == []


def test_relist_of_one_namespace_leaves_the_others():
    store = Store("md_pods", ix.indexer(ix.md_pods), ix.has_labels(ix.OWNED_BY_MD))
    other = pod("b")
    other["metadata"]["namespace"] = "team-b"
    store.replace("team-b", [other])
    store.replace(NS, [pod("a")])
    store.replace(NS, [])
    assert store.keys() == [("team-b", "fraud")]


def test_an_edit_of_an_object_without_generation_is_a_change():
    """A Service's projection is its identity only; its resourceVersion is how the
    planner sees an edit made behind the operator's back (render/ownership.py)."""
    store = Store("md_services", ix.indexer(ix.md_services), ix.has_labels(ix.MANAGED))
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "fraud",
            "namespace": NS,
            "uid": "u",
            "resourceVersion": "1",
            "labels": {
                "app.kubernetes.io/managed-by": "modelops",
                "modelops.io/model-deployment": "fraud",
            },
        },
        "spec": {"ports": [{"port": 8000}]},
    }
    store.upsert(svc)
    edited = {**svc, "metadata": {**svc["metadata"], "resourceVersion": "2"}}
    assert store.upsert(edited) == [Change((NS, "fraud"), MODIFIED, "2")]


def test_a_list_reaches_the_store_page_by_page():
    # Only projections are kept: a store takes each object as its page arrives,
    # so the informer never holds a whole list of full bodies.
    kube = FakeKube()
    kube.list_page_size = 1
    for name in ("a", "b", "c"):
        kube.put(pod(name))
    requests_when_seen: list[int] = []

    class Counting(Recorder):
        def replace(self, namespace, objects):
            def counted():
                for obj in objects:
                    requests_when_seen.append(kube.count("list", "Pod"))
                    yield obj

            super().replace(namespace, counted())

    sink = Counting()
    inf = informer(kube, sink)
    assert inf.sync_once() == 0
    assert requests_when_seen == [1, 2, 3]
    assert names(sink) == ["a", "b", "c"] and sink.store.synced
    assert inf.resource_version  # the version came with the last page


def test_a_list_that_fails_half_way_drops_nothing_and_the_next_list_does():
    kube = FakeKube()
    for name in ("a", "b"):
        kube.put(pod(name))
    sink = Recorder()
    inf = informer(kube, sink)
    assert inf.sync_once() == 0
    sink.take()
    # Meanwhile b is deleted and c created; the next list fails on its second page.
    kube.remove(POD, NS, "b")
    kube.put(pod("c"))
    kube.list_page_size = 1
    inf.resource_version = ""
    armed = []

    class FailsAfterFirstPage(Recorder):
        def replace(self, namespace, objects):
            def arm():
                for obj in objects:
                    if not armed:
                        armed.append(True)
                        kube.fail(errors.Unavailable("Unreachable", "reset", 0), verb="list")
                    yield obj

            sink.replace(namespace, arm())

    inf.sink = FailsAfterFirstPage()
    assert inf.sync_once() > 0  # backing off
    # b was not in the part of the list that came: it is not taken for deleted.
    assert names(sink) == ["a", "b"] and sink.take() == []
    assert inf.resource_version == ""
    inf.sink = sink
    assert inf.sync_once() == 0
    assert names(sink) == ["a", "c"]
    assert {(c.type) for c in sink.take()} == {DELETED, ADDED}

"""A retired slot's pods, still draining after their ReplicaSet was deleted, are not
strangers: on the real node every promotion named the old stable pods in an
EvidenceIgnored warning ("its controller ... is not a ReplicaSet of ...") while they
went through their preStop sleep and drain."""

from __future__ import annotations

from modelops.render.evidence import evidence_sources
from tests.unit.test_render_evidence import NOW, deployment, pod


def test_a_draining_pod_whose_replica_set_is_gone_is_skipped_not_ignored():
    children = {"Deployment/m-b": deployment("m-b", "dep-b")}
    sources = evidence_sources(
        "m", [pod("m-old-1", "rs-gone", deleting=True)], [], children, now=NOW
    )
    assert sources.ignored == {}
    assert sources.trusted == {}
    assert sources.skipped == {"m-old-1": "being deleted, its ReplicaSet gone"}


def test_a_live_pod_of_an_unknown_controller_is_still_a_stranger():
    children = {"Deployment/m-b": deployment("m-b", "dep-b")}
    sources = evidence_sources("m", [pod("m-x", "rs-unknown")], [], children, now=NOW)
    assert list(sources.ignored) == ["m-x"]

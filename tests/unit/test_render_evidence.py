"""Which pods may give evidence (render/evidence.py): one row per way a pod can
carry a ModelDeployment's labels, and what the owner check makes of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelops.render.evidence import REVISION, evidence_sources
from modelops.render.projections import project_deployment, project_pod, project_replica_set

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
OLD = (NOW - timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
NEW = (NOW - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")


def deployment(name: str, uid: str, revision: str = "3") -> dict[str, Any]:
    return project_deployment(
        {
            "metadata": {"name": name, "uid": uid, "annotations": {REVISION: revision}},
            "spec": {"replicas": 1, "template": {"metadata": {}}},
        }
    )


def replica_set(
    name: str,
    uid: str,
    owner: str | None,
    template_hash: str,
    revision: str = "3",
    dep: str = "other",
) -> dict[str, Any]:
    refs = [{"kind": "Deployment", "name": dep, "uid": owner, "controller": True}] if owner else []
    return project_replica_set(
        {
            "metadata": {
                "name": name,
                "uid": uid,
                "labels": {"pod-template-hash": template_hash, "modelops.io/model-deployment": "m"},
                "annotations": {REVISION: revision},
                "ownerReferences": refs,
            }
        }
    )


def pod(
    name: str,
    owner: str | None,
    template_hash: str | None = "aaa",
    *,
    ready: bool = True,
    created: str = OLD,
    deleting: bool = False,
    slot_label: str | None = None,
    rs_name: str | None = None,
    kind: str = "ReplicaSet",
) -> dict[str, Any]:
    labels = {"modelops.io/model-deployment": "m"}
    if template_hash:
        labels["pod-template-hash"] = template_hash
    if slot_label:
        labels["modelops.io/slot"] = slot_label
    meta: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "labels": labels,
        "creationTimestamp": created,
        "ownerReferences": [
            {"kind": kind, "name": rs_name or f"name-of-{owner}", "uid": owner, "controller": True}
        ]
        if owner
        else [],
    }
    if deleting:
        meta["deletionTimestamp"] = NOW.isoformat()
    return project_pod(
        {
            "metadata": meta,
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
    )


CHILDREN = {"Deployment": deployment("m", "dep-a"), "Deployment/m-b": deployment("m-b", "dep-b")}
REPLICA_SETS = [
    replica_set("m-aaa", "rs-a", "dep-a", "aaa", dep="m"),
    replica_set("m-b-bbb", "rs-b", "dep-b", "bbb", dep="m-b"),
    replica_set("m-old", "rs-old", "dep-a", "old", revision="2", dep="m"),
    # slot b's Deployment of an earlier candidate, deleted (its ReplicaSet not collected yet)
    replica_set("m-b-gone", "rs-gone", "dep-b-earlier", "ggg", dep="m-b"),
    replica_set("m-copy", "rs-copy", "someone-elses-deployment", "aaa"),
]


@pytest.mark.parametrize(
    ("the_pod", "verdict", "slot"),
    [
        (pod("a-1", "rs-a"), "trusted", "a"),
        (pod("b-1", "rs-b", "bbb"), "trusted", "b"),
        # The slot comes from the owner chain, never from a label someone set.
        (pod("b-2", "rs-b", "bbb", slot_label="a"), "trusted", "b"),
        (pod("bare", None), "ignored", None),  # labels copied onto a bare pod
        (pod("stranger", "rs-elsewhere"), "ignored", None),  # owned by something else
        (pod("copied-rs", "rs-copy"), "ignored", None),  # a ReplicaSet not of our Deployment
        (pod("wrong-hash", "rs-a", "zzz"), "ignored", None),  # not the ReplicaSet's template
        # A new pod of our ReplicaSet that the watch has not delivered yet: its controller
        # is named "<slot Deployment>-<its pod-template-hash>" (watch lag, deferred).
        (pod("just-made", "rs-not-seen-yet", created=NEW, rs_name="m-aaa"), "skipped", None),
        (pod("just-made-b", "rs-b-new", "ccc", created=NEW, rs_name="m-b-ccc"), "skipped", None),
        # An attacker's own ReplicaSet (never listed: it need not carry our labels), seen
        # the moment its pod is: foreign at once, whatever its age.
        (pod("own-rs", "rs-attacker", created=NEW, rs_name="fraud-rs"), "ignored", None),
        # Named after our Deployment but not for this pod's template hash.
        (pod("near-name", "rs-attacker", created=NEW, rs_name="m-zzz"), "ignored", None),
        # Named like no slot at all (slots are a and b).
        (pod("no-slot", "rs-attacker", "ccc", created=NEW, rs_name="m-c-ccc"), "ignored", None),
        # No pod-template-hash: the Deployment controller always sets one.
        (pod("no-hash", "rs-attacker", None, created=NEW, rs_name="m-"), "ignored", None),
        # Not even a ReplicaSet (a Job, a StatefulSet carrying the labels).
        (pod("a-job", "job-1", created=NEW, rs_name="m-aaa", kind="Job"), "ignored", None),
        (pod("old-revision", "rs-old", "old"), "skipped", None),  # mid rolling update
        (pod("unready", "rs-a", ready=False), "skipped", None),
        (pod("rolled-back", "rs-gone", "ggg"), "skipped", None),  # garbage collection pending
        (pod("leaving", "rs-a", deleting=True), "skipped", None),
    ],
    ids=lambda v: v["metadata"]["name"] if isinstance(v, dict) else str(v),
)
def test_owner_check(the_pod: dict[str, Any], verdict: str, slot: str | None) -> None:
    sources = evidence_sources("m", [the_pod], REPLICA_SETS, CHILDREN, now=NOW)
    name = the_pod["metadata"]["name"]
    found = {
        "trusted": name in sources.trusted,
        "ignored": name in sources.ignored,
        "skipped": name in sources.skipped,
    }
    assert [k for k, v in found.items() if v] == [verdict]
    if slot is not None:
        assert sources.trusted[name] == slot
    if verdict == "ignored":
        assert sources.ignored[name]  # a reason, for the event


def test_without_its_deployment_nothing_is_trusted() -> None:
    sources = evidence_sources("m", [pod("a-1", "rs-a")], REPLICA_SETS, {}, now=NOW)
    assert not sources.trusted and "a-1" in sources.skipped


def test_pods_keeps_order_and_filters_by_slot() -> None:
    pods = [pod("a-1", "rs-a"), pod("b-1", "rs-b", "bbb"), pod("bare", None), pod("a-2", "rs-a")]
    sources = evidence_sources("m", pods, REPLICA_SETS, CHILDREN, now=NOW)
    assert [p["metadata"]["name"] for p in sources.pods(pods)] == ["a-1", "b-1", "a-2"]
    assert [p["metadata"]["name"] for p in sources.pods(pods, "b")] == ["b-1"]


def test_a_pod_waiting_for_its_replica_set_is_looked_at_again_when_its_grace_ends() -> None:
    """Nothing else may wake the ModelDeployment (an attacker's pod whose controller the
    operator never sees): the owner check asks to be run again when the grace ends, so
    the pod is then named as foreign."""
    made = (NOW - timedelta(seconds=20)).isoformat().replace("+00:00", "Z")
    pods = [pod("just-made", "rs-not-seen-yet", created=made, rs_name="m-aaa"), pod("a-1", "rs-a")]
    sources = evidence_sources("m", pods, REPLICA_SETS, CHILDREN, now=NOW)
    assert "just-made" in sources.skipped
    assert sources.recheck_after_s == pytest.approx(41.0)  # 60 s grace, less 20, plus 1
    later = evidence_sources("m", pods, REPLICA_SETS, CHILDREN, now=NOW + timedelta(seconds=41))
    assert "just-made" in later.ignored and later.recheck_after_s is None
    settled = evidence_sources("m", [pod("a-1", "rs-a")], REPLICA_SETS, CHILDREN, now=NOW)
    assert settled.recheck_after_s is None


def test_a_pod_deferred_for_its_replica_set_is_judged_by_its_owner_uid_once_listed() -> None:
    """The grace only covers watch lag: as soon as the ReplicaSet is listed its owner uid
    decides, either way."""
    new_pod = pod("fresh", "rs-a2", "a2a", created=NEW, rs_name="m-a2a")
    before = evidence_sources("m", [new_pod], REPLICA_SETS, CHILDREN, now=NOW)
    assert "fresh" in before.skipped and before.recheck_after_s is not None
    ours = replica_set("m-a2a", "rs-a2", "dep-a", "a2a", dep="m")
    listed = evidence_sources("m", [new_pod], [*REPLICA_SETS, ours], CHILDREN, now=NOW)
    assert listed.trusted == {"fresh": "a"} and listed.recheck_after_s is None
    theirs = replica_set("m-a2a", "rs-a2", "someone-elses-deployment", "a2a")
    listed = evidence_sources("m", [new_pod], [*REPLICA_SETS, theirs], CHILDREN, now=NOW)
    assert "fresh" in listed.ignored


def test_a_foreign_pod_is_named_at_first_sight_without_a_recheck() -> None:
    sources = evidence_sources(
        "m",
        [pod("own-rs", "rs-x", created=NEW, rs_name="fraud-rs")],
        REPLICA_SETS,
        CHILDREN,
        now=NOW,
    )
    assert "fraud-rs" in sources.ignored["own-rs"]
    assert sources.recheck_after_s is None


def test_a_new_candidate_pod_seen_before_its_deployment_is_deferred_not_named() -> None:
    """The watches of Deployments and pods are separate streams: a new candidate's pod
    can arrive before its slot Deployment does, and is ours."""
    only_a = {"Deployment": CHILDREN["Deployment"]}
    early = pod("cand-1", "rs-b-new", "ccc", created=NEW, rs_name="m-b-ccc")
    sources = evidence_sources("m", [early], REPLICA_SETS, only_a, now=NOW)
    assert "cand-1" in sources.skipped and not sources.ignored

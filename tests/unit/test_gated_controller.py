"""A gated rollout through the reconcile shell, against the in-memory API: which
objects exist at each phase, what the sidecars are told, what status says.

The data plane's figures are given to the planner as the sidecars would report
them: a stand-in for the sidecar client's cache (tests/unit/test_sidecar_client.py
tests the client against real sockets; tests/drift and e2e/test_gated_rollout.py
run the real sidecars)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from modelops.api.kinds import CONFIG_MAP, DEPLOYMENT, SERVICE
from modelops.controllers.sidecar_client import Snapshot
from modelops.controllers.store_watcher import ListingError, StoreView
from tests.unit.test_md_reconcile import KEY, NOW, Harness, replica_set_of
from tests.unit.test_render_fixtures import md_body

SHADOW = {
    "maxSurge": 1,
    "maxUnavailable": 0,
    "surgeTimeoutSeconds": 60,
    "strategy": "Shadow",
    "shadow": {"mirrorPercent": 20, "requests": 100},
    "analysis": {"minRequests": 100, "minAgreement": 0.95},
}


class Sidecars:
    """What the sidecars would answer: figures given by the test, every ready pod
    loaded the version its pod template names."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] | None = None
        self.pulled: str | None = None  # what `latest` resolved to when the pods pulled
        # Pods whose sidecars did not answer in time: pod -> why.
        self.unanswered: dict[str, str] = {}

    def rollout(self, namespace: str, name: str, pods: Any) -> Snapshot:
        # Like the real client: only the pods the controller asks are answered for.
        asked = {p["metadata"]["name"] for p in pods}
        return Snapshot(
            {k: v for k, v in (self.figures or {}).items() if k in asked},
            {k: v for k, v in self.unanswered.items() if k in asked},
        )

    def loaded(self, namespace: str, name: str, model: str, pods: Any) -> dict[str, list[str]]:
        def version(pod: Any) -> str:
            asked = pod["metadata"]["annotations"]["modelops.io/model-version"]
            return self.pulled if asked == "latest" and self.pulled else asked

        return {p["metadata"]["name"]: [version(p)] for p in pods}

    def forget(self, namespace: str, name: str) -> None:
        pass


class Gated(Harness):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.sidecars = Sidecars()
        self.controller.sidecars = self.sidecars  # type: ignore[assignment]

    @property
    def figures(self) -> dict[str, dict[str, Any]] | None:
        return self.sidecars.figures

    @figures.setter
    def figures(self, value: dict[str, dict[str, Any]] | None) -> None:
        self.sidecars.figures = value

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self.kube.live(DEPLOYMENT, "ml", name)

    def run_pods(self, name: str) -> None:
        """The Deployment controller and kubelet: pods of the Deployment's template, Ready."""
        dep = self.kube.objects[(DEPLOYMENT, "ml", name)]
        want = dep["spec"].get("replicas", 1)
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": want,
            "availableReplicas": want,
        }
        template = dep["spec"]["template"]["metadata"]
        owner = replica_set_of(self.kube, dep)
        for (kind, _, pod), _obj in list(self.kube.objects.items()):
            if kind.kind == "Pod" and pod.startswith(f"{name}-pod-"):
                del self.kube.objects[(kind, "ml", pod)]
        for i in range(want):
            self.kube.put(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{name}-pod-{i}",
                        "namespace": "ml",
                        "labels": dict(template["labels"]) | {"pod-template-hash": owner["hash"]},
                        "annotations": dict(template["annotations"]),
                        "ownerReferences": [owner["ref"]],
                    },
                    "spec": {"nodeName": "gpu-0"},
                    "status": {
                        "phase": "Running",
                        "podIP": "10.0.0.1",
                        "conditions": [
                            {"type": "PodScheduled", "status": "True"},
                            {"type": "Ready", "status": "True"},
                        ],
                    },
                }
            )

    def set_version(self, version: str) -> None:
        body = self.kube.objects[(self._md_kind(), *KEY)]
        body["spec"]["model"]["version"] = version
        body["metadata"]["generation"] += 1

    def _md_kind(self):
        from modelops.api.kinds import MODEL_DEPLOYMENT

        return MODEL_DEPLOYMENT

    def traffic(self) -> dict[str, Any]:
        cm = self.kube.live(CONFIG_MAP, "ml", "fraud-traffic")
        assert cm is not None
        return json.loads(cm["data"]["traffic.json"])

    def events(self) -> list[str]:
        return [e["reason"] for e in self.kube.events]

    def epoch(self) -> str:
        """The attempt the sidecars count under (what traffic.json tells them)."""
        epoch = self.status()["rollout"]["epoch"]
        assert self.traffic()["epoch"] == epoch
        return epoch


def started(version: str = "1") -> Gated:
    h = Gated(
        md_body(model={"storageUri": "s3://models/fraud", "version": version}, rollout=SHADOW)
    )
    h.reconcile()
    h.run_pods("fraud")
    h.reconcile()
    h.reconcile()
    return h


def test_first_version_goes_directly_and_is_recorded():
    h = started()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Idle"
    assert rollout["stable"] == "1"
    assert rollout["stableSlot"] == "a"
    assert h.status()["history"][0]["version"] == "1"
    assert h.status()["history"][0]["source"] == {"kind": "PinnedBySpec"}
    assert h.ready()[0] == "True"
    # What the replicas' Triton servers report loaded.
    assert h.status()["loadedVersions"] == [
        {"version": "1", "replicas": 1, "pods": ["fraud-pod-0"]}
    ]
    # No candidate: the sidecars are told nothing, the Service selects every pod.
    assert h.traffic() == {}
    assert "modelops.io/slot" not in h.kube.live(SERVICE, "ml", "fraud")["spec"]["selector"]


def test_new_version_runs_as_candidate_beside_stable_and_is_promoted():
    h = started()
    stable_pod = h.kube.live(h.ix("Pod"), "ml", "fraud-pod-0")
    h.set_version("2")
    h.reconcile()
    # The candidate runs in slot b; the stable Deployment is untouched.
    candidate = h.deployment("fraud-b")
    assert candidate is not None
    assert candidate["spec"]["replicas"] == 1
    version = candidate["spec"]["template"]["metadata"]["annotations"]
    assert version["modelops.io/model-version"] == "2"
    stable = h.deployment("fraud")
    assert stable["spec"]["template"]["metadata"]["annotations"]["modelops.io/model-version"] == "1"
    # Live traffic reaches the stable slot only; the candidate has its own Service.
    assert h.kube.live(SERVICE, "ml", "fraud")["spec"]["selector"]["modelops.io/slot"] == "a"
    assert h.kube.live(SERVICE, "ml", "fraud-candidate")["spec"]["selector"] == {
        "modelops.io/model-deployment": "fraud",
        "modelops.io/slot": "b",
    }
    assert h.status()["rollout"]["phase"] == "Waiting"
    assert "CandidateStarted" in h.events()

    h.run_pods("fraud-b")
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "Shadow"
    traffic = h.traffic()
    assert traffic["mirrorPercent"] == 20 and traffic["canaryWeight"] == 0
    assert traffic["candidate"]["version"] == "2"
    assert traffic["candidate"]["http"] == "http://fraud-candidate.ml.svc:8000"
    assert h.ready()[0] == "True"

    # The sidecars report a good candidate: promoted, the candidate's pods stay.
    h.figures = {
        "fraud-pod-0": {
            "epoch": h.epoch(),
            "requests": 500,
            "errors": 0,
            "mirrored": 120,
            "agreed": 119,
        },
        "fraud-b-pod-0": {"epoch": h.epoch(), "requests": 120, "errors": 0},
    }
    h.controller.clock = lambda: NOW + timedelta(minutes=1)
    h.reconcile()
    # 1 disagreement in 120 and no error in 120: promising, but not yet sure enough that
    # the error rate is within 0.01 of stable's; status says how much more is needed.
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Shadow", rollout
    assert "not decided yet" in rollout["message"]
    assert rollout["analysis"]["requestsNeeded"] > 0
    h.figures = {
        "fraud-pod-0": {
            "epoch": h.epoch(),
            "requests": 5000,
            "errors": 0,
            "mirrored": 1000,
            "agreed": 999,
        },
        "fraud-b-pod-0": {"epoch": h.epoch(), "requests": 1000, "errors": 0},
    }
    h.reconcile()
    assert h.status()["rollout"]["phase"] in ("Promoting", "Idle")
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Idle", rollout
    assert rollout["stable"] == "2" and rollout["stableSlot"] == "b"
    assert h.deployment("fraud") is None  # the old stable slot is gone
    assert h.kube.live(h.ix("Pod"), "ml", "fraud-b-pod-0") is not None
    assert h.kube.live(SERVICE, "ml", "fraud-candidate") is None
    assert "modelops.io/slot" not in h.kube.live(SERVICE, "ml", "fraud")["spec"]["selector"]
    assert h.status()["history"][0]["version"] == "2"
    assert h.status()["history"][0]["outcome"] == "Promoted"
    assert "Promoted" in h.events()
    assert stable_pod is not None


def test_disagreeing_candidate_is_rolled_back_and_stable_keeps_serving():
    h = started()
    h.set_version("2")
    h.reconcile()
    h.run_pods("fraud-b")
    h.reconcile()
    h.figures = {
        "fraud-pod-0": {
            "epoch": h.epoch(),
            "requests": 500,
            "errors": 0,
            "mirrored": 200,
            "agreed": 150,
        },
        "fraud-b-pod-0": {"epoch": h.epoch(), "requests": 200, "errors": 0},
    }
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "RolledBack"
    assert "agreement 0.75 < minAgreement 0.95" in rollout["message"]
    assert h.ready()[0] == "True"
    h.reconcile()
    assert h.deployment("fraud-b") is None
    assert h.deployment("fraud") is not None
    assert h.traffic() == {}
    assert "RolledBack" in h.events()
    # Not tried again for the same spec.
    h.reconcile()
    assert h.deployment("fraud-b") is None
    assert h.status()["rollout"]["phase"] == "RolledBack"


def test_a_pod_that_only_carries_the_labels_cannot_get_a_bad_candidate_promoted():
    h = started()
    h.set_version("2")
    h.reconcile()
    h.run_pods("fraud-b")
    h.reconcile()
    # Someone runs a pod with the stable slot's labels (no owner) whose "sidecar" reports
    # overwhelming agreement; summed in, it would pass the gate (10150/10200 > 0.95).
    h.kube.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "fraud-forged",
                "namespace": "ml",
                "labels": {"modelops.io/model-deployment": "fraud", "modelops.io/slot": "a"},
                "annotations": {"modelops.io/model-version": "1"},
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    h.figures = {
        "fraud-pod-0": {
            "epoch": h.epoch(),
            "requests": 500,
            "errors": 0,
            "mirrored": 200,
            "agreed": 150,
        },
        "fraud-b-pod-0": {"epoch": h.epoch(), "requests": 200, "errors": 0},
        "fraud-forged": {
            "epoch": h.epoch(),
            "requests": 10000,
            "errors": 0,
            "mirrored": 10000,
            "agreed": 10000,
        },
    }
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "RolledBack", rollout
    assert "agreement 0.75 < minAgreement 0.95 over 200 mirrored requests" in rollout["message"]
    ignored = [e for e in h.kube.events if e["reason"] == "EvidenceIgnored"]
    assert len(ignored) == 1 and "fraud-forged" in ignored[0]["message"]
    h.reconcile()
    # Named once, not at every reconcile.
    assert len([e for e in h.kube.events if e["reason"] == "EvidenceIgnored"]) == 1


def in_shadow() -> Gated:
    h = started()
    h.set_version("2")
    h.reconcile()
    h.run_pods("fraud-b")
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "Shadow"
    return h


def test_pods_that_did_not_answer_are_named_in_status_even_when_none_answered():
    """Every sidecar drips (the e2e: e2e/test_gated_evidence.py): no figures at all, and
    status still says which pods were skipped and why."""
    h = in_shadow()
    h.sidecars.unanswered = {
        "fraud-pod-0": "no complete answer within the deadline",
        "fraud-b-pod-0": "no complete answer within the deadline",
    }
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Shadow"
    assert (
        "skipped pods whose sidecars did not answer in time: fraud-b-pod-0 (no complete"
        in (rollout["message"])
    )
    assert "fraud-pod-0 (no complete answer within the deadline)" in rollout["message"]


def test_a_version_tried_again_counts_from_zero_under_a_new_epoch():
    h = in_shadow()
    first = h.epoch()
    assert first.startswith("2.")
    h.figures = {
        "fraud-pod-0": {"epoch": first, "requests": 500, "mirrored": 200, "agreed": 150},
        "fraud-b-pod-0": {"epoch": first, "requests": 200, "errors": 0},
    }
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "RolledBack"
    assert h.status()["rollout"]["rejected"]["epoch"] == first
    assert h.status()["history"][0]["epoch"] == first
    # A looser gate is a reason to judge version 2 again: a new attempt.
    body = h.kube.objects[(h._md_kind(), *KEY)]
    body["spec"]["rollout"]["analysis"]["minAgreement"] = 0.7
    body["metadata"]["generation"] += 1
    h.controller.clock = lambda: NOW + timedelta(minutes=5)
    h.reconcile()
    h.run_pods("fraud-b")
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "Shadow"
    second = h.epoch()
    assert second != first
    # The sidecars still report the first attempt's counts (0.75 would now pass): they
    # are not this attempt's evidence.
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Shadow", rollout
    assert rollout["analysis"]["mirrored"] == 0


def test_counters_going_backwards_within_one_sidecar_are_refused_with_the_reason():
    h = in_shadow()
    epoch = h.epoch()
    h.figures = {
        "fraud-pod-0": {
            "epoch": epoch,
            "sidecar": "s",
            "requests": 90,
            "mirrored": 60,
            "compared": 60,
            "agreed": 60,
        },
        "fraud-b-pod-0": {"epoch": epoch, "sidecar": "c", "requests": 60},
    }
    h.reconcile()
    h.figures["fraud-pod-0"] = h.figures["fraud-pod-0"] | {
        "mirrored": 10,
        "compared": 10,
        "agreed": 10,
    }
    h.reconcile()
    rollout = h.status()["rollout"]
    assert (
        "counters went backwards within sidecar s: mirrored went from 60 to 10"
        in (rollout["analysis"]["refused"])
    )
    assert rollout["analysis"]["mirrored"] == 60  # the last good figures stand
    refusals = [e for e in h.kube.events if e["reason"] == "FiguresRefused"]
    assert refusals and "fraud-pod-0" in refusals[0]["message"]
    # A restarted sidecar (a new id) starting from zero is not refused: it adds up.
    h.figures["fraud-pod-0"] = h.figures["fraud-pod-0"] | {"sidecar": "s2"}
    h.reconcile()
    rollout = h.status()["rollout"]
    assert "refused" not in rollout["analysis"]
    assert rollout["analysis"]["mirrored"] == 70


def ix(self, name: str):
    from modelops.api.kinds import KINDS

    return next(k for k in KINDS if k.kind == name)


Gated.ix = ix  # type: ignore[attr-defined]


CANARY = {
    **{k: v for k, v in SHADOW.items() if k not in ("strategy", "shadow", "analysis")},
    "strategy": "Canary",
    "canary": {"steps": [{"weight": 50, "requests": 100}]},
    "analysis": {"minRequests": 100, "maxErrorRateIncrease": 0.01},
}


def test_canary_splits_by_weight_capped_by_ready_capacity_and_hpa_follows_the_stable_slot():
    body = md_body(
        model={"storageUri": "s3://models/fraud", "version": "1"},
        rollout=CANARY,
        autoscaling={
            "minReplicas": 2,
            "maxReplicas": 4,
            "metric": {"type": "queue-time", "target": 50},
        },
    )
    h = Gated(body)
    h.reconcile()
    h.kube.objects[(DEPLOYMENT, "ml", "fraud")]["spec"]["replicas"] = 2  # the HPA's minimum
    h.run_pods("fraud")
    h.reconcile()
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "Idle"
    h.set_version("2")
    h.reconcile()
    candidate = h.deployment("fraud-b")
    assert candidate["spec"]["replicas"] == 1  # ceil(2 x 50%)
    h.run_pods("fraud-b")
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Canary"
    # One ready candidate pod of two replicas: at most half the requests.
    assert h.traffic()["canaryWeight"] == 50
    assert h.traffic()["mirrorPercent"] == 0
    hpa = h.kube.live(h.ix("HorizontalPodAutoscaler"), "ml", "fraud")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "fraud"

    # A candidate answering with errors is rolled back with the figure in the message.
    h.figures = {
        "fraud-pod-0": {"epoch": h.epoch(), "requests": 300, "errors": 0},
        "fraud-b-pod-0": {"epoch": h.epoch(), "requests": 300, "errors": 30},
    }
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "RolledBack", rollout
    assert "maxErrorRateIncrease 0.01" in rollout["message"]
    assert h.ready()[0] == "True"


def test_an_operator_restarted_mid_analysis_resumes_from_status():
    h = started()
    h.set_version("2")
    h.reconcile()
    h.run_pods("fraud-b")
    h.reconcile()
    before = h.status()["rollout"]
    assert before["phase"] == "Shadow"
    # A new operator process: nothing in memory, only what status says.
    fresh = Gated(md_body())
    fresh.kube = h.kube
    fresh.controller.kube = h.kube
    fresh.controller.actuator.kube = h.kube
    fresh.figures = {
        "fraud-pod-0": {"epoch": h.epoch(), "requests": 10, "mirrored": 5, "agreed": 5}
    }
    fresh.reconcile()
    after = h.status()["rollout"]
    assert after["phase"] == "Shadow"
    assert after["stepStartedAt"] == before["stepStartedAt"]
    assert after["candidateSince"] == before["candidateSince"]
    assert [e for e in h.kube.events if e["reason"] == "CandidateStarted"] != []
    assert len([e for e in h.kube.events if e["reason"] == "StepStarted"]) == 1


def test_a_candidate_without_a_node_waits_with_the_schedulers_reason_then_stalls():
    h = started()
    h.set_version("2")
    h.reconcile()
    h.kube.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "fraud-b-pod-0",
                "namespace": "ml",
                "labels": {"modelops.io/model-deployment": "fraud", "modelops.io/slot": "b"},
                "annotations": {"modelops.io/model-version": "2"},
            },
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
                        "lastTransitionTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                ],
            },
        }
    )
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Waiting"
    assert "Insufficient nvidia.com/gpu" in rollout["message"]
    assert h.ready()[0] == "True"
    h.controller.clock = lambda: NOW + timedelta(seconds=120)
    h.reconcile()
    stalled = next(c for c in h.status()["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "CandidateUnschedulable")
    assert h.ready()[0] == "True"
    assert "CandidateStalled" in h.events()
    # The stable Deployment was never scaled down for the candidate.
    assert h.deployment("fraud")["spec"]["replicas"] == 1


def test_latest_is_resolved_once_by_what_the_pods_loaded_without_restarting_them():
    h = Gated(
        md_body(model={"storageUri": "s3://models/fraud", "version": "latest"}, rollout=SHADOW)
    )
    h.sidecars.pulled = "7"
    h.reconcile()
    h.run_pods("fraud")
    h.reconcile()
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["stable"] == "7" and rollout["phase"] == "Idle"
    template = h.deployment("fraud")["spec"]["template"]["metadata"]["annotations"]
    assert template["modelops.io/model-version"] == "latest", "no restart to pin the number"
    # A retraining publishes 8: it runs as a candidate beside the adopted 7.
    h.kube.put(
        {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "fraud-retrain-1", "namespace": "ml", "uid": "tj-1"},
            "spec": {
                "modelDeploymentRef": {"name": "fraud"},
                "output": {"storageUri": "s3://models/fraud"},
                "dataset": {"uri": "s3://data/fraud/2026-12"},
            },
            "status": {"phase": "Succeeded", "outputVersion": "8", "metrics": {"auc": 0.9}},
        }
    )
    h.controller.indexes = None  # rebuilt by reconcile()
    h.reconcile()
    assert h.deployment("fraud-b") is not None
    rollout = h.status()["rollout"]
    assert (rollout["stable"], rollout["candidate"]) == ("7", "8")
    assert rollout["candidateSource"]["trainingJob"]["name"] == "fraud-retrain-1"


def test_an_abort_makes_the_candidate_unreachable_in_the_same_reconcile():
    """Candidate traffic stops at once, not after the kubelet refreshes traffic.json (up
    to a minute): the candidate Service the stable sidecars split to is deleted in the
    reconcile that decides, and the stable sidecars fall back to their own Triton."""
    body = md_body(model={"storageUri": "s3://models/fraud", "version": "1"}, rollout=CANARY)
    h = Gated(body)
    h.reconcile()
    h.run_pods("fraud")
    h.reconcile()
    h.reconcile()
    h.set_version("2")
    h.reconcile()
    h.run_pods("fraud-b")
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "Canary"
    assert h.kube.live(SERVICE, "ml", "fraud-candidate") is not None
    live = h.kube.objects[(h._md_kind(), *KEY)]
    live["spec"]["rollout"]["control"] = {"abort": "2"}
    live["metadata"]["generation"] += 1
    h.reconcile()  # one reconcile
    assert h.status()["rollout"]["phase"] == "RolledBack"
    assert h.kube.live(SERVICE, "ml", "fraud-candidate") is None
    assert h.deployment("fraud-b") is None
    assert h.traffic() == {}
    # The candidate's pods may still be terminating: the Service keeps to the stable slot.
    assert h.kube.live(SERVICE, "ml", "fraud")["spec"]["selector"]["modelops.io/slot"] == "a"


class Store:
    """What the store watcher's last listing says (tests/unit/test_store_watcher.py lists
    a real store)."""

    def __init__(self) -> None:
        self.newest: str | None = None
        self.error: ListingError | None = None
        self.pending = False  # the first listing has not finished
        self.secrets: list[str | None] = []

    def view(
        self, namespace: str, name: str, uri: str, want: Any = (), secret: str | None = None
    ) -> StoreView | None:
        self.secrets.append(secret)
        if self.pending:
            return None
        versions = [v for v in (self.newest, *want) if v and v.isdigit()]
        digests = {v: f"sha256:{int(v):064x}" for v in versions}
        return StoreView(self.newest, digests, self.error)

    def forget(self, namespace: str, name: str) -> None:
        pass


def test_a_version_published_by_hand_under_latest_goes_through_the_strategy():
    h = Gated(
        md_body(model={"storageUri": "s3://models/fraud", "version": "latest"}, rollout=SHADOW)
    )
    store = Store()
    h.controller.store = store  # type: ignore[assignment]
    store.newest = "1"
    h.reconcile()
    # Pinned to the number the store listing resolved, never `latest`.
    template = h.deployment("fraud")["spec"]["template"]["metadata"]["annotations"]
    assert template["modelops.io/model-version"] == "1"
    h.run_pods("fraud")
    h.reconcile()
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "Idle"
    assert h.status()["history"][0]["checksum"] == f"sha256:{1:064x}"
    # Someone copies version 2 into the store: no TrainingJob, still a candidate.
    store.newest = "2"
    h.reconcile()
    rollout = h.status()["rollout"]
    assert rollout["phase"] == "Waiting" and rollout["candidate"] == "2"
    assert rollout["candidateSource"] == {"kind": "Latest"}
    assert rollout["candidateChecksum"] == f"sha256:{2:064x}"
    h.run_pods("fraud-b")
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "Shadow"
    h.figures = {
        "fraud-pod-0": {"epoch": h.epoch(), "requests": 500, "mirrored": 200, "agreed": 100},
        "fraud-b-pod-0": {"epoch": h.epoch(), "requests": 200},
    }
    h.reconcile()
    assert h.status()["rollout"]["phase"] == "RolledBack"
    assert h.status()["history"][0]["checksum"] == f"sha256:{2:064x}"
    # The stable pods stay pinned to 1: a restarting replica cannot pull the rejected 2.
    h.reconcile()
    template = h.deployment("fraud")["spec"]["template"]["metadata"]["annotations"]
    assert template["modelops.io/model-version"] == "1"
    assert h.deployment("fraud-b") is None


def store_listed(h: Gated) -> dict[str, Any]:
    return next(c for c in h.status()["conditions"] if c["type"] == "StoreListed")


def test_nothing_starts_before_the_first_listing_and_pods_get_the_listed_number():
    body = md_body(model={"storageUri": "s3://models/fraud", "version": "latest"}, rollout=SHADOW)
    body["spec"]["model"]["credentialsSecretRef"] = {"name": "store-keys"}
    h = Gated(body)
    store = Store()
    h.controller.store = store  # type: ignore[assignment]
    store.pending = True
    h.reconcile()
    # No pod could resolve `latest` on its own to a version status does not name.
    assert h.deployment("fraud") is None
    assert store.secrets == ["store-keys"], "listed with the Secret the pods pull with"
    store.pending, store.newest = False, "3"
    h.reconcile()
    template = h.deployment("fraud")["spec"]["template"]["metadata"]["annotations"]
    assert template["modelops.io/model-version"] == "3"
    cond = store_listed(h)
    assert (cond["status"], cond["reason"]) == ("True", "Listed")
    assert "3" in cond["message"]


def test_a_listing_that_fails_keeps_replicas_on_the_version_status_names():
    h = Gated(
        md_body(model={"storageUri": "s3://models/fraud", "version": "latest"}, rollout=SHADOW)
    )
    store = Store()
    h.controller.store = store  # type: ignore[assignment]
    store.newest = "1"
    h.reconcile()
    h.run_pods("fraud")
    h.reconcile()
    h.reconcile()
    assert h.status()["rollout"]["stable"] == "1"
    # The credentials are revoked: no listing, a reason in status, no crash, no restart.
    store.error = ListingError("AccessDenied", "listing s3://models/fraud: access denied")
    h.reconcile()
    cond = store_listed(h)
    assert (cond["status"], cond["reason"]) == ("False", "AccessDenied")
    assert "replicas stay on 1" in cond["message"]
    template = h.deployment("fraud")["spec"]["template"]["metadata"]["annotations"]
    assert template["modelops.io/model-version"] == "1"
    assert h.status()["rollout"]["phase"] == "Idle"
    assert h.status()["servedVersion"] == "1"


def test_without_any_listing_the_pods_resolve_once_and_are_then_pinned():
    """No Secret the operator can read and nothing recorded: the pods resolve `latest`
    once, status adopts what they all loaded, and the template is pinned to it, so a
    restarting replica never resolves `latest` again."""
    h = Gated(
        md_body(model={"storageUri": "s3://models/fraud", "version": "latest"}, rollout=SHADOW)
    )
    store = Store()
    h.controller.store = store  # type: ignore[assignment]
    store.error = ListingError("SecretNotFound", "credentials Secret ml/keys does not exist")
    h.sidecars.pulled = "4"
    h.reconcile()
    assert store_listed(h)["reason"] == "SecretNotFound"
    h.run_pods("fraud")
    h.reconcile()
    h.reconcile()
    assert h.status()["rollout"]["stable"] == "4"
    template = h.deployment("fraud")["spec"]["template"]["metadata"]["annotations"]
    assert template["modelops.io/model-version"] == "4"

"""A child that another writer keeps changing back is not fought on every change.

Seen on the real node: two operator processes (one left running by a killed test
session, with another operator image) reconciled the same ModelDeployment. Each
saw the other's apply as an edit made behind its back and applied its own
rendering again: the Deployment's template alternated several times a second
and every change rolled a new ReplicaSet (two ReplicaSets, the first stuck in
Init, pulling an image the node did not have). The planner now counts the
applies that changed a child back (render/ownership.py) and, past a few within
the window, stops re-applying it and says why.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modelops.render.ownership import (
    CONTESTED_REVERTS,
    CONTESTED_WINDOW,
    Applied,
    fingerprint,
    reverts_after,
)
from modelops.render.plan import Plan
from tests.unit.test_md_planner import SETTINGS, cluster, md_planner, observed, record, settle
from tests.unit.test_render_fixtures import NOW, md_body


def with_generation(child: dict[str, Any], generation: int) -> dict[str, Any]:
    return {**child, "metadata": {**child["metadata"], "generation": generation}}


class Fight:
    """The planner and a stand-in for the API server's answers to our applies: each
    apply that changes the Deployment moves its generation, as the API server does."""

    def __init__(self) -> None:
        self.body = md_body()
        self.children = cluster(self.body)
        self.applied: Applied | None = record(self.children, self.body)
        self.body = settle(self.body, self.children, self.applied)
        self.generation = int(self.children["Deployment"]["metadata"]["generation"])
        self.now = NOW

    def outside_edit(self) -> None:
        """The other writer applies its own template: the generation moves."""
        self.generation += 1
        self.children["Deployment"] = with_generation(self.children["Deployment"], self.generation)

    def reconcile(self, *, our_apply_changes: bool = True, seen: int | None = None) -> Plan:
        """One reconcile; ``seen``: the generation the watch shows (default the live one)."""
        shown = dict(self.children)
        if seen is not None:
            shown["Deployment"] = with_generation(self.children["Deployment"], seen)
        obs = observed(self.body, shown)
        obs = md_planner.Observed(**{**obs.__dict__, "now": self.now})
        plan = md_planner.plan(obs, md_planner.parse(self.body), self.applied, SETTINGS)
        fingerprints = {}
        for action in plan.applies:
            if action.key == "Deployment":
                if our_apply_changes:
                    self.generation += 1
                live = with_generation(self.children["Deployment"], self.generation)
                self.children["Deployment"] = live
                fingerprints["Deployment"] = fingerprint(live)
        assert self.applied is not None
        self.applied = Applied(
            self.applied.digest,
            {**self.applied.fingerprints, **fingerprints},
            reverts_after(self.applied, plan.applies, fingerprints, self.now),
        )
        return plan


def deployment_applies(plan: Plan) -> int:
    return sum(1 for a in plan.applies if a.key == "Deployment")


def test_one_outside_edit_is_healed_at_once_without_a_problem():
    fight = Fight()
    fight.outside_edit()
    plan = fight.reconcile()
    assert deployment_applies(plan) == 1 and plan.problems == []
    # Healed: the next look is steady (no apply, no problem).
    fight.now += timedelta(seconds=1)
    plan = fight.reconcile()
    assert deployment_applies(plan) == 0 and plan.problems == []


def test_a_second_writer_is_fought_a_few_times_then_reported_not_applied():
    fight = Fight()
    for _ in range(CONTESTED_REVERTS):
        fight.outside_edit()
        assert deployment_applies(fight.reconcile()) == 1
        fight.now += timedelta(seconds=1)
    fight.outside_edit()
    plan = fight.reconcile()
    assert deployment_applies(plan) == 0
    (problem,) = plan.problems
    assert problem.reason == "ConflictingWriter"
    assert problem.message.startswith(
        f"Deployment ml/fraud was changed back {CONTESTED_REVERTS} times within 2 minutes"
    ), problem.message
    stalled = next(c for c in plan.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ConflictingWriter")
    # Further changes by the other writer within the window: still no apply.
    for _ in range(5):
        fight.now += timedelta(seconds=2)
        fight.outside_edit()
        assert deployment_applies(fight.reconcile()) == 0


def test_once_the_window_has_passed_the_child_is_applied_again():
    fight = Fight()
    for _ in range(CONTESTED_REVERTS):
        fight.outside_edit()
        fight.reconcile()
        fight.now += timedelta(seconds=1)
    fight.outside_edit()
    assert deployment_applies(fight.reconcile()) == 0
    fight.now += CONTESTED_WINDOW
    plan = fight.reconcile()
    assert deployment_applies(plan) == 1 and plan.problems == []


def test_a_watch_behind_our_own_apply_is_not_a_second_writer():
    # Our apply left generation g+1; the watch still shows g for a few reconciles: each
    # applies again (a no-op for the API server), and none of them counts as a revert.
    fight = Fight()
    fight.outside_edit()
    fight.reconcile()
    ours = fight.generation
    for _ in range(CONTESTED_REVERTS + 2):
        fight.now += timedelta(seconds=1)
        plan = fight.reconcile(our_apply_changes=False, seen=ours - 1)
        assert deployment_applies(plan) == 1 and plan.problems == []


def test_edits_our_apply_does_not_undo_are_not_counted():
    # e.g. an autoscaler changing spec.replicas, a field modelops does not own: the
    # generation moves, our apply leaves the object as it is.
    fight = Fight()
    for _ in range(CONTESTED_REVERTS + 2):
        fight.outside_edit()
        plan = fight.reconcile(our_apply_changes=False)
        assert deployment_applies(plan) == 1 and plan.problems == []
        fight.now += timedelta(seconds=1)

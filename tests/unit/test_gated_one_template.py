"""One candidate, one pod template: what changes between reconciles of a gated rollout
on real pods never changes the template a slot's Deployment is rendered with.

On the real node a candidate's reconciles differ in much more than on simulated pods:
its pods sit in Init while the model downloads, the store listing fails until the
credentials Secret is read and then succeeds, the sidecars' loaded versions and
figures appear, the watch may still show the status from before the candidate
started. A template that followed any of these would make the Deployment controller
roll a second ReplicaSet for the same candidate. The two templates seen on the
merged tree came from a second operator process with another operator image
(tests/unit/test_render_contested.py); the last test shows that is the only kind of
input that changes the template.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

from modelops.render import md_planner
from tests.unit.test_gated_controller import Gated, Store, started
from tests.unit.test_md_reconcile import NOW


def template(h: Gated, name: str) -> str:
    dep = h.deployment(name)
    assert dep is not None, name
    return json.dumps(dep["spec"]["template"], sort_keys=True)


def test_the_candidate_keeps_one_template_through_every_input_that_changes():
    h = started()
    stable = template(h, "fraud")
    before_candidate = copy.deepcopy(h.status())
    h.set_version("2")
    h.reconcile()
    first = template(h, "fraud-b")
    generation = h.deployment("fraud-b")["metadata"]["generation"]
    assert json.loads(first)["metadata"]["annotations"]["modelops.io/model-version"] == "2"

    def same() -> None:
        assert template(h, "fraud-b") == first
        assert template(h, "fraud") == stable
        assert h.deployment("fraud-b")["metadata"]["generation"] == generation

    # The candidate's pods still in Init (no pods ready): a reconcile a little later.
    h.controller.clock = lambda: NOW + timedelta(seconds=20)
    h.reconcile()
    same()
    # The store listing succeeds now (the credentials were read): digests appear.
    store = Store()
    h.controller.store = store  # type: ignore[assignment]
    h.reconcile()
    same()
    # The watch still shows the status from before the candidate started.
    h.kube.objects[(h._md_kind(), "ml", "fraud")]["status"] = before_candidate
    h.reconcile()
    same()
    # The candidate's pods are ready; the sidecars report loaded versions and figures.
    h.run_pods("fraud-b")
    generation = h.deployment("fraud-b")["metadata"]["generation"]
    h.reconcile()
    same()
    h.figures = {
        "fraud-pod-0": {
            "epoch": h.epoch(),
            "requests": 50,
            "errors": 0,
            "mirrored": 10,
            "agreed": 10,
        },
        "fraud-b-pod-0": {"epoch": h.epoch(), "requests": 10, "errors": 0},
    }
    h.controller.clock = lambda: NOW + timedelta(minutes=1)
    h.reconcile()
    same()
    assert h.status()["rollout"]["candidate"] == "2"


def test_only_the_operators_settings_change_a_rendered_template():
    """The inputs of the two templates seen on the real node: the same ModelDeployment
    and layout, rendered by two operator processes whose operator images differed."""
    h = started()
    h.set_version("2")
    h.reconcile()
    body = h.kube.objects[(h._md_kind(), "ml", "fraud")]
    md = md_planner.parse(body)
    assert not isinstance(md, str)

    def candidate_template(settings: md_planner.Settings) -> dict[str, Any]:
        obs = h.controller.observe(body, md)
        plan = md_planner.plan(obs, md, None, settings)
        (dep,) = [a.obj for a in plan.applies if a.name == "fraud-b"]
        return dep["spec"]["template"]

    ours = h.controller.settings
    assert candidate_template(ours) == candidate_template(ours)
    other = md_planner.Settings(operator_image="ghcr.io/modelops/modelops-operator:0.2.0")
    theirs = candidate_template(other)
    assert theirs != candidate_template(ours)
    images = {c["image"] for c in theirs["spec"]["initContainers"]}
    assert images == {"ghcr.io/modelops/modelops-operator:0.2.0"}

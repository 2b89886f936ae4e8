"""decide_rollout: the switch to replace-in-place that unblocks GPU rollouts (KServe #4618)."""

from __future__ import annotations

from typing import Any

from modelops.render.surge import decide_rollout
from tests.unit.test_render_fixtures import GPU_MESSAGE, NOW, deployment, md_body, pod

OLD = pod("fraud-7d9f8c6b5-x2x4q", version="3")
ROLLING = deployment(replicas=2, updated=1, ready=1, version="4")


def surge(waited: float) -> dict[str, Any]:
    return pod(
        "fraud-5c4b7d9e8-q7w2z",
        version="4",
        template_hash="5c4b7d9e8",
        unschedulable=GPU_MESSAGE,
        unschedulable_for=waited,
    )


def decide(body=None, *, dep=ROLLING, pods=None, previous=None) -> dict[str, Any]:
    return decide_rollout(
        body or md_body(),
        deployment=dep,
        pods=[OLD, surge(120)] if pods is None else pods,
        now=NOW,
        previous=previous,
    )


def test_switches_when_surge_pod_waits_longer_than_the_timeout():
    result = decide()
    assert result["replaceInPlace"] is True
    assert "surge pod fraud-5c4b7d9e8-q7w2z" in result["reason"]
    assert "more than 60s" in result["reason"]
    assert "Insufficient nvidia.com/gpu" in result["reason"]


def test_waits_within_the_timeout():
    assert decide(pods=[OLD, surge(30)]) == {"replaceInPlace": False}


def test_zero_timeout_switches_at_once():
    body = md_body(rollout={"maxSurge": 1, "maxUnavailable": 0, "surgeTimeoutSeconds": 0})
    assert decide(body, pods=[OLD, surge(0)])["replaceInPlace"] is True


def test_no_switch_without_old_pods_holding_gpus():
    # First deployment: nothing to replace, so waiting for a GPU is all one can do.
    first = deployment(replicas=1, updated=1, ready=0, available=0)
    assert decide(dep=first, pods=[surge(600)]) == {"replaceInPlace": False}


def test_no_switch_for_cpu_only_models():
    body = md_body(resources={"gpu": {"count": 0}, "cpu": "2", "memory": "8Gi"})
    assert decide(body) == {"replaceInPlace": False}


def test_no_switch_when_the_spec_does_not_surge():
    body = md_body(rollout={"maxSurge": 0, "maxUnavailable": 1, "surgeTimeoutSeconds": 60})
    assert decide(body) == {"replaceInPlace": False}


def test_percentage_surge_rounds_up_like_the_deployment_controller():
    body = md_body(rollout={"maxSurge": "25%", "maxUnavailable": 0, "surgeTimeoutSeconds": 60})
    assert decide(body)["replaceInPlace"] is True


def test_no_switch_without_deployment_or_when_complete():
    assert decide(dep=None) == {"replaceInPlace": False}
    assert decide(dep=deployment(), pods=[OLD]) == {"replaceInPlace": False}


def test_decision_sticks_until_the_rollout_completes():
    previous = {"replaceInPlace": True, "reason": "surge pod x stayed unschedulable"}
    # The new pod got the freed GPU and is loading: still mid-rollout.
    loading = pod("fraud-5c4b7d9e8-q7w2z", version="4", template_hash="5c4b7d9e8", loading=True)
    mid = deployment(replicas=1, updated=1, ready=0, available=0, version="4")
    assert decide(dep=mid, pods=[loading], previous=previous) == previous
    done = deployment(version="4")
    assert decide(dep=done, pods=[pod(version="4")], previous=previous) == {"replaceInPlace": False}


def test_terminating_pods_do_not_count_as_old_pods():
    dying = pod("fraud-7d9f8c6b5-x2x4q", terminating=True)
    assert decide(pods=[dying, surge(120)]) == {"replaceInPlace": False}

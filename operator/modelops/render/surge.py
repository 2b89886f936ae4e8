"""The replace-in-place decision that keeps GPU rollouts from deadlocking.

With maxSurge > 0 a rolling update first creates an extra pod. On a cluster
whose GPUs are all taken by the old pods that pod never schedules, and the
rollout waits forever (KServe #4618). When a surge pod has been
unschedulable for longer than spec.rollout.surgeTimeoutSeconds while old pods
still hold GPUs, this rollout switches to maxSurge 0 / maxUnavailable 1: an
old pod goes first and frees its GPU. The decision lives in status.rollout and
sticks until the rollout completes, so it does not flap as pods come and go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .deployment_view import DeploymentView
from .meta import as_md
from .pdb import baseline_replicas
from .pods import live, pod_name, resolve_int_or_percent, template_hash, unschedulable

NOT_NEEDED: dict[str, Any] = {"replaceInPlace": False}


def decide_rollout(
    md: Any,
    *,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """status.rollout for this reconcile: {"replaceInPlace": bool, "reason"?: str}.

    previous: the status.rollout recorded by the last reconcile (or None).
    The controller renders the Deployment with
    replace_in_place=result["replaceInPlace"].
    """
    md = as_md(md)
    view = DeploymentView.of(deployment, baseline_replicas(md))
    if md.spec.resources.gpu.count == 0 or not view.exists or view.complete:
        return dict(NOT_NEEDED)
    if previous and previous.get("replaceInPlace"):
        # Sticky until the rollout completes: going back to surging half-way
        # would recreate the very pod that could not be scheduled.
        return {k: v for k, v in previous.items() if k in ("replaceInPlace", "reason")}
    if not view.rolling:
        return dict(NOT_NEEDED)
    if resolve_int_or_percent(md.spec.rollout.max_surge, view.desired, round_up=True) == 0:
        return dict(NOT_NEEDED)

    timeout = md.spec.rollout.surge_timeout_seconds
    running = live(pods)
    for pod in running:
        stuck = unschedulable(pod)
        if stuck is None:
            continue
        message, since = stuck
        waited = (now - since).total_seconds() if since else float("inf")
        # Only a surge pod is helped by removing an old pod first: some live
        # pod must belong to another ReplicaSet and hold GPUs.
        others = [p for p in running if template_hash(p) != template_hash(pod)]
        if waited >= timeout and others:
            return {
                "replaceInPlace": True,
                "reason": (
                    f"surge pod {pod_name(pod)} stayed unschedulable for more than {timeout}s "
                    f"({message}); replacing pods in place (maxSurge 0, maxUnavailable 1)"
                ),
            }
    return dict(NOT_NEEDED)

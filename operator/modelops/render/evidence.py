"""Which pods may give evidence: the owner check behind every sidecar read. Pure.

Gated rollouts, drift and `status.loadedVersions` act on what the serving
pods' sidecars report. Pods are *found* by label (the server-side selector of
the watch), but a label is something anyone who may create a pod in the
namespace can copy: a pod carrying a ModelDeployment's labels could report
figures that promote a bad candidate or roll a good one back, or fake drift
that starts retrainings. So a pod's answers count only when its controller
chain, by uid, leads to one of this ModelDeployment's slot Deployments:

    Pod --controller ref--> ReplicaSet --controller ref--> slot Deployment (render/slots.py)

and the ReplicaSet is that Deployment's *current* one (its
`deployment.kubernetes.io/revision` equals the Deployment's, and the pod's
`pod-template-hash` equals the ReplicaSet's), and the pod is ready and not
being deleted. Pods of an older revision (mid rolling update) serve an old
template: they are left out too. A pod whose controller is not a listed
ReplicaSet is foreign at first sight unless its controller is named as our
Deployment controller names its ReplicaSets (``<slot Deployment>-<the pod's
pod-template-hash>``): only such a pod is deferred, for a grace, until the
watch delivers its ReplicaSet (whose owner uid then decides).

The slot a pod's figures count for comes from the owner chain, never from
its `modelops.io/slot` label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .pods import is_ready, parse_time, pod_name, template_hash
from .projections import REVISION, controller_uid
from .slots import SLOTS, deployment_key, deployment_name


@dataclass(frozen=True)
class Sources:
    """The outcome of the owner check for one ModelDeployment's pods.

    trusted: pod name -> the slot whose current ReplicaSet owns it (ready pods
    only); ignored: pod name -> why it is not asked (a foreign pod, named in an
    event and counted); skipped: pods of this ModelDeployment that are simply
    not serving evidence now (not ready, being deleted, an older revision, a
    ReplicaSet not seen yet) — normal, neither counted nor reported.
    """

    trusted: Mapping[str, str] = field(default_factory=dict)
    ignored: Mapping[str, str] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)
    # Seconds until a pod skipped for want of its ReplicaSet is judged again (its grace
    # ends): nothing else may change by then, and a foreign pod must still be named.
    recheck_after_s: float | None = None

    def pods(
        self, pods: Iterable[Mapping[str, Any]], slot: str | None = None
    ) -> list[Mapping[str, Any]]:
        """The trusted pods among ``pods`` (of one slot when given), in their order."""
        return [
            p
            for p in pods
            if (s := self.trusted.get(pod_name(p))) is not None and (slot is None or s == slot)
        ]


def _names_a_slot(rs: Mapping[str, Any], md_name: str) -> bool:
    refs = (rs.get("metadata") or {}).get("ownerReferences") or []
    names = {deployment_name(md_name, slot) for slot in SLOTS}
    return any(r.get("kind") == "Deployment" and r.get("name") in names for r in refs)


def _could_be_ours(md_name: str, pod: Mapping[str, Any], deployments: set[str]) -> str | None:
    """Why a pod whose controller is not a listed ReplicaSet is foreign at first sight,
    or None when it may be a new pod of one of our ReplicaSets that the watch has not
    delivered yet.

    Ours are created by the Deployment controller: the pod's controller is a
    ReplicaSet named "<slot Deployment>-<the pod's pod-template-hash>". Anything else
    (another kind, another name, no template hash) cannot become ours when its
    ReplicaSet is listed, so it is named at once rather than after the grace: an
    attacker's own ReplicaSet, which need not carry our labels and so is never listed,
    is caught from the first look. ReplicaSet names are unique in a namespace, so one
    named like ours that the watch later lists is judged by its owner uid.
    """
    ref = next(
        (
            r
            for r in (pod.get("metadata") or {}).get("ownerReferences") or []
            if r.get("controller")
        ),
        {},
    )
    kind, rs_name = ref.get("kind"), ref.get("name")
    if kind is None and rs_name is None:
        # A projection without kind and name (an older operator's cache): judged by the
        # grace as before.
        return None
    if kind != "ReplicaSet":
        return f"its controller {kind} {rs_name} is not a ReplicaSet of {md_name}"
    pod_hash = template_hash(pod)
    if pod_hash and any(rs_name == f"{d}-{pod_hash}" for d in deployments):
        return None
    names = ", ".join(f"{d}-{pod_hash}" for d in sorted(deployments))
    return (
        f"its controller {kind} {rs_name} is not a ReplicaSet of {md_name} (the ones its "
        f"pod-template-hash {pod_hash!r} allows: {names})"
    )


def _revision(obj: Mapping[str, Any] | None) -> str | None:
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(REVISION)


def _uid(obj: Mapping[str, Any] | None) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("uid")


def evidence_sources(
    md_name: str,
    pods: Iterable[Mapping[str, Any]],
    replica_sets: Iterable[Mapping[str, Any]],
    children: Mapping[str, Mapping[str, Any] | None],
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(seconds=60),
) -> Sources:
    """Sort the pods found by label into trusted, ignored (foreign) and skipped.

    replica_sets: the ReplicaSets found by the same label (projections with uid,
    controller ref, pod-template-hash label and revision annotation); children: the
    planner's child map (slot Deployments under render.slots.deployment_key). A pod
    whose controller is not a known ReplicaSet is ignored as foreign at once unless
    that controller is named like one of our slot Deployments' ReplicaSets for the
    pod's template; such a pod is skipped for ``grace`` after its creation (the
    ReplicaSet's watch event may come a moment after the pod's), and ignored as
    foreign after that.
    """
    slot_by_deployment: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for slot in SLOTS:
        deployment = children.get(deployment_key(md_name, slot))
        uid = _uid(deployment)
        if deployment is not None and uid:
            slot_by_deployment[uid] = (slot, deployment)
    rs_by_uid = {uid: rs for rs in replica_sets if (uid := _uid(rs))}
    # The Deployment controller names a ReplicaSet "<deployment>-<pod-template-hash>":
    # the prefixes a new pod's not-yet-listed ReplicaSet may have. Every slot, not only
    # the Deployments listed: a new candidate's pod may come through the watch before
    # its Deployment does.
    owned_rs_names = {deployment_name(md_name, slot) for slot in SLOTS}

    trusted: dict[str, str] = {}
    ignored: dict[str, str] = {}
    skipped: dict[str, str] = {}
    recheck: float | None = None
    for pod in pods:
        name = pod_name(pod)
        owner = controller_uid(pod)
        if not owner:
            ignored[name] = "no controller (not made by a ReplicaSet)"
            continue
        rs = rs_by_uid.get(owner)
        if rs is None:
            # A ReplicaSet the watch has not delivered yet (a new pod, for a moment), or a
            # controller that is not one of this ModelDeployment's ReplicaSets at all.
            created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
            could_be = _could_be_ours(md_name, pod, owned_rs_names)
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                # Its ReplicaSet went first: a retired slot's pod draining (on a real node
                # that takes the grace period). Asked nothing either way; not a stranger.
                skipped[name] = "being deleted, its ReplicaSet gone"
            elif could_be is not None:
                ignored[name] = could_be
            elif now is not None and created is not None and now - created < grace:
                # Named like our slot Deployment's ReplicaSet for this pod's template:
                # deferred until the ReplicaSet is listed (its owner uid then decides).
                skipped[name] = "its ReplicaSet is not known yet"
                left = (grace - (now - created)).total_seconds() + 1.0
                recheck = left if recheck is None else min(recheck, left)
            else:
                ignored[name] = f"its controller {owner} is not a ReplicaSet of {md_name}"
            continue
        rs_owner = controller_uid(rs)
        found = slot_by_deployment.get(rs_owner or "")
        if found is None and _names_a_slot(rs, md_name):
            # A slot Deployment deleted a moment ago (a rolled-back candidate, a promoted
            # stable's old slot): its pods are going, neither evidence nor strangers.
            skipped[name] = "its Deployment is being deleted"
            continue
        if found is None:
            ignored[name] = (
                f"ReplicaSet {rs['metadata'].get('name')} is not controlled by a Deployment "
                f"of ModelDeployment {md_name}"
            )
            continue
        slot, deployment = found
        rs_hash = ((rs.get("metadata") or {}).get("labels") or {}).get("pod-template-hash")
        if rs_hash is None or template_hash(pod) != rs_hash:
            ignored[name] = (
                f"pod-template-hash {template_hash(pod)!r} is not its ReplicaSet's {rs_hash!r}"
            )
            continue
        want = _revision(deployment)
        if want is not None and _revision(rs) != want:
            skipped[name] = f"revision {_revision(rs)} is not the current revision {want}"
            continue
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            skipped[name] = "being deleted or finished"
            continue
        if not is_ready(pod):
            skipped[name] = "not ready"
            continue
        trusted[name] = slot
    return Sources(trusted, ignored, skipped, recheck)


__all__ = ["REVISION", "Sources", "evidence_sources"]

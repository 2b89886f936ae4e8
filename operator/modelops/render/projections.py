"""What the controller keeps of each watched object: small projections, not bodies.

kopf indexes hold whatever their handlers return, for every object of every
watched kind, for as long as the operator runs. A Triton pod's full body is
mostly its spec (containers, probes, env, volumes) and managedFields, none of
which the planner reads; a Deployment's body carries its whole pod template.
Each function here keeps exactly the fields the pure layer reads, in the
same nested shape as the API object, so the status and rollout functions
work on a projection exactly as they would on the full object.

Pure: dicts in, dicts out. The kopf index handlers call these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelops.api import constants as c

# The field manager whose ownership of Deployment.spec.replicas matters when
# autoscaling is switched on (see the replicas hand-over in the planner).
FIELD_MANAGER = "modelops"
# The Deployment controller's revision number, on a Deployment and its ReplicaSets.
REVISION = "deployment.kubernetes.io/revision"
OWNS_REPLICAS = "ownsReplicas"


def _pick(obj: Mapping[str, Any] | None, keys: Iterable[str]) -> dict[str, Any]:
    if not obj:
        return {}
    return {k: obj[k] for k in keys if obj.get(k) is not None}


def _meta(body: Mapping[str, Any], *extra: str) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    out = _pick(meta, ("name", "namespace", "uid", "generation", "resourceVersion", *extra))
    owner = controller_uid(body)
    if owner:
        # Only the controller reference's uid is read (ownership checks).
        out["ownerReferences"] = [{"uid": owner, "controller": True}]
    return out


def controller_uid(body: Mapping[str, Any]) -> str | None:
    """uid of the object's controller (the ownerReference with controller: true)."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _conditions(status: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    keys = ("type", "status", "reason", "message", "lastTransitionTime")
    return [_pick(cond, keys) for cond in (status or {}).get("conditions") or []]


def project_custom_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ModelDeployment or TrainingJob: everything but managedFields and the
    client-side-apply annotation (both can be larger than the spec itself)."""
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        meta["annotations"] = {
            k: v
            for k, v in annotations.items()
            if k != "kubectl.kubernetes.io/last-applied-configuration"
        }
    out = {k: v for k, v in body.items() if k != "metadata"}
    out["metadata"] = meta
    return out


def project_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    version = (template_meta.get("annotations") or {}).get(c.ANNOTATION_MODEL_VERSION)
    meta = _meta(body)
    revision = ((body.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    if revision is not None:
        # Which ReplicaSet is current (render/evidence.py).
        meta["annotations"] = {REVISION: revision}
    out: dict[str, Any] = {
        "apiVersion": body.get("apiVersion", "apps/v1"),
        "kind": "Deployment",
        "metadata": meta,
        "spec": _pick(spec, ("replicas",)),
        "status": {
            **_pick(
                status,
                (
                    "observedGeneration",
                    "replicas",
                    "readyReplicas",
                    "availableReplicas",
                    "updatedReplicas",
                ),
            ),
            "conditions": _conditions(status),
        },
    }
    if version is not None:
        out["spec"]["template"] = {
            "metadata": {"annotations": {c.ANNOTATION_MODEL_VERSION: version}}
        }
    if _manages_replicas(body):
        out[OWNS_REPLICAS] = True
    return out


def _manages_replicas(body: Mapping[str, Any]) -> bool:
    return any(
        entry.get("manager") == FIELD_MANAGER
        and "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
        for entry in (body.get("metadata") or {}).get("managedFields") or []
    )


def _container_status(cs: Mapping[str, Any]) -> dict[str, Any]:
    out = _pick(cs, ("name", "ready", "restartCount", "image", "started"))
    for key in ("state", "lastState"):
        state = cs.get(key) or {}
        kept = {}
        for phase in ("waiting", "terminated", "running"):
            if phase in state:
                kept[phase] = _pick(
                    state[phase] or {}, ("reason", "message", "exitCode", "startedAt", "finishedAt")
                )
        if kept:
            out[key] = kept
    return out


def project_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    kept_labels = {
        k: labels[k]
        for k in (
            c.LABEL_MODEL_DEPLOYMENT,
            c.LABEL_SLOT,
            c.LABEL_TRAINING_JOB,
            c.LABEL_JOB_NAME,
            "pod-template-hash",
        )
        if k in labels
    }
    kept_annotations = {
        k: annotations[k]
        for k in (c.ANNOTATION_MODEL_VERSION, c.ANNOTATION_ATTEMPT, c.ANNOTATION_COMPLETION_INDEX)
        if k in annotations
    }
    out_meta = _pick(meta, ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"))
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            # The owner check of evidence (render/evidence.py) follows the controller
            # chain; kind and name judge a controller whose ReplicaSet is not listed.
            out_meta["ownerReferences"] = [_pick(ref, ("uid", "controller", "kind", "name"))]
            break
    if kept_labels:
        out_meta["labels"] = kept_labels
    if kept_annotations:
        out_meta["annotations"] = kept_annotations
    out_status: dict[str, Any] = _pick(status, ("phase", "podIP", "reason", "message", "startTime"))
    out_status["conditions"] = _conditions(status)
    if status.get("resourceClaimStatuses"):
        # Which ResourceClaim was made for each of the pod's claims (DRA).
        out_status["resourceClaimStatuses"] = [
            _pick(entry, ("name", "resourceClaimName")) for entry in status["resourceClaimStatuses"]
        ]
    for key in ("initContainerStatuses", "containerStatuses"):
        if status.get(key):
            out_status[key] = [_container_status(cs) for cs in status[key]]
    out = {"metadata": out_meta, "status": out_status}
    node = (body.get("spec") or {}).get("nodeName")
    if node:
        out["spec"] = {"nodeName": node}
    return out


def project_replica_set(body: Mapping[str, Any]) -> dict[str, Any]:
    """A serving Deployment's ReplicaSet: identity, controller, template hash and
    revision: the middle link of the evidence owner chain (render/evidence.py)."""
    meta = body.get("metadata") or {}
    out = _meta(body)
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            # Kind and name too: a ReplicaSet of a slot Deployment deleted a moment ago
            # (garbage collection pending) is ours, not a stranger's.
            out["ownerReferences"] = [_pick(ref, ("uid", "controller", "kind", "name"))]
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if template_hash is not None:
        out["labels"] = {"pod-template-hash": template_hash}
    revision = (meta.get("annotations") or {}).get(REVISION)
    if revision is not None:
        out["annotations"] = {REVISION: revision}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": out}


def project_autoscaler(body: Mapping[str, Any]) -> dict[str, Any]:
    """An HPA or a KEDA ScaledObject: identity, conditions and replica counts."""
    status = body.get("status") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _meta(body),
        "status": {
            **_pick(status, ("currentReplicas", "desiredReplicas", "observedGeneration")),
            "conditions": _conditions(status),
        },
    }


def project_owned(body: Mapping[str, Any]) -> dict[str, Any]:
    """A child whose content the planner never reads (Service, PDB): identity only."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _meta(body),
    }


def project_claim_template(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ResourceClaimTemplate: identity and the digest of the claim spec it holds
    (its spec is immutable; the planner compares digests, render/dra.py)."""
    out = project_owned(body)
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    digest = annotations.get(c.ANNOTATION_CLAIM_DIGEST)
    if digest:
        out["metadata"]["annotations"] = {c.ANNOTATION_CLAIM_DIGEST: digest}
    return out


def project_claim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ResourceClaim made for a pod: its name and the devices allocated to it."""
    meta = body.get("metadata") or {}
    allocation = (body.get("status") or {}).get("allocation") or {}
    results = (allocation.get("devices") or {}).get("results") or []
    out: dict[str, Any] = {"metadata": _pick(meta, ("name", "namespace", "uid"))}
    if results:
        kept = [_pick(r, ("request", "driver", "pool", "device")) for r in results]
        out["status"] = {"allocation": {"devices": {"results": kept}}}
    return out


def project_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """A TrainingJob's Job: identity, suspension and the status the planner reads."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    meta = _meta(body, "creationTimestamp")
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if c.ANNOTATION_ATTEMPT in annotations:
        meta["annotations"] = {c.ANNOTATION_ATTEMPT: annotations[c.ANNOTATION_ATTEMPT]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": _pick(spec, ("suspend", "parallelism", "completions")),
        "status": {
            **_pick(
                status,
                ("active", "succeeded", "failed", "ready", "startTime", "completionTime"),
            ),
            "conditions": _conditions(status),
        },
    }

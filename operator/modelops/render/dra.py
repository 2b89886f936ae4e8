"""GPUs through Dynamic Resource Allocation (resource.k8s.io/v1). Pure.

With ``spec.resources.gpu.allocation: DRA`` a ModelDeployment owns a
ResourceClaimTemplate named after it. Each pod references the template; the
resource-claim controller of kube-controller-manager makes one ResourceClaim
per pod from it, and the scheduler allocates the first alternative for which
it finds devices (``firstAvailable``). The devices are NVIDIA's DRA driver's
(device class ``gpu.nvidia.com``), selected by the attributes that driver
publishes in its ResourceSlices: ``productName`` (a string attribute) and the
``memory`` capacity, both under the driver's domain ``gpu.nvidia.com``.

A template's spec is immutable. The rendered spec's digest is therefore
carried as an annotation; when the spec changes, the planner deletes the live
template and applies nothing else, and the next reconcile creates the new one
before the Deployment, whose pod template carries the same digest and so rolls
the pods onto claims made from the new spec (see ``template_actions``).

Claims made from a template carry the labels of the template's
``spec.metadata``: those are the ModelDeployment's labels, so the operator
watches its pods' claims with the same server-side label selector as the pods.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from modelops.api import constants as c
from modelops.api.kinds import RESOURCE_CLAIM_TEMPLATE
from modelops.api.modeldeployment import (
    DEFAULT_DEVICE_CLASS,
    GpuAlternative,
    GpuResources,
    ModelDeployment,
)

from .meta import child_metadata, labels
from .plan import Apply, Delete
from .projections import controller_uid

API_VERSION = RESOURCE_CLAIM_TEMPLATE.api_version
KIND = RESOURCE_CLAIM_TEMPLATE.kind
# The driver's name is also the domain of the attributes it publishes.
NVIDIA_DRIVER = "gpu.nvidia.com"
# One request per claim; its subrequests are the alternatives.
REQUEST = "gpu"
# The pod-level name of the claim (spec.resourceClaims[].name) and what the
# GPU container lists in resources.claims.
POD_CLAIM = "gpu"
ANNOTATION_CLAIM_DIGEST = c.ANNOTATION_CLAIM_DIGEST


# -- the claim ------------------------------------------------------------------------


def _selectors(alternative: GpuAlternative) -> list[dict[str, Any]]:
    """CEL device selectors for one alternative (values are pattern-checked by the CRD)."""
    attrs = f"device.attributes['{NVIDIA_DRIVER}']"
    out = []
    if alternative.product:
        out.append(f"{attrs}.productName == '{alternative.product}'")
    if alternative.min_memory is not None:
        out.append(
            f"device.capacity['{NVIDIA_DRIVER}'].memory.compareTo("
            f"quantity('{alternative.min_memory}')) >= 0"
        )
    return [{"cel": {"expression": expression}} for expression in out]


def _device_request(gpu: GpuResources, alternative: GpuAlternative) -> dict[str, Any]:
    out: dict[str, Any] = {
        "deviceClassName": gpu.device_class_name or DEFAULT_DEVICE_CLASS,
        "allocationMode": "ExactCount",
        "count": alternative.count or gpu.count,
    }
    selectors = _selectors(alternative)
    if selectors:
        out["selectors"] = selectors
    return out


def claim_spec(gpu: GpuResources) -> dict[str, Any]:
    """ResourceClaim spec: one request whose "firstAvailable" subrequests are the
    alternatives, in order. Even a single alternative is a subrequest: the
    allocation then names it ("gpu/h100"), so status can tell which spec a claim
    was made from while a rollout replaces claims of an earlier one."""
    alternatives = gpu.alternatives or []
    request = {
        "name": REQUEST,
        "firstAvailable": [{"name": alt.name, **_device_request(gpu, alt)} for alt in alternatives],
    }
    return {"devices": {"requests": [request]}}


def claim_digest(spec: Mapping[str, Any]) -> str:
    """A short digest of a claim spec: changes exactly when the spec does."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def uses_dra(gpu: GpuResources) -> bool:
    return gpu.dra and bool(gpu.alternatives)


def claim_template(
    gpu: GpuResources, metadata: dict[str, Any], claim_labels: Mapping[str, str]
) -> dict[str, Any] | None:
    """A ResourceClaimTemplate for ``gpu`` (None for the device plugin).

    metadata: the child's own (name, namespace, labels, owner); claim_labels: the
    labels every claim made from it carries, the same as its pods' so that the
    label selector that finds the pods finds their claims too."""
    if not uses_dra(gpu):
        return None
    spec = claim_spec(gpu)
    metadata = {**metadata, "annotations": {ANNOTATION_CLAIM_DIGEST: claim_digest(spec)}}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"metadata": {"labels": dict(claim_labels)}, "spec": spec},
    }


def render_claim_template(md: ModelDeployment) -> dict[str, Any] | None:
    """The ModelDeployment's ResourceClaimTemplate `<name>`, or None without DRA."""
    return claim_template(md.spec.resources.gpu, child_metadata(md), labels(md))


def replaced_template(rendered: Mapping[str, Any] | None, live: Mapping[str, Any] | None) -> bool:
    """Whether the live template has another spec than the rendered one (it must be
    deleted and created again: the API server refuses to change a template's spec)."""
    if rendered is None or live is None:
        return False
    want = rendered["metadata"]["annotations"][ANNOTATION_CLAIM_DIGEST]
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CLAIM_DIGEST)
    return want != have


def template_actions(
    rendered: Sequence[Mapping[str, Any]],
    live: Mapping[str, Any] | None,
    owner_uid: str,
    applies: Sequence[Apply],
) -> tuple[list[Apply], Delete | None]:
    """(applies, None) when the live template is as rendered; ([], its Delete) when the
    owner's live template holds another claim spec than the rendered one.

    Nothing else is applied in that reconcile: pods that a Deployment apply would
    start now would get their claims from the old template, which the
    resource-claim controller still finds until the delete lands. The delete's
    watch event brings the next reconcile, which creates the new template first
    and then rolls the pods (apply order). A template owned by someone else is
    never deleted (apply_actions reports it)."""
    wanted = next((ch for ch in rendered if ch["kind"] == KIND), None)
    if live is None or controller_uid(live) != owner_uid or not replaced_template(wanted, live):
        return list(applies), None
    meta = live["metadata"]
    return [], Delete(API_VERSION, KIND, meta["namespace"], meta["name"], meta["uid"])


# -- the pod's side --------------------------------------------------------------------


def pod_claims(template_name: str) -> list[dict[str, Any]]:
    """spec.resourceClaims of a pod whose GPUs come from the template."""
    return [{"name": POD_CLAIM, "resourceClaimTemplateName": template_name}]


def with_claim(container: dict[str, Any]) -> dict[str, Any]:
    """The GPU container: the claim instead of an nvidia.com/gpu limit."""
    resources = dict(container.get("resources") or {})
    resources["claims"] = [{"name": POD_CLAIM}]
    return {**container, "resources": resources}


def claim_pod(
    rendered: Mapping[str, Any] | None,
    pod: dict[str, Any],
    template: dict[str, Any],
    container: str,
) -> None:
    """Reference the claim template ``rendered`` from a pod template's pod and its GPU
    container, and record the claim digest in the pod template, so that a new claim
    spec rolls the pods. No-op for the device plugin (``rendered`` None)."""
    if rendered is None:
        return
    pod["resourceClaims"] = pod_claims(rendered["metadata"]["name"])
    pod["containers"] = [
        with_claim(ctr) if ctr["name"] == container else ctr for ctr in pod["containers"]
    ]
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[ANNOTATION_CLAIM_DIGEST] = rendered["metadata"]["annotations"][
        ANNOTATION_CLAIM_DIGEST
    ]


def apply_to_pod(
    md: ModelDeployment, pod: dict[str, Any], template: dict[str, Any], container: str
) -> None:
    """Hook for the Deployment's pod template (see claim_pod)."""
    claim_pod(render_claim_template(md), pod, template, container)


# -- what was allocated ------------------------------------------------------------------


def claim_name_of(pod: Mapping[str, Any]) -> str | None:
    """The name of the ResourceClaim made for the pod's GPU claim (pod status names it)."""
    for entry in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
        if entry.get("name") == POD_CLAIM:
            return entry.get("resourceClaimName")
    return None


def allocated(claim: Mapping[str, Any]) -> dict[str, Any]:
    """{alternative, devices} of an allocated claim, {} while not allocated.

    The results name the chosen subrequest of the prioritized list ("gpu/h100")."""
    allocation = (claim.get("status") or {}).get("allocation") or {}
    results = (allocation.get("devices") or {}).get("results") or []
    mine = [r for r in results if str(r.get("request", "")).split("/")[0] == REQUEST]
    if not mine:
        return {}
    request = str(mine[0].get("request", ""))
    _, _, sub = request.partition("/")
    return {
        "alternative": sub or request,
        "devices": sorted(f"{r.get('pool')}/{r.get('device')}" for r in mine),
    }


def gpu_status(
    md: ModelDeployment,
    pods: Sequence[Mapping[str, Any]],
    claims: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """status.gpu: how the GPUs are obtained and, with DRA, which alternative each
    running pod was granted. None for the device plugin (nothing to report)."""
    if not uses_dra(md.spec.resources.gpu):
        return None
    by_name = {(cl.get("metadata") or {}).get("name"): cl for cl in claims}
    rows = []
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        name = claim_name_of(pod)
        claim = by_name.get(name) if name else None
        if claim is None:
            continue
        granted = allocated(claim)
        if granted:
            rows.append({"pod": meta.get("name"), "claim": name, **granted})
    out: dict[str, Any] = {"allocation": "DRA", "allocated": rows}
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["alternative"]] = counts.get(row["alternative"], 0) + 1
    if counts:
        # "h100: 2, l4: 1": which alternatives the replicas run on, at a glance.
        out["summary"] = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    return out


def allocated_gpus(status: Mapping[str, Any] | None) -> int:
    """GPUs allocated to the pods, from status.gpu."""
    return sum(len(row.get("devices") or []) for row in (status or {}).get("allocated") or [])

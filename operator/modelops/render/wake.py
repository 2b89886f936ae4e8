"""Waking a model from zero: what the operator renders for the activator, and the
activator's pure decisions.

A ModelDeployment that KEDA may take to zero (engine keda, minReplicas 0) has
its Service marked for the activator (modelops/wake/). While the Service has
no ready endpoint, the activator adds one EndpointSlice of its own to that
Service, pointing at itself: kube-proxy then sends the model's traffic to it,
it holds the requests, scales the Deployment from 0 to 1 and answers them
through the first ready pod. Once a pod's endpoint is ready it deletes its
slice, so with replicas the activator is out of the data path altogether
(Knative's activator does the same through its serverless Service). KEDA
also reads the activator's count of held requests (a metrics-api trigger), so
that it does not scale a waking model back to zero.

Everything here is pure: the activator's I/O lives in modelops/wake/.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelops.api import constants as c
from modelops.api.modeldeployment import ModelDeployment

from .meta import as_md

# On the Service: the activator lists the Services with this label.
LABEL_WAKE = f"{c.GROUP}/wake"
WAKE_ON = "on"
# On the Service: the Deployment the activator may scale from zero.
ANNOTATION_WAKE_DEPLOYMENT = f"{c.GROUP}/wake-deployment"
# The activator's own EndpointSlices carry this manager, which also keeps the
# EndpointSlice controller from touching them (it manages only its own).
ACTIVATOR_MANAGER = f"activator.{c.GROUP}"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_SUFFIX = "-wake"
# The Service port the activator serves (Triton's HTTP/REST port); gRPC is not
# held (its Service port keeps no endpoint while the model is at zero).
HTTP_PORT_NAME = "http"


def wake_enabled(md: ModelDeployment | Mapping[str, Any]) -> bool:
    """KEDA may take this model to zero, so requests at zero must wake it."""
    scaling = as_md(md).spec.autoscaling
    return scaling is not None and scaling.engine == "keda" and scaling.min_replicas == 0


def wake_service_marks(md: ModelDeployment, deployment: str) -> tuple[dict, dict]:
    """(labels, annotations) that put the Service `<name>` in the activator's care."""
    return {LABEL_WAKE: WAKE_ON}, {ANNOTATION_WAKE_DEPLOYMENT: deployment}


def wake_trigger(md: ModelDeployment, activator_url: str) -> dict[str, Any]:
    """KEDA metrics-api trigger on the activator's held requests for this model.

    Active while any request is held (activation above 0): KEDA then neither
    scales a waking model back to zero nor waits for Triton's metrics, which
    do not exist at zero. The activator scales 0 -> 1 itself at once; this
    trigger is what keeps KEDA in agreement (and the path KEDA would take on
    its own if the activator may not scale)."""
    base = activator_url.rstrip("/")
    return {
        "type": "metrics-api",
        "name": "wake",
        "metricType": "AverageValue",
        "metadata": {
            "url": f"{base}/wake/{md.namespace}/{md.name}",
            "format": "json",
            "valueLocation": "held",
            "targetValue": "1",
            "activationTargetValue": "0",
        },
    }


# -- what the activator reads from the cluster (untrusted: checked here) ---------------


@dataclass(frozen=True)
class WakeTarget:
    """A Service in the activator's care and the Deployment it may scale."""

    namespace: str
    service: str
    service_uid: str
    deployment: str
    owner_uid: str  # the ModelDeployment owning both

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.service)


def wake_target(service: Mapping[str, Any]) -> WakeTarget | None:
    """The target a marked Service names, or None when it does not qualify.

    Only a Service controlled by a ModelDeployment and labelled for waking
    qualifies; the Deployment named must be checked by the caller to have the
    same controller (owner_uid) before it is scaled."""
    meta = service.get("metadata") or {}
    if (meta.get("labels") or {}).get(LABEL_WAKE) != WAKE_ON:
        return None
    deployment = (meta.get("annotations") or {}).get(ANNOTATION_WAKE_DEPLOYMENT)
    owner = _controller_uid(meta, c.MD_KIND)
    if not deployment or not isinstance(deployment, str) or owner is None:
        return None
    if not all(isinstance(meta.get(k), str) and meta.get(k) for k in ("namespace", "name", "uid")):
        return None
    return WakeTarget(meta["namespace"], meta["name"], meta["uid"], deployment, owner)


def deployment_owned_by(deployment: Mapping[str, Any], owner_uid: str) -> bool:
    """The Deployment is controlled by the ModelDeployment `owner_uid`."""
    return _controller_uid(deployment.get("metadata") or {}, c.MD_KIND) == owner_uid


def _controller_uid(meta: Mapping[str, Any], kind: str) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("kind") == kind:
            uid = ref.get("uid")
            return uid if isinstance(uid, str) and uid else None
    return None


def ready_upstreams(slices: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(ip, port) of every ready endpoint of the Service's HTTP port, from the
    slices that are not the activator's own: where held requests may go."""
    out: list[tuple[str, int]] = []
    for sl in slices:
        labels = (sl.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_SLICE_MANAGED_BY) == ACTIVATOR_MANAGER:
            continue
        port = next(
            (
                p.get("port")
                for p in sl.get("ports") or []
                if p.get("name") == HTTP_PORT_NAME and isinstance(p.get("port"), int)
            ),
            None,
        )
        if port is None or not 0 < port < 65536:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not True:
                continue
            for address in ep.get("addresses") or []:
                if _is_ip(address):
                    out.append((address, port))
    return sorted(set(out))


def _is_ip(text: Any) -> bool:
    try:
        ipaddress.ip_address(text)
    except (TypeError, ValueError):
        return False
    return True


def slice_name(service: str) -> str:
    return f"{service}{SLICE_SUFFIX}"


def activator_slice(target: WakeTarget, ip: str, port: int) -> dict[str, Any]:
    """The EndpointSlice that sends the Service's HTTP port to the activator.

    Owned by the Service (garbage-collected with it); the port is named like the
    Service's, which is how kube-proxy matches a slice's ports to a Service."""
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(target.service),
            "namespace": target.namespace,
            "labels": {
                LABEL_SERVICE_NAME: target.service,
                LABEL_SLICE_MANAGED_BY: ACTIVATOR_MANAGER,
            },
            # Garbage-collected with the Service; not its controller (the
            # EndpointSlice controller's own slices are).
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": target.service,
                    "uid": target.service_uid,
                }
            ],
        },
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": HTTP_PORT_NAME, "port": port, "protocol": "TCP"}],
    }


def slice_points_at(live: Mapping[str, Any], ip: str, port: int) -> bool:
    """The activator's slice sends the Service to `ip`:`port` (and nowhere else).

    False for a slice left by an activator that has since moved (a rescheduled
    pod has a new IP): it must be re-pointed, or the model's traffic goes to an
    address nobody serves."""
    ports = [p.get("port") for p in live.get("ports") or [] if isinstance(p, Mapping)]
    addresses = [
        a
        for ep in live.get("endpoints") or []
        if isinstance(ep, Mapping)
        for a in ep.get("addresses") or []
    ]
    return ports == [port] and addresses == [ip]


def slice_wanted(upstreams: list[tuple[str, int]]) -> bool:
    """The activator stays in the path only while no pod's endpoint is ready."""
    return not upstreams


# -- status -----------------------------------------------------------------------------


def scaled_to_zero_condition(
    md: ModelDeployment, *, desired: int, ready: int
) -> tuple[bool, str, str] | None:
    """(status, reason, message) of the ScaledToZero condition, or None for a model
    that cannot scale to zero (no condition then).

    desired: the Deployment's spec.replicas; ready: its ready replicas."""
    if not wake_enabled(md):
        return None
    if ready > 0:
        return False, "Serving", f"{ready} replica(s) ready; KEDA scales to zero when idle"
    if desired > 0:
        return (
            False,
            "Waking",
            f"scaling up from zero to {desired} replica(s); the activator holds requests "
            "until one is ready",
        )
    return (
        True,
        "WakeOnRequest",
        "no replica; the first request is held by the activator and wakes the model",
    )

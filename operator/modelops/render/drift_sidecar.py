"""The drift-monitor sidecar and what it needs in the pod.

The sidecar handles inference traffic, so it gets no storage credentials.
It reads its reference from a local path or an http(s) URL; a reference in an
object store (s3://, gs://) is first copied into an emptyDir by a
`fetch-reference` init container that does hold the credentials, and a
pvc:// reference is mounted read-only.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from modelops.api import constants as c
from modelops.api.modeldeployment import DriftResources, ModelDeployment

from .containers import (
    TERMINATION_LOG,
    credentials,
    fixed_resources,
    http_probe,
    security_context,
)
from .pods import FETCH_CONTAINER
from .slots import traffic_config_name
from .sources import pod_source

DRIFT_CONTAINER = "drift-monitor"
REFERENCE_DIR = "/reference"
OBJECT_STORE_SCHEMES = ("s3://", "gs://")
TRAFFIC_VOLUME = "traffic"
VERSION_FIELD = f"metadata.annotations['{c.ANNOTATION_MODEL_VERSION}']"

# Retiring a serving pod without failing a call (issue 18). Each container
# first sleeps in preStop (the kubelet's own sleep action: no shell needed in
# either image), so the pod leaves the Services' endpoints before anything
# stops taking calls. Then the sidecar gets SIGTERM and drains (HTTP
# keep-alives closed, gRPC GOAWAY) for at most DRAIN_SECONDS, while Triton,
# whose preStop lasts until that drain is over, still answers what is in
# flight; then Triton stops. The grace period covers all three.
PRESTOP_SECONDS = 5
DRAIN_SECONDS = 20
TRITON_STOP_SECONDS = 10
TRITON_PRESTOP_SECONDS = PRESTOP_SECONDS + DRAIN_SECONDS
TERMINATION_GRACE_SECONDS = TRITON_PRESTOP_SECONDS + TRITON_STOP_SECONDS


def prestop_sleep(seconds: int) -> dict[str, Any]:
    """A container's ``lifecycle``: sleep before SIGTERM (Kubernetes 1.30+)."""
    return {"preStop": {"sleep": {"seconds": seconds}}}


@dataclass(frozen=True)
class DriftParts:
    """What the drift monitor adds to the pod spec."""

    init_containers: list[dict[str, Any]] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)


def drift_enabled(md: ModelDeployment) -> bool:
    drift = md.spec.drift_monitor
    return drift is not None and drift.enabled and drift.reference is not None


def gated(md: ModelDeployment) -> bool:
    """A gated rollout strategy: the data plane mirrors / splits to a candidate."""
    return md.spec.rollout.strategy in ("Shadow", "Canary")


def sidecar_enabled(md: ModelDeployment) -> bool:
    """The sidecar runs for drift detection, for gated rollouts, or both. Without a
    drift reference it only proxies, mirrors / splits and counts (no statistics)."""
    return drift_enabled(md) or gated(md)


def drift_parts(md: ModelDeployment, operator_image: str) -> DriftParts:
    """Containers and volumes of the sidecar (empty when it does not run)."""
    if not sidecar_enabled(md):
        return DriftParts()
    traffic = {
        "name": TRAFFIC_VOLUME,
        "configMap": {"name": traffic_config_name(md.name), "optional": True},
    }
    if not drift_enabled(md):
        return DriftParts([], [_sidecar(md, operator_image, None, None)], [traffic])
    parts = _drift_parts(md, operator_image)
    return DriftParts(parts.init_containers, parts.containers, [*parts.volumes, traffic])


def _drift_parts(md: ModelDeployment, operator_image: str) -> DriftParts:
    assert md.spec.drift_monitor is not None and md.spec.drift_monitor.reference is not None
    uri = md.spec.drift_monitor.reference.uri
    if uri.startswith(OBJECT_STORE_SCHEMES):
        local = posixpath.join(REFERENCE_DIR, posixpath.basename(uri.rstrip("/")) or "reference")
        volume = {"name": "drift-reference", "emptyDir": {}}
        fetch = _fetch_container(md, operator_image, uri, local)
        mount = {"name": "drift-reference", "mountPath": REFERENCE_DIR, "readOnly": True}
        return DriftParts([fetch], [_sidecar(md, operator_image, local, mount)], [volume])
    source = pod_source(uri, volume_name="drift-reference", mount_path="/mnt/reference")
    sidecar = _sidecar(md, operator_image, source.uri, source.mount)
    return DriftParts([], [sidecar], [source.volume] if source.volume else [])


def _fetch_container(
    md: ModelDeployment, operator_image: str, uri: str, local: str
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": FETCH_CONTAINER,
        "image": operator_image,
        "command": ["modelops"],
        "args": [
            "pull-file",
            "--uri",
            uri,
            "--output",
            local,
            "--termination-log",
            TERMINATION_LOG,
        ],
        "resources": fixed_resources("500m", "512Mi"),
        "volumeMounts": [{"name": "drift-reference", "mountPath": REFERENCE_DIR}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security_context(),
    }
    env_from = credentials(md)
    if env_from:
        container["envFrom"] = env_from
    return container


def _sidecar(
    md: ModelDeployment, operator_image: str, reference: str | None, mount: dict[str, Any] | None
) -> dict[str, Any]:
    drift = md.spec.drift_monitor
    args = [
        "drift-monitor",
        "--port",
        str(c.DRIFT_PROXY_PORT),
        "--admin-port",
        str(c.DRIFT_ADMIN_PORT),
        "--upstream",
        f"http://127.0.0.1:{c.TRITON_HTTP_PORT}",
        "--grpc-port",
        str(c.DRIFT_GRPC_PROXY_PORT),
        "--grpc-upstream",
        f"127.0.0.1:{c.TRITON_GRPC_PORT}",
        "--model",
        md.model_name,
        "--traffic-file",
        posixpath.join(c.TRAFFIC_MOUNT_DIR, c.TRAFFIC_FILE_KEY),
        "--drain-seconds",
        str(DRAIN_SECONDS),
    ]
    if reference is not None and drift is not None:
        args += ["--reference", reference, "--method", drift.method, "--window", str(drift.window)]
        if drift.threshold is not None:
            # Unset leaves the sidecar's per-method default in force.
            args += ["--threshold", repr(drift.threshold)]
    resources = drift.resources if drift is not None else DriftResources()
    container: dict[str, Any] = {
        "name": DRIFT_CONTAINER,
        "image": operator_image,
        "command": ["modelops"],
        "args": args,
        "ports": [
            {"name": "http-proxy", "containerPort": c.DRIFT_PROXY_PORT, "protocol": "TCP"},
            {"name": "grpc-proxy", "containerPort": c.DRIFT_GRPC_PROXY_PORT, "protocol": "TCP"},
            {"name": "drift-metrics", "containerPort": c.DRIFT_ADMIN_PORT, "protocol": "TCP"},
        ],
        "resources": _resources(resources),
        # Which version this sidecar fronts: a candidate's sidecar never mirrors or splits.
        "env": [
            {
                "name": "MODELOPS_MODEL_VERSION",
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": f"metadata.annotations['{c.ANNOTATION_MODEL_VERSION}']"
                    }
                },
            }
        ],
        # Through the proxy to Triton: ready when the whole request path is. No
        # liveness probe: loading a large reference takes a while, and the
        # sidecar exits on fatal errors by itself.
        "readinessProbe": http_probe("/v2/health/ready", "http-proxy", period=5, failures=3),
        "lifecycle": prestop_sleep(PRESTOP_SECONDS),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security_context(),
    }
    mounts = [{"name": TRAFFIC_VOLUME, "mountPath": c.TRAFFIC_MOUNT_DIR, "readOnly": True}]
    container["volumeMounts"] = [mount, *mounts] if mount else mounts
    return container


def _resources(res: DriftResources) -> dict[str, Any]:
    """spec.driftMonitor.resources as container resources (quantities as given)."""
    return {
        "requests": {"cpu": str(res.requests.cpu), "memory": str(res.requests.memory)},
        "limits": {"cpu": str(res.limits.cpu), "memory": str(res.limits.memory)},
    }

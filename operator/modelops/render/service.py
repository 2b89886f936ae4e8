"""The ClusterIP Service in front of the Triton pods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.modeldeployment import ModelDeployment

from .drift_sidecar import sidecar_enabled
from .meta import as_md, child_metadata, selector_labels
from .slots import candidate_service_name
from .wake import wake_enabled, wake_service_marks


def render_service(
    md: ModelDeployment | Mapping[str, Any],
    *,
    slot: str | None = None,
    wake_deployment: str | None = None,
) -> dict[str, Any]:
    """Service `<name>`: http, grpc, metrics (and drift-metrics) ports.

    With the drift monitor on, the http and grpc ports lead to the sidecar's
    proxies so that every inference request, HTTP or gRPC, is observed;
    Triton's own http and grpc container ports are then only reached from
    inside the pod (the sidecar's upstream). Triton's metrics go to Triton
    directly. drift-metrics is the sidecar's admin port (/metrics, and
    /drift, the summary the operator copies into status.drift). Target ports
    are named, so the port numbers inside the pod can change without touching
    the Service.

    slot: select only that slot's pods (while a gated rollout's candidate runs in
    the other slot and must get no live traffic through the Service); None
    selects every pod of the ModelDeployment.
    wake_deployment: with an activator installed, the Deployment it may scale
    from zero; the Service is then marked for it when the model may scale to
    zero (render/wake.py).
    """
    md = as_md(md)
    selector = selector_labels(md)
    if slot is not None:
        selector = {**selector, c.LABEL_SLOT: slot}
    service = _service(md, md.name, selector)
    if wake_deployment is not None and wake_enabled(md):
        marks, notes = wake_service_marks(md, wake_deployment)
        meta = service["metadata"]
        meta["labels"] = {**meta["labels"], **marks}
        meta["annotations"] = {**meta.get("annotations", {}), **notes}
    return service


def render_candidate_service(md: ModelDeployment | Mapping[str, Any], slot: str) -> dict[str, Any]:
    """Service `<name>-candidate`: the candidate slot's pods, where the stable pods'
    sidecars mirror and split requests to."""
    md = as_md(md)
    selector = {**selector_labels(md), c.LABEL_SLOT: slot}
    return _service(md, candidate_service_name(md.name), selector)


def _service(md: ModelDeployment, name: str, selector: dict[str, str]) -> dict[str, Any]:
    drift = sidecar_enabled(md)
    ports = [
        _port("http", c.TRITON_HTTP_PORT, "http-proxy" if drift else "http"),
        # Cleartext HTTP/2: lets Gateway API and meshes route gRPC correctly.
        _port(
            "grpc",
            c.TRITON_GRPC_PORT,
            "grpc-proxy" if drift else "grpc",
            app_protocol="kubernetes.io/h2c",
        ),
        _port("metrics", c.TRITON_METRICS_PORT, "metrics"),
    ]
    if drift:
        ports.append(_port("drift-metrics", c.DRIFT_ADMIN_PORT, "drift-metrics"))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(md, name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": ports,
        },
    }


def _port(name: str, port: int, target: str, app_protocol: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": port, "targetPort": target, "protocol": "TCP"}
    if app_protocol:
        out["appProtocol"] = app_protocol
    return out

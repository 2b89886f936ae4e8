"""The ClusterIP Service in front of the Triton pods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.modeldeployment import ModelDeployment

from .drift_sidecar import drift_enabled
from .meta import as_md, child_metadata, selector_labels


def render_service(md: ModelDeployment | Mapping[str, Any]) -> dict[str, Any]:
    """Service `<name>`: http, grpc, metrics (and drift-metrics) ports.

    With the drift monitor on, the http and grpc ports lead to the sidecar's
    proxies so that every inference request, HTTP or gRPC, is observed;
    Triton's own http and grpc container ports are then only reached from
    inside the pod (the sidecar's upstream). Triton's metrics go to Triton
    directly. drift-metrics is the sidecar's admin port (/metrics, and
    /drift, the summary the operator copies into status.drift). Target ports
    are named, so the port numbers inside the pod can change without touching
    the Service.
    """
    md = as_md(md)
    drift = drift_enabled(md)
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
        "metadata": child_metadata(md),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(md),
            "ports": ports,
        },
    }


def _port(name: str, port: int, target: str, app_protocol: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": port, "targetPort": target, "protocol": "TCP"}
    if app_protocol:
        out["appProtocol"] = app_protocol
    return out

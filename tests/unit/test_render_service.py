"""render_service: ports and where they lead."""

from __future__ import annotations

from modelops.render.service import render_service
from tests.unit.test_render_fixtures import md_body

DRIFT = {"enabled": True, "reference": {"uri": "s3://models/fraud/reference.npz"}}


def ports(svc):
    return {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}


def test_service_without_drift_goes_straight_to_triton():
    svc = render_service(md_body())
    assert svc["apiVersion"] == "v1" and svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "fraud" and svc["metadata"]["namespace"] == "ml"
    assert svc["metadata"]["ownerReferences"][0]["controller"] is True
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == {"modelops.io/model-deployment": "fraud"}
    assert ports(svc) == {
        "http": (8000, "http"),
        "grpc": (8001, "grpc"),
        "metrics": (8002, "metrics"),
    }
    grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["appProtocol"] == "kubernetes.io/h2c"
    assert "status" not in svc


def test_service_with_drift_sends_http_and_grpc_through_the_sidecar():
    svc = render_service(md_body(driftMonitor=DRIFT))
    assert ports(svc) == {
        "http": (8000, "http-proxy"),
        "grpc": (8001, "grpc-proxy"),
        "metrics": (8002, "metrics"),
        "drift-metrics": (8090, "drift-metrics"),
    }


def test_disabled_drift_monitor_changes_nothing():
    assert render_service(md_body(driftMonitor={**DRIFT, "enabled": False})) == render_service(
        md_body()
    )

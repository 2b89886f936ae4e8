"""render_autoscaler: HPA and KEDA ScaledObject for each metric type."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.render.autoscaler import render_autoscaler
from tests.unit.test_render_fixtures import md_body

PROM = "http://prometheus.monitoring.svc:9090"


def scaled(metric: str, target: int, engine: str = "hpa", min_replicas: int = 1) -> dict[str, Any]:
    body = md_body(
        autoscaling={
            "minReplicas": min_replicas,
            "maxReplicas": 6,
            "engine": engine,
            "metric": {"type": metric, "target": target},
        }
    )
    out = render_autoscaler(body, prometheus_address=PROM)
    assert out is not None
    return out


def test_no_autoscaler_without_autoscaling():
    assert render_autoscaler(md_body()) is None


def test_hpa_shape():
    hpa = scaled("cpu", 70)
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["metadata"]["name"] == "fraud"
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "fraud",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 6)


def test_hpa_cpu_measures_the_triton_container_only():
    assert scaled("cpu", 70)["spec"]["metrics"] == [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "container": "triton",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]


@pytest.mark.parametrize(
    ("metric", "name"),
    [
        ("queue-time", "triton_queue_time_per_request_us"),
        ("concurrency", "triton_inflight_requests"),
        ("gpu-utilization", "DCGM_FI_DEV_GPU_UTIL"),
    ],
)
def test_hpa_pods_metrics(metric, name):
    assert scaled(metric, 80)["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": name},
                "target": {"type": "AverageValue", "averageValue": "80"},
            },
        }
    ]


def trigger(obj: dict[str, Any]) -> dict[str, Any]:
    assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == "ScaledObject"
    [only] = obj["spec"]["triggers"]
    return only


def test_keda_shape_allows_scale_to_zero():
    so = scaled("queue-time", 2000, engine="keda", min_replicas=0)
    assert so["metadata"]["name"] == "fraud"
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "fraud",
    }
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 6)


def test_keda_cooldown_only_when_asked():
    assert "cooldownPeriod" not in scaled("concurrency", 4, engine="keda", min_replicas=0)["spec"]
    body = md_body(
        autoscaling={
            "minReplicas": 0,
            "maxReplicas": 2,
            "engine": "keda",
            "cooldownSeconds": 20,
            "metric": {"type": "concurrency", "target": 4},
        }
    )
    so = render_autoscaler(body, prometheus_address=PROM)
    assert so is not None and so["spec"]["cooldownPeriod"] == 20


def test_keda_queue_time_query():
    t = trigger(scaled("queue-time", 2000, engine="keda"))
    assert t["type"] == "prometheus" and t["metricType"] == "Value"
    meta = t["metadata"]
    assert meta["serverAddress"] == PROM
    assert meta["threshold"] == "2000"
    sel = 'namespace="ml",pod=~"fraud-[a-z0-9]+-[a-z0-9]+"'
    assert meta["query"] == (
        f"sum(rate(nv_inference_queue_duration_us{{{sel}}}[1m])) / "
        f"clamp_min(sum(rate(nv_inference_request_success{{{sel}}}[1m])), 0.001)"
    )


def test_keda_concurrency_is_a_total_divided_per_replica():
    t = trigger(scaled("concurrency", 4, engine="keda"))
    assert t["metricType"] == "AverageValue"
    assert t["metadata"]["query"].startswith("sum(rate(nv_inference_request_duration_us{")
    assert t["metadata"]["query"].endswith("[1m])) / 1e6")


def test_keda_gpu_utilization():
    t = trigger(scaled("gpu-utilization", 80, engine="keda"))
    assert t["metricType"] == "Value"
    assert t["metadata"]["query"].startswith('avg(DCGM_FI_DEV_GPU_UTIL{namespace="ml"')


def test_keda_cpu_uses_the_cpu_scaler():
    assert trigger(scaled("cpu", 60, engine="keda")) == {
        "type": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": "60", "containerName": "triton"},
    }


def _with_stabilization(engine: str, seconds: int | None) -> dict[str, Any]:
    autoscaling: dict[str, Any] = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "engine": engine,
        "metric": {"type": "queue-time", "target": 20000},
    }
    if seconds is not None:
        autoscaling["scaleDownStabilizationSeconds"] = seconds
    out = render_autoscaler(md_body(autoscaling=autoscaling), prometheus_address=PROM)
    assert out is not None
    return out


def test_hpa_keeps_kubernetes_default_behavior_unless_asked():
    assert "behavior" not in _with_stabilization("hpa", None)["spec"]
    assert "advanced" not in _with_stabilization("keda", None)["spec"]


@pytest.mark.parametrize("seconds", [0, 15, 3600])
def test_scale_down_stabilization_reaches_the_hpa(seconds: int):
    want = {"scaleDown": {"stabilizationWindowSeconds": seconds}}
    assert _with_stabilization("hpa", seconds)["spec"]["behavior"] == want
    keda = _with_stabilization("keda", seconds)["spec"]
    assert keda["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": want}}


@pytest.mark.parametrize("seconds", [-1, 3601])
def test_scale_down_stabilization_out_of_range_is_refused(seconds: int):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="scaleDownStabilizationSeconds"):
        _with_stabilization("hpa", seconds)

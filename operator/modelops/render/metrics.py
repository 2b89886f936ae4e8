"""Autoscaling metrics: names, PromQL, and the prometheus-adapter rules.

One place defines how each `spec.autoscaling.metric.type` is measured, used
by the HPA (through prometheus-adapter's custom metrics API), by KEDA
(PromQL directly) and by manifests/prometheus-adapter-rules.yaml (see
adapter_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# A floor under the request rate avoids 0/0 when a pod is idle. It is tiny
# rather than 1 req/s: a floor of 1 would understate the queue time of a
# saturated big model that completes less than one request per second, which
# is exactly when scaling out matters.
MIN_RATE = 0.001
WINDOW = "1m"
# Placeholder for the pod label matchers in the KEDA queries.
SEL = "<<PODS>>"


@dataclass(frozen=True)
class Metric:
    """How one metric type is measured."""

    type: str
    # Per-pod custom metric the HPA reads (None: a resource metric).
    pod_metric: str | None
    # prometheus-adapter rule: the series to discover and the per-pod query,
    # with <<.LabelMatchers>> / <<.GroupBy>> as the adapter expects.
    series: str | None = None
    adapter_query: str | None = None
    # KEDA: the query over the pods matched by SEL, and whether
    # the value is an average to compare with the target (Value) or a total
    # to divide by it (AverageValue).
    keda_query: str | None = None
    keda_metric_type: str = "Value"


def _per_pod_ratio(num: str, den: str, sel: str, by: str) -> str:
    return (
        f"sum by ({by}) (rate({num}{{{sel}}}[{WINDOW}])) / "
        f"clamp_min(sum by ({by}) (rate({den}{{{sel}}}[{WINDOW}])), {MIN_RATE})"
    )


QUEUE_TIME = Metric(
    type="queue-time",
    pod_metric="triton_queue_time_per_request_us",
    series='nv_inference_queue_duration_us{namespace!="",pod!=""}',
    adapter_query=_per_pod_ratio(
        "nv_inference_queue_duration_us",
        "nv_inference_request_success",
        "<<.LabelMatchers>>",
        "<<.GroupBy>>",
    ),
    # Fleet-wide average queue time per request, compared with the target.
    keda_query=(
        f"sum(rate(nv_inference_queue_duration_us{{{SEL}}}[{WINDOW}])) / "
        f"clamp_min(sum(rate(nv_inference_request_success{{{SEL}}}[{WINDOW}])), {MIN_RATE})"
    ),
    keda_metric_type="Value",
)

# Little's law: the summed duration of requests per second is the average
# number of requests in flight, and Triton's cumulative counter makes it
# robust to scrape timing.
CONCURRENCY = Metric(
    type="concurrency",
    pod_metric="triton_inflight_requests",
    series='nv_inference_request_duration_us{namespace!="",pod!=""}',
    adapter_query=(
        f"sum by (<<.GroupBy>>) (rate(nv_inference_request_duration_us{{<<.LabelMatchers>>}}"
        f"[{WINDOW}])) / 1e6"
    ),
    # Total in flight across pods: KEDA divides it by the per-pod target.
    keda_query=f"sum(rate(nv_inference_request_duration_us{{{SEL}}}[{WINDOW}])) / 1e6",
    keda_metric_type="AverageValue",
)

GPU_UTILIZATION = Metric(
    type="gpu-utilization",
    pod_metric="DCGM_FI_DEV_GPU_UTIL",
    series='DCGM_FI_DEV_GPU_UTIL{namespace!="",pod!=""}',
    adapter_query="avg by (<<.GroupBy>>) (DCGM_FI_DEV_GPU_UTIL{<<.LabelMatchers>>})",
    keda_query=f"avg(DCGM_FI_DEV_GPU_UTIL{{{SEL}}})",
    keda_metric_type="Value",
)

CPU = Metric(type="cpu", pod_metric=None)

METRICS: dict[str, Metric] = {m.type: m for m in (CPU, QUEUE_TIME, CONCURRENCY, GPU_UTILIZATION)}


def pod_selector(namespace: str, deployment: str) -> str:
    """PromQL label matchers for the pods of one Deployment.

    Pod names are <deployment>-<replicaset hash>-<suffix>; matching exactly two
    dash-free segments keeps a Deployment named `<deployment>-x` out.
    """
    return f'namespace="{namespace}",pod=~"{deployment}-[a-z0-9]+-[a-z0-9]+"'


def keda_query(metric: Metric, namespace: str, deployment: str) -> str:
    assert metric.keda_query is not None
    return metric.keda_query.replace(SEL, pod_selector(namespace, deployment))


def prometheus_adapter_rules() -> dict:
    """prometheus-adapter configuration exposing the per-pod metrics the HPA reads."""
    rules = []
    for metric in METRICS.values():
        if metric.pod_metric is None:
            continue
        series_name = metric.series.split("{", 1)[0] if metric.series else ""
        rules.append(
            {
                "seriesQuery": metric.series,
                "resources": {
                    "overrides": {
                        "namespace": {"resource": "namespace"},
                        "pod": {"resource": "pod"},
                    }
                },
                "name": {"matches": f"^{series_name}$", "as": metric.pod_metric},
                "metricsQuery": metric.adapter_query,
            }
        )
    return {"rules": rules}

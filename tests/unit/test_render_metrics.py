"""The autoscaling metrics and the generated prometheus-adapter rules."""

from __future__ import annotations

from pathlib import Path

import yaml

from modelops.render.adapter_rules import adapter_rules_yaml
from modelops.render.metrics import METRICS, prometheus_adapter_rules

RULES_FILE = Path(__file__).resolve().parents[2] / "manifests" / "prometheus-adapter-rules.yaml"


def test_adapter_rules_file_is_fresh():
    assert RULES_FILE.read_text() == adapter_rules_yaml(), (
        "manifests/prometheus-adapter-rules.yaml is stale: run `make crds` (python -m "
        "modelops.render.adapter_rules manifests/prometheus-adapter-rules.yaml)"
    )


def test_every_pods_metric_the_hpa_reads_has_an_adapter_rule():
    exposed = {rule["name"]["as"] for rule in prometheus_adapter_rules()["rules"]}
    wanted = {m.pod_metric for m in METRICS.values() if m.pod_metric}
    assert exposed == wanted


def test_queue_time_rule_is_average_queue_time_per_request_per_pod():
    rules = {r["name"]["as"]: r for r in yaml.safe_load(adapter_rules_yaml())["rules"]}
    rule = rules["triton_queue_time_per_request_us"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    query = rule["metricsQuery"]
    assert "rate(nv_inference_queue_duration_us{<<.LabelMatchers>>}[1m])" in query
    assert "clamp_min(sum by (<<.GroupBy>>) (rate(nv_inference_request_success" in query


def test_metric_types_match_the_api_enum():
    from typing import get_args

    from modelops.api.modeldeployment import MetricType

    assert set(METRICS) == set(get_args(MetricType))

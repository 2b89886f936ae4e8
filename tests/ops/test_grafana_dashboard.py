"""deploy/monitoring/grafana-dashboard.json: valid dashboard JSON whose every query is PromQL
that promtool accepts, on metrics that something in the stack exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.drift.metrics import DriftMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"

# Grafana's variables, replaced by values a query can take, for checking the PromQL.
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$namespace": ".*",
    "$modeldeployment": ".*",
    "$method": "psi",
}

# Metrics from outside modelops the dashboard may use.
TRITON = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
}
KUBE_STATE_METRICS = {"kube_pod_container_resource_limits"}
OPERATOR = {
    "modelops_rollout_phase",
    "modelops_rollout_agreement",
    "modelops_rollout_error_rate",
    "modelops_resource_condition",
    "modelops_managed_resources",
    "modelops_reconcile_errors_total",
    "modelops_reconcile_duration_seconds_bucket",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def targets() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in panels() for t in p["targets"]]


def promql(expr: str) -> str:
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    return expr


def test_dashboard_structure():
    d = dashboard()
    assert d["uid"] == "modelops-overview" and d["title"]
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in d["panels"]:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]
    for p in panels():
        assert p["description"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
    # No two panels overlap.
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        pos = p["gridPos"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"panel {p['title']} overlaps another"
        cells |= mine


def test_variables_used_are_defined():
    d = dashboard()
    defined = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "namespace", "modeldeployment", "method"} <= defined
    texts = [t["expr"] for _, t in targets()] + [
        v["query"]["query"] for v in d["templating"]["list"] if v["type"] == "query"
    ]
    for text in texts:
        for var in re.findall(r"\$(\w+)", text):
            assert var in defined or f"${var}" in SUBSTITUTIONS, (var, text)


def test_required_panels_are_there():
    exprs = "\n".join(t["expr"] for _, t in targets())
    for needle in (
        "nv_inference_request_duration_us",  # serving latency
        "nv_inference_queue_duration_us",  # queue time per request
        'resource="nvidia_com_gpu"',  # GPU count
        "modelops_drift_feature_score",  # drift per feature
        "modelops_drift_detected",
        "histogram_quantile(0.95, sum by (kind, le) (rate(modelops_reconcile_duration_seconds",
        "modelops_reconcile_errors_total",
    ):
        assert needle in exprs, needle


def test_metric_names_are_exported_by_something():
    drift = {
        sample.name
        for family in DriftMetrics("fraud", ["amount"]).registry.collect()
        for sample in family.samples
    }
    known = drift | TRITON | KUBE_STATE_METRICS | OPERATOR
    for panel, target in targets():
        expr = promql(target["expr"])
        names = set(re.findall(r"\b(?:nv|modelops|kube|DCGM)_\w+", expr))
        assert names, (panel["title"], expr)
        assert names <= known, (panel["title"], names - known)


def _check(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: run hack/install-prometheus.sh", pytrace=False)
    rules = [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )


def test_every_query_parses(tmp_path):
    exprs = [promql(t["expr"]) for _, t in targets()]
    done = _check(tmp_path, exprs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


def test_the_parse_check_can_fail(tmp_path):
    assert _check(tmp_path, ["sum by (kind (rate(x[5m]))"]).returncode != 0

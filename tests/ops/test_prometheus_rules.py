"""deploy/monitoring: rules checked and unit-tested by promtool, scrape config against the
renderers, metric names against the code that exports them, and ModelDriftDetected
firing in a real Prometheus that scrapes the real drift-monitor sidecar.

promtool and prometheus come from Debian's `prometheus` package; hack/install-prometheus.sh
installs it. These tests fail (they do not skip) when it is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from modelops.drift.metrics import DriftMetrics
from modelops.drift.reference import build_reference
from modelops.render.deployment import render_deployment
from modelops.render.gating.metrics import METRICS as ROLLOUT_METRICS
from modelops.render.gating.metrics import rollout_samples
from modelops.render.service import render_service
from tests.ops.test_grafana_dashboard import promql as dashboard_promql
from tests.ops.test_grafana_dashboard import targets as dashboard_targets
from tests.unit.test_render_fixtures import md_body

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
OPERATIONS = REPO / "docs" / "operations.md"
INSTALL_HINT = "run hack/install-prometheus.sh (apt-get install -y prometheus)"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def load_rule() -> dict[str, Any]:
    return yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())


def all_rules() -> list[dict[str, Any]]:
    return [r for g in load_rule()["spec"]["groups"] for r in g["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in all_rules() if "alert" in r}


def write_rules(directory: Path, spec: dict[str, Any] | None = None) -> Path:
    """The PrometheusRule's spec as a plain rule file, which promtool and prometheus read."""
    path = directory / "modelops.rules.yaml"
    path.write_text(yaml.safe_dump(spec or load_rule()["spec"], sort_keys=False))
    return path


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --- promtool ------------------------------------------------------------------------


def test_prometheusrule_object():
    rule = load_rule()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_promtool_check_rules(tmp_path):
    done = run(tool("promtool"), "check", "rules", str(write_rules(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(all_rules())} rules found" in done.stdout


def test_promtool_check_rules_rejects_a_broken_expression(tmp_path):
    """The check above can fail: the same file with one bad expression does."""
    spec = load_rule()["spec"]
    spec["groups"][1]["rules"][0]["expr"] = "max by (namespace (modelops_resource_condition"
    done = run(tool("promtool"), "check", "rules", str(write_rules(tmp_path, spec)))
    assert done.returncode != 0


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(tmp_path, test_file):
    write_rules(tmp_path)
    shutil.copy(test_file, tmp_path / test_file.name)
    done = run(tool("promtool"), "test", "rules", test_file.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_unit_tests_fail_when_a_threshold_changes(tmp_path):
    spec = load_rule()["spec"]
    for group in spec["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "TritonQueueTimeHigh":
                rule["expr"] = rule["expr"].replace("> 50000", "> 500000")
    write_rules(tmp_path, spec)
    for test_file in RULE_TESTS:
        shutil.copy(test_file, tmp_path / test_file.name)
        done = run(tool("promtool"), "test", "rules", test_file.name, cwd=tmp_path)
        if done.returncode != 0:
            assert "TritonQueueTimeHigh" in done.stdout + done.stderr
            return
    pytest.fail("no promtool unit test noticed a changed threshold")


def test_every_alert_is_tested_firing_and_not_firing():
    fired: set[str] = set()
    quiet: set[str] = set()
    for test_file in RULE_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) <= fired, f"never seen firing: {set(alerts()) - fired}"
    assert set(alerts()) <= quiet, f"never seen quiet: {set(alerts()) - quiet}"


def test_every_recording_rule_value_is_tested():
    tested = set()
    for test_file in RULE_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("promql_expr_test", []):
                tested.add(re.split(r"[{\s]", check["expr"], maxsplit=1)[0])
    records = {r["record"] for r in all_rules() if "record" in r}
    untested = records - tested
    # The reconcile recording rules are plain aggregations the dashboard reads; the queue-time
    # ones carry the arithmetic, and those must have known values.
    assert untested <= {
        "kind:modelops_reconcile_duration_seconds:p95_5m",
        "kind:modelops_reconcile_errors:rate5m",
    }, untested


# --- alert metadata ------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower-case, punctuation dropped, spaces to dashes."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            out.add(text.replace(" ", "-"))
    return out


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_description_quotes_its_own_for_duration(name):
    # The chart rewrites "for <for>" when a user overrides `for`; any other spelled-out
    # duration would go stale (it said "10 minutes" whatever `for` was).
    rule = alerts()[name]
    description = " ".join(rule["annotations"]["description"].split())
    assert not re.search(r"\d+\s*(minute|hour|second)s?\b", description), description
    if "for" in rule:
        assert description.count(f"for {rule['for']}") == 1, (rule["for"], description)
        other = re.findall(r"\bfor (\d+[smhd])\b", description)
        assert other == [rule["for"]], other


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_has_severity_summary_description_and_a_runbook(name):
    rule = alerts()[name]
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    notes = rule["annotations"]
    assert notes["summary"] and notes["description"]
    url = notes["runbook_url"]
    prefix = "https://github.com/modelops/modelops/blob/main/docs/operations.md#"
    assert url.startswith(prefix), url
    anchor = url[len(prefix) :]
    assert anchor == name.lower()
    assert anchor in _anchors(OPERATIONS.read_text()), f"docs/operations.md has no #{anchor}"


# --- metric names against the code that exports them ---------------------------------

OPERATOR_METRICS = {
    "modelops_resource_condition": {"kind", "namespace", "name", "type", "status"},
    "modelops_reconcile_errors_total": {"kind", "reason"},
    "modelops_reconcile_duration_seconds_bucket": {"kind", "le"},
}


def _exported(registry: Any) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_drift_metric_names_match_the_sidecar():
    exported = _exported(DriftMetrics("fraud", ["amount", "age"]).registry)
    assert exported["modelops_drift_detected"] == {"model"}
    assert exported["modelops_drift_score"] == {"model"}
    assert exported["modelops_drift_feature_score"] == {"model", "feature", "method"}


def test_operator_metric_names_match_the_operator():
    from prometheus_client import CollectorRegistry

    from modelops.controllers import metrics

    registry = CollectorRegistry()
    for collector in (
        metrics.RESOURCE_CONDITION,
        metrics.RECONCILE_ERRORS,
        metrics.RECONCILE_DURATION,
    ):
        registry.register(collector)
    metrics.RESOURCE_CONDITION.labels("ModelDeployment", "ml", "fraud", "Ready", "True").set(1)
    metrics.RECONCILE_ERRORS.labels("ModelDeployment", "Conflict").inc()
    metrics.RECONCILE_DURATION.labels("ModelDeployment").observe(0.1)
    try:
        exported = _exported(registry)
        for name, labels in OPERATOR_METRICS.items():
            assert exported.get(name) == labels, (name, exported.get(name))
    finally:
        metrics.RESOURCE_CONDITION.remove("ModelDeployment", "ml", "fraud", "Ready", "True")


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(nv_[a-z_]+|modelops_[a-z_]+)\b", expr))
    return {n for n in names if not n.startswith("modelops_io")}


def test_rollout_metric_names_match_the_samples_the_operator_exports():
    """The names the rules and docs use are the ones render.gating.metrics produces."""
    status = {
        "phase": "Shadow",
        "candidate": "8",
        "step": 0,
        "mirrorPercent": 10,
        "analysis": {
            "stable": {"requests": 10, "errors": 0, "errorRate": 0.0, "latencyP99Seconds": 0.1},
            "candidate": {"requests": 1, "errors": 0, "errorRate": 0.0, "latencyP99Seconds": 0.1},
            "mirrored": 1,
            "agreement": 1.0,
        },
    }
    exported: dict[str, set[str]] = {}
    for metric, labels, _value in rollout_samples("ml", "fraud", status):
        exported.setdefault(metric, set()).update(labels)
    assert exported == {name: set(labels) for name, (_help, labels) in ROLLOUT_METRICS.items()}
    docs = OPERATIONS.read_text()
    for name in ROLLOUT_METRICS:
        assert f"`{name}`" in docs, f"docs/operations.md does not document {name}"


def test_rules_only_use_known_metrics():
    known = (
        set(OPERATOR_METRICS)
        | set(ROLLOUT_METRICS)
        | {
            "modelops_drift_detected",
            "modelops_drift_score",
            "modelops_reconcile_duration_seconds_bucket",
            "nv_inference_request_success",
            "nv_inference_queue_duration_us",
            "nv_inference_request_duration_us",
        }
    )
    used = set().union(*(_metric_names(r["expr"]) for r in all_rules()))
    assert used <= known, used - known


def test_every_metric_used_is_documented():
    docs = OPERATIONS.read_text()
    exprs = [r["expr"] for r in all_rules()] + [t["expr"] for _, t in dashboard_targets()]
    used = set().union(*(_metric_names(e) for e in exprs))
    for name in sorted(used):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert f"`{base}`" in docs, f"docs/operations.md does not document {base}"
    for record in (r["record"] for r in all_rules() if "record" in r):
        assert f"`{record}`" in docs, record


# --- scrape configuration against what the renderers produce -------------------------


def test_monitors_select_the_rendered_pods_and_ports():
    docs = list(yaml.safe_load_all((MONITORING / "servicemonitors.yaml").read_text()))
    by_name = {d["metadata"]["name"]: d for d in docs}
    body = md_body(
        driftMonitor={"enabled": True, "reference": {"uri": "s3://models/fraud/ref.json"}}
    )
    image = "ghcr.io/modelops/operator:0.1.0"
    dep = render_deployment(body, operator_image=image, model_version="3")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    ports = {
        p["name"]: (c["name"], p["containerPort"])
        for c in dep["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    for name, port in (("modelops-triton", "metrics"), ("modelops-drift-monitor", "drift-metrics")):
        monitor = by_name[name]
        assert monitor["kind"] == "PodMonitor"
        assert monitor["spec"]["namespaceSelector"] == {"any": True}
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items(), (selector, pod_labels)
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["port"] == port and port in ports
        # The target label the rules group by, from the pod label that names the deployment.
        relabel = endpoint["relabelings"][0]
        assert relabel["targetLabel"] == "modeldeployment"
        source = relabel["sourceLabels"][0].removeprefix("__meta_kubernetes_pod_label_")
        assert re.sub(r"[^a-zA-Z0-9_]", "_", "modelops.io/model-deployment") == source
        assert pod_labels["modelops.io/model-deployment"] == "fraud"
    assert ports["metrics"] == ("triton", 8002)
    assert ports["drift-metrics"][0] == "drift-monitor"
    # The Service exposes the same named ports (for the status endpoints and adapters).
    svc_ports = {p["name"] for p in render_service(body)["spec"]["ports"]}
    assert {"metrics", "drift-metrics"} <= svc_ports
    operator = by_name["modelops-operator"]
    assert operator["kind"] == "ServiceMonitor"
    assert operator["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "modelops-operator"
    }
    assert operator["spec"]["jobLabel"] == "app.kubernetes.io/name"
    (endpoint,) = operator["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    for doc in docs:
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # ... and the operator's Service in the plain install manifests: exactly one Service
    # matches the ServiceMonitor's selector (the conversion webhook's must not, or
    # Prometheus would scrape its TLS port as metrics).
    install = yaml.safe_load_all((REPO / "manifests" / "install" / "operator.yaml").read_text())
    services = [d for d in install if d and d["kind"] == "Service"]
    wanted = operator["spec"]["selector"]["matchLabels"].items()
    (service,) = [s for s in services if wanted <= (s["metadata"].get("labels") or {}).items()]
    assert service["metadata"]["namespace"] == operator["metadata"]["namespace"]
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "modelops-operator"


# --- a real Prometheus scraping the real drift sidecar --------------------------------

N_FEATURES = 4
WINDOW = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_for(what: str, check: Any, timeout: float, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        with contextlib.suppress(OSError, ValueError):
            last = check()
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def feed_until(
    what: str,
    post: Callable[[], None],
    done: Callable[[dict], Any],
    admin: str,
    timeout: float = 40,
) -> None:
    """Post a batch, then look at the sidecar's /drift, until ``done`` holds for it."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        post()
        stop = time.monotonic() + 1.0
        while time.monotonic() < stop:
            last = get_json(f"{admin}/drift")
            if done(last):
                return
            time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; /drift said {last!r}")


class _FakeTriton(BaseHTTPRequestHandler):
    """Answers KServe v2 infer requests with 200, as Triton does for a loaded model."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"model_name": "fraud", "outputs": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def process(argv: list[str], log: Path, **kw: Any) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def post_rows(url: str, rows: np.ndarray) -> None:
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    ).encode()
    req = urllib.request.Request(
        f"{url}/v2/models/fraud/infer",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    doc = get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def drift_alerts(prom: str) -> list[dict[str, Any]]:
    doc = get_json(f"{prom}/api/v1/alerts")
    return [a for a in doc["data"]["alerts"] if a["labels"]["alertname"] == "ModelDriftDetected"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_drift_alert_fires_in_a_real_prometheus(tmp_path):
    """prometheus scrapes `modelops drift-monitor` (the real sidecar process, in front of a
    stand-in for Triton), evaluates the shipped rules, and ModelDriftDetected goes
    inactive -> pending -> firing once drifted traffic flows. Only `for:` is shortened."""
    prometheus = tool("prometheus")
    rng = np.random.default_rng(7)
    reference = tmp_path / "reference.json"
    build_reference(rng.normal(size=(20_000, N_FEATURES)), bins=10).save(reference)

    # Stand-in for Triton: the sidecar only needs 200 answers to sample a request.
    triton = ThreadingHTTPServer(("127.0.0.1", 0), _FakeTriton)
    threading.Thread(target=triton.serve_forever, daemon=True).start()

    # The shipped rules, with ModelDriftDetected's `for` shortened to 2 s.
    spec = load_rule()["spec"]
    for group in spec["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ModelDriftDetected":
                assert rule["expr"] == alerts()["ModelDriftDetected"]["expr"]
                rule["for"] = "2s"
    rules = write_rules(tmp_path, spec)

    proxy_port, admin_port, prom_port = free_port(), free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "modelops-drift-monitor",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{admin_port}"],
                        # What the PodMonitor's target labels add in a cluster.
                        "labels": {
                            "namespace": "ml",
                            "pod": "fraud-7d9f8c6b5-x2x4q",
                            "modeldeployment": "fraud",
                        },
                    }
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    sidecar_argv = [
        sys.executable,
        "-m",
        "modelops.cli",
        "drift-monitor",
        "--reference",
        str(reference),
        "--model",
        "fraud",
        "--method",
        "psi",
        "--window",
        str(WINDOW),
        "--host",
        "127.0.0.1",
        "--port",
        str(proxy_port),
        "--admin-port",
        str(admin_port),
        "--upstream",
        f"http://127.0.0.1:{triton.server_address[1]}",
        # This test is about the alert pipeline: no statistics CPU budget, which on
        # a loaded machine drops rows and delays the windows past the waits below.
        "--stats-cpu",
        "1",
    ]
    prom_argv = [
        prometheus,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    proxy, admin, prom = (
        f"http://127.0.0.1:{proxy_port}",
        f"http://127.0.0.1:{admin_port}",
        f"http://127.0.0.1:{prom_port}",
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        with (
            process(sidecar_argv, tmp_path / "sidecar.log", env=env) as sidecar,
            process(prom_argv, tmp_path / "prometheus.log") as server,
        ):
            wait_for("the sidecar", lambda: get_json(f"{admin}/healthz"), 30, sidecar)
            wait_for(
                "prometheus", lambda: urllib.request.urlopen(f"{prom}/-/ready").status == 200, 30
            )

            # Traffic like the reference: the rule evaluates, nothing is pending.
            # Posting goes on until a window is evaluated: the sidecar may drop a sample
            # under CPU pressure (by design), and this test is not about how many it keeps.
            def reference_like() -> None:
                post_rows(proxy, rng.normal(size=(WINDOW // 2, N_FEATURES)).astype(np.float32))

            feed_until("a first evaluation", reference_like, lambda d: d["score"], admin)
            detected = 'modelops_drift_detected{job="modelops-drift-monitor"}'
            wait_for("the scrape", lambda: query(prom, detected), 15, server)
            group = next(
                g
                for g in get_json(f"{prom}/api/v1/rules")["data"]["groups"]
                if g["name"] == "modelops.alerts"
            )
            rule = next(r for r in group["rules"] if r["name"] == "ModelDriftDetected")
            assert rule["health"] == "ok", rule
            time.sleep(2)
            assert query(prom, detected)[0]["value"][1] == "0"
            assert drift_alerts(prom) == []

            # Shifted inputs: the sidecar reports drift, the alert goes pending, then fires.
            def shifted() -> None:
                rows = rng.normal(loc=3.0, size=(WINDOW // 2, N_FEATURES))
                post_rows(proxy, rows.astype(np.float32))

            feed_until("drift in the sidecar", shifted, lambda d: d["drifted"], admin)
            states: list[str] = []

            def firing() -> bool:
                found = drift_alerts(prom)
                states.extend(a["state"] for a in found)
                return any(a["state"] == "firing" for a in found)

            wait_for("ModelDriftDetected to fire", firing, 30, server)
            assert "pending" in states, states
            (alert,) = drift_alerts(prom)
            assert alert["labels"] == {
                "alertname": "ModelDriftDetected",
                "namespace": "ml",
                "modeldeployment": "fraud",
                "model": "fraud",
                "severity": "warning",
            }
            assert alert["annotations"]["runbook_url"].endswith("#modeldriftdetected")
            assert float(query(prom, "modelops_drift_score")[0]["value"][1]) > 0.2
            # The dashboard's drift and proxy panels show data from this sidecar.
            for panel, target in dashboard_targets():
                if re.search(r"modelops_(drift|proxy)_", target["expr"]):
                    assert query(prom, dashboard_promql(target["expr"])), panel["title"]
    except AssertionError:
        for name in ("sidecar.log", "prometheus.log"):
            path = tmp_path / name
            if path.exists():
                print(f"--- {name}\n{path.read_text()[-4000:]}")
        raise
    finally:
        triton.shutdown()
        triton.server_close()

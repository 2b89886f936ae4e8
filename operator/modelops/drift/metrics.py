"""Prometheus metrics of the sidecar, in a registry of its own.

Label values never come from requests: ``model`` is the configured model
name, ``feature`` is one of the reference's features, ``method`` one of
``psi|ks|js``, ``endpoint`` one of :data:`ENDPOINTS`, ``code`` an HTTP status
and ``reason`` one of the payload skip reasons. So the number of series is
fixed at start-up, whatever clients send.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modelops.drift.detectors import METHODS, Evaluation
from modelops.drift.monitor import DriftState
from modelops.drift.payload import SKIP_REASONS

ENDPOINTS = ("infer", "health", "metadata", "config", "repository", "statistics", "other")

# Sub-millisecond buckets: the interesting question is how much the proxy adds.
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_EVAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def classify_endpoint(path: str) -> str:
    """Map a request path onto the fixed endpoint label set."""
    if not path.startswith("/v2"):
        return "other"
    if path.startswith("/v2/health/"):
        return "health"
    if path.startswith("/v2/repository"):
        return "repository"
    if path.startswith("/v2/models/"):
        if path.endswith("/infer"):
            return "infer"
        if path.endswith("/config"):
            return "config"
        if path.endswith("/stats"):
            return "statistics"
        if path.endswith("/ready"):
            return "health"
        return "metadata"
    if path in ("/v2", "/v2/"):
        return "metadata"
    if path.startswith("/v2/models/stats"):
        return "statistics"
    return "other"


class DriftMetrics:
    def __init__(self, model: str, features: Sequence[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.model = model
        self.feature_score = Gauge(
            "modelops_drift_feature_score",
            "Drift score of one feature in the last evaluated window, per method "
            "(psi: population stability index, js: Jensen-Shannon divergence base 2, "
            "ks: Kolmogorov-Smirnov statistic).",
            ["model", "feature", "method"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "modelops_drift_feature_drifted",
            "1 when the feature failed the configured test in the last evaluated window.",
            ["model", "feature"],
            registry=r,
        )
        self.detected = Gauge(
            "modelops_drift_detected",
            "1 while the model is considered drifted (after confirmation windows), else 0.",
            ["model"],
            registry=r,
        )
        self.score = Gauge(
            "modelops_drift_score",
            "Largest per-feature score of the configured method in the last evaluated window.",
            ["model"],
            registry=r,
        )
        self.drifted_ratio = Gauge(
            "modelops_drift_drifted_features_ratio",
            "Fraction of reference features that drifted in the last evaluated window.",
            ["model"],
            registry=r,
        )
        self.samples = Counter(
            "modelops_drift_samples",
            "Rows (batch elements) added to drift windows.",
            ["model"],
            registry=r,
        )
        self.dropped = Counter(
            "modelops_drift_dropped_samples",
            "Inference requests not inspected because the statistics queue was full.",
            ["model"],
            registry=r,
        )
        self.skipped = Counter(
            "modelops_drift_skipped_requests",
            "Successful inference requests whose inputs could not be read as features.",
            ["model", "reason"],
            registry=r,
        )
        self.nonfinite = Counter(
            "modelops_drift_nonfinite_values",
            "NaN or infinite feature values seen in evaluated windows (in no histogram).",
            ["model", "feature"],
            registry=r,
        )
        self.nonfinite_ratio = Gauge(
            "modelops_drift_feature_nonfinite_ratio",
            "Share of NaN/inf values of one feature in the last evaluated window; above "
            "--max-nonfinite-fraction the feature counts as drifted.",
            ["model", "feature"],
            registry=r,
        )
        self.conclusive = Gauge(
            "modelops_drift_window_conclusive",
            "1 when every feature had at least --min-finite finite values in the last "
            "evaluated window; an inconclusive window cannot clear a drifted state.",
            ["model"],
            registry=r,
        )
        self.evaluations = Counter(
            "modelops_drift_evaluations",
            "Completed window evaluations.",
            ["model"],
            registry=r,
        )
        self.eval_duration = Histogram(
            "modelops_drift_evaluation_duration_seconds",
            "Time to evaluate one window (all features, all methods).",
            ["model"],
            buckets=_EVAL_BUCKETS,
            registry=r,
        )
        self.last_eval = Gauge(
            "modelops_drift_last_evaluation_timestamp_seconds",
            "Unix time of the last window evaluation.",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "modelops_drift_queue_depth",
            "Requests waiting for the statistics worker.",
            ["model"],
            registry=r,
        )
        self.requests = Counter(
            "modelops_proxy_requests",
            "Requests proxied to Triton, by response status code and endpoint kind.",
            ["code", "endpoint"],
            registry=r,
        )
        self.rejected = Counter(
            "modelops_proxy_rejected",
            "Requests or connections refused with 503 at a capacity limit "
            "(reason: connections, buffered_bytes).",
            ["reason"],
            registry=r,
        )
        self.timeouts = Counter(
            "modelops_proxy_timeouts",
            "Client connections closed for a timeout (reason: header, body, idle, client_read).",
            ["reason"],
            registry=r,
        )
        self.connections = Gauge(
            "modelops_proxy_connections", "Open client connections.", registry=r
        )
        self.buffered_bytes = Gauge(
            "modelops_proxy_buffered_bytes",
            "Request body bytes held in memory, all connections together.",
            registry=r,
        )
        self.request_duration = Histogram(
            "modelops_proxy_request_duration_seconds",
            "Time from receiving a request to having Triton's full response, by endpoint kind.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        # Pre-create every series so dashboards see zeros, not gaps, and keep
        # the label children: .labels() costs a few microseconds per call.
        m = model
        for feat in features:
            for meth in METHODS:
                self.feature_score.labels(m, feat, meth)
            self.feature_drifted.labels(m, feat)
            self.nonfinite.labels(m, feat)
            self.nonfinite_ratio.labels(m, feat)
        for reason in SKIP_REASONS:
            self.skipped.labels(m, reason)
        self.detected_m = self.detected.labels(m)
        self.score_m = self.score.labels(m)
        self.ratio_m = self.drifted_ratio.labels(m)
        self.samples_m = self.samples.labels(m)
        self.dropped_m = self.dropped.labels(m)
        self.evaluations_m = self.evaluations.labels(m)
        self.eval_duration_m = self.eval_duration.labels(m)
        self.last_eval_m = self.last_eval.labels(m)
        self.queue_depth_m = self.queue_depth.labels(m)
        self._duration = {e: self.request_duration.labels(e) for e in ENDPOINTS}
        for reason in ("connections", "buffered_bytes"):
            self.rejected.labels(reason)
        for reason in ("header", "body", "idle", "client_read"):
            self.timeouts.labels(reason)
        self._requests: dict[tuple[int, str], Counter] = {}

    def observe_request(self, code: int, endpoint: str, seconds: float) -> None:
        child = self._requests.get((code, endpoint))
        if child is None:
            child = self._requests[(code, endpoint)] = self.requests.labels(str(code), endpoint)
        child.inc()
        self._duration[endpoint].observe(seconds)

    def observe_evaluation(self, ev: Evaluation, state: DriftState, seconds: float) -> None:
        m = self.model
        for f in ev.features:
            for meth in METHODS:
                self.feature_score.labels(m, f.name, meth).set(f.score(meth))
            self.feature_drifted.labels(m, f.name).set(1 if f.drifted else 0)
            self.nonfinite_ratio.labels(m, f.name).set(f.nonfinite_fraction)
            if f.nonfinite:
                self.nonfinite.labels(m, f.name).inc(f.nonfinite)
        self.conclusive.labels(m).set(1 if ev.conclusive else 0)
        self.detected_m.set(1 if state.drifted else 0)
        self.score_m.set(ev.score)
        self.ratio_m.set(ev.drifted_ratio)
        self.evaluations_m.inc()
        self.eval_duration_m.observe(seconds)
        if state.evaluated_at is not None:
            self.last_eval_m.set(state.evaluated_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""The operator's own Prometheus metrics (served by `modelops run --metrics-port`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from modelops.render.gating.metrics import METRICS as ROLLOUT_METRICS
from modelops.render.gating.metrics import rollout_samples

RECONCILE_DURATION = Histogram(
    "modelops_reconcile_duration_seconds",
    "Time one reconcile of a resource took: render, apply, derive and patch status.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter(
    "modelops_reconcile_errors_total",
    "Reconciles that failed, by kind and reason (the API status reason or the exception type).",
    ["kind", "reason"],
)
RESOURCE_CONDITION = Gauge(
    "modelops_resource_condition",
    "1 when the managed resource's condition has this status, else absent.",
    ["kind", "namespace", "name", "type", "status"],
)
STATUS_LAG = Histogram(
    "modelops_status_lag_seconds",
    "Time from a watched change (the object or one of its children) until the owner's "
    "reconcile has written the status that reflects it.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
WORKQUEUE_KEYS = Gauge(
    "modelops_workqueue_keys",
    "Keys in the operator's work queue: ready to run, waiting for a delay or back-off, "
    "being reconciled.",
    ["state"],
)
MANAGED_RESOURCES = Gauge(
    "modelops_managed_resources",
    "Managed resources by kind and by the status of their Ready condition.",
    ["kind", "ready"],
)
EVIDENCE_IGNORED = Counter(
    "modelops_evidence_ignored_pods_total",
    "Pods carrying a ModelDeployment's labels whose sidecar was not asked for figures, "
    "drift or loaded versions because their owner chain does not lead to one of its "
    "Deployments (each pod counted once; render/evidence.py).",
    ["namespace", "name"],
)
EVIDENCE_REFUSED = Counter(
    "modelops_evidence_refused_total",
    "Sidecar rollout figures refused because they do not add up (negative counts, agreed > "
    "compared, counters going backwards...), by reason.",
    ["namespace", "name", "reason"],
)

# What each (kind, namespace, name) last exported, so stale series are removed,
# and how many resources of each kind have each Ready status. Reconciles run
# on several threads, hence the lock; counts are kept incrementally so one
# export costs the same with 10 or 10,000 resources.
_exported: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
_ready_counts: dict[tuple[str, str], int] = {}
_lock = threading.Lock()


def export_conditions(
    kind: str, namespace: str, name: str, conditions: Iterable[Mapping[str, Any]]
) -> None:
    """Publish one resource's conditions, replacing what it published before."""
    series = [(str(c["type"]), str(c["status"])) for c in conditions]
    with _lock:
        if _exported.get((kind, namespace, name)) == series:
            return  # most reconciles change nothing: no label churn
        _drop(kind, namespace, name)
        for ctype, status in series:
            RESOURCE_CONDITION.labels(kind, namespace, name, ctype, status).set(1)
        _exported[(kind, namespace, name)] = series
        _count(kind, series, +1)


def forget(kind: str, namespace: str, name: str) -> None:
    with _lock:
        _drop(kind, namespace, name)


def _drop(kind: str, namespace: str, name: str) -> None:
    series = _exported.pop((kind, namespace, name), None)
    if series is None:
        return
    for ctype, status in series:
        RESOURCE_CONDITION.remove(kind, namespace, name, ctype, status)
    _count(kind, series, -1)


def _count(kind: str, series: list[tuple[str, str]], delta: int) -> None:
    ready = next((s for t, s in series if t == "Ready"), "Unknown")
    key = (kind, ready)
    _ready_counts[key] = _ready_counts.get(key, 0) + delta
    for status in ("True", "False", "Unknown"):
        MANAGED_RESOURCES.labels(kind, status).set(_ready_counts.get((kind, status), 0))


# Gated rollouts: gauges restating status.rollout (render/gating/metrics.py names them).
ROLLOUT_GAUGES = {
    metric: Gauge(metric, text, list(labels)) for metric, (text, labels) in ROLLOUT_METRICS.items()
}
_rollout_exported: dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]] = {}
_rollout_samples: dict[tuple[str, str], list[Any]] = {}


def export_rollout(namespace: str, name: str, rollout: Mapping[str, Any] | None) -> None:
    """Publish one ModelDeployment's rollout samples, replacing its earlier ones."""
    samples = rollout_samples(namespace, name, rollout)
    with _lock:
        if _rollout_samples.get((namespace, name)) == samples:
            return  # most reconciles change nothing
        _rollout_samples[(namespace, name)] = samples
        _drop_rollout(namespace, name)
        kept = []
        for metric, labels, value in samples:
            gauge = ROLLOUT_GAUGES[metric]
            values = tuple(labels[label] for label in ROLLOUT_METRICS[metric][1])
            gauge.labels(*values).set(value)
            kept.append((metric, values))
        _rollout_exported[(namespace, name)] = kept


def forget_rollout(namespace: str, name: str) -> None:
    with _lock:
        _rollout_samples.pop((namespace, name), None)
        _drop_rollout(namespace, name)


def _drop_rollout(namespace: str, name: str) -> None:
    for metric, values in _rollout_exported.pop((namespace, name), []):
        with contextlib.suppress(KeyError):
            ROLLOUT_GAUGES[metric].remove(*values)

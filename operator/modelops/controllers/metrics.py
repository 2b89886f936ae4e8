"""The operator's own Prometheus metrics (served by `modelops run --metrics-port`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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
MANAGED_RESOURCES = Gauge(
    "modelops_managed_resources",
    "Managed resources by kind and by the status of their Ready condition.",
    ["kind", "ready"],
)

# What each (kind, namespace, name) last exported, so stale series are removed.
_exported: dict[tuple[str, str, str], list[tuple[str, str]]] = {}


def export_conditions(
    kind: str, namespace: str, name: str, conditions: Iterable[Mapping[str, Any]]
) -> None:
    """Publish one resource's conditions, replacing what it published before."""
    forget(kind, namespace, name)
    series = [(str(c["type"]), str(c["status"])) for c in conditions]
    for ctype, status in series:
        RESOURCE_CONDITION.labels(kind, namespace, name, ctype, status).set(1)
    _exported[(kind, namespace, name)] = series
    _recount(kind)


def forget(kind: str, namespace: str, name: str) -> None:
    for ctype, status in _exported.pop((kind, namespace, name), []):
        RESOURCE_CONDITION.remove(kind, namespace, name, ctype, status)
    _recount(kind)


def _recount(kind: str) -> None:
    counts = {"True": 0, "False": 0, "Unknown": 0}
    for (k, _, _), series in _exported.items():
        if k == kind:
            ready = next((s for t, s in series if t == "Ready"), "Unknown")
            counts[ready] = counts.get(ready, 0) + 1
    for ready, count in counts.items():
        MANAGED_RESOURCES.labels(kind, ready).set(count)

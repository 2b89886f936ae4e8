"""Prometheus metric names for gated rollouts, and their samples from status.rollout.

The operator exports these (one family each, labels namespace and name of the
ModelDeployment); docs/operations.md ("Metrics") documents them, and the
ModelRolledBack alert in deploy/monitoring/prometheusrule.yaml reads
ROLLOUT_PHASE. The samples are computed from the status the operator writes,
so a metric never says something the status does not.

    modelops_rollout_phase{namespace,name,phase}       1 for the current phase, 0 for the others
    modelops_rollout_step{namespace,name}              current step index (shadow first), -1 if none
    modelops_rollout_traffic_percent{namespace,name,mode}   mode=mirror|canary: the data plane's
                                                       setting now
    modelops_rollout_requests{namespace,name,role}     role=stable|candidate: requests answered
                                                       in this analysis
    modelops_rollout_error_rate{namespace,name,role}   errors / requests
    modelops_rollout_latency_p99_seconds{namespace,name,role}
    modelops_rollout_agreement{namespace,name}         fraction of mirrored requests that agree
    modelops_rollout_mirrored_requests{namespace,name} mirrored requests compared

All are gauges: they restate status, which survives an operator restart, so a
restarted operator exports the same values at once (a counter of rollbacks
would restart from zero and hide one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api.rollout import Phase

ROLLOUT_PHASE = "modelops_rollout_phase"
ROLLOUT_STEP = "modelops_rollout_step"
ROLLOUT_TRAFFIC = "modelops_rollout_traffic_percent"
ROLLOUT_REQUESTS = "modelops_rollout_requests"
ROLLOUT_ERROR_RATE = "modelops_rollout_error_rate"
ROLLOUT_LATENCY_P99 = "modelops_rollout_latency_p99_seconds"
ROLLOUT_AGREEMENT = "modelops_rollout_agreement"
ROLLOUT_MIRRORED = "modelops_rollout_mirrored_requests"

# name -> (help text, label names); the operator registers one Gauge per entry.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    ROLLOUT_PHASE: (
        "1 for the ModelDeployment's current rollout phase (status.rollout.phase), 0 otherwise",
        ("namespace", "name", "phase"),
    ),
    ROLLOUT_STEP: (
        "Current rollout step (shadow phase first, then canary steps), -1 without a candidate",
        ("namespace", "name"),
    ),
    ROLLOUT_TRAFFIC: (
        "Percentage of requests mirrored to (mode=mirror) or answered by (mode=canary) the "
        "candidate",
        ("namespace", "name", "mode"),
    ),
    ROLLOUT_REQUESTS: (
        "Requests answered during the current analysis, by role (stable, candidate)",
        ("namespace", "name", "role"),
    ),
    ROLLOUT_ERROR_RATE: (
        "Error rate during the current analysis, by role (stable, candidate)",
        ("namespace", "name", "role"),
    ),
    ROLLOUT_LATENCY_P99: (
        "p99 latency in seconds during the current analysis, by role (stable, candidate)",
        ("namespace", "name", "role"),
    ),
    ROLLOUT_AGREEMENT: (
        "Fraction of mirrored requests whose candidate answer agrees with the stable one",
        ("namespace", "name"),
    ),
    ROLLOUT_MIRRORED: (
        "Mirrored requests whose two answers were compared",
        ("namespace", "name"),
    ),
}

PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]

Sample = tuple[str, dict[str, str], float]


def rollout_samples(namespace: str, name: str, rollout: Mapping[str, Any] | None) -> list[Sample]:
    """(metric, labels, value) for one ModelDeployment's status.rollout.

    Every phase gets a sample (1 or 0) so that `== 1` queries and alerts
    resolve cleanly when the phase moves on. Figures are only present while
    status has them; the operator should remove its old samples of a
    ModelDeployment before setting these (or when the object is deleted).
    """
    status = rollout or {}
    ident = {"namespace": namespace, "name": name}
    phase = status.get("phase") or "Idle"
    out: list[Sample] = [
        (ROLLOUT_PHASE, {**ident, "phase": p}, 1.0 if p == phase else 0.0) for p in PHASES
    ]
    step = status.get("step")
    current = float(step) if status.get("candidate") and step is not None else -1.0
    out.append((ROLLOUT_STEP, dict(ident), current))
    out.append(
        (ROLLOUT_TRAFFIC, {**ident, "mode": "mirror"}, float(status.get("mirrorPercent") or 0))
    )
    out.append(
        (ROLLOUT_TRAFFIC, {**ident, "mode": "canary"}, float(status.get("canaryWeight") or 0))
    )
    analysis = status.get("analysis") or {}
    for role in ("stable", "candidate"):
        figures = analysis.get(role) or {}
        labels = {**ident, "role": role}
        if "requests" in figures:
            out.append((ROLLOUT_REQUESTS, labels, float(figures["requests"])))
        if "errorRate" in figures:
            out.append((ROLLOUT_ERROR_RATE, dict(labels), float(figures["errorRate"])))
        if "latencyP99Seconds" in figures:
            out.append((ROLLOUT_LATENCY_P99, dict(labels), float(figures["latencyP99Seconds"])))
    if "agreement" in analysis:
        out.append((ROLLOUT_AGREEMENT, dict(ident), float(analysis["agreement"])))
    if "mirrored" in analysis:
        out.append((ROLLOUT_MIRRORED, dict(ident), float(analysis["mirrored"])))
    return out

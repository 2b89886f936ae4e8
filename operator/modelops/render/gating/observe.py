"""Pure builders of the decision's inputs from what the controller reads.

The controller lists the pods (it already does for status) and reads each
sidecar's figures; these functions turn them into CandidatePods and
ObservedFigures so the shell stays a thin loop of reads.

Per-pod figures contract (what the sidecar's admin endpoint is expected to
report per version it serves or mirrors to; keys camelCase like status):

    {"requests": int, "errors": int,
     "latencyBuckets": {"0.005": int, "0.01": int, ..., "+Inf": int},   # cumulative, seconds
     "mirrored": int, "compared": int, "agreed": int}                   # stable side only

"compared" (both answers 200 and read) is the agreement's denominator;
"mirrored" (copies sent) also counts those the candidate failed.

Counters are cumulative since the sidecar started; summing them over pods and
computing p99 from the summed buckets is exact up to the bucket resolution,
whereas averaging per-pod p99s is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..pods import container_problem, is_ready, live, pod_name, unschedulable, version
from .observed import CandidatePods, ObservedFigures, VersionFigures


def candidate_pods(
    pods: Iterable[Mapping[str, Any]],
    *,
    model_version: str,
    desired: int,
    events: Iterable[Mapping[str, Any]] = (),
    complete: bool = False,
) -> CandidatePods:
    """CandidatePods for the live pods that serve model_version (pod annotation
    modelops.io/model-version). desired: replicas the candidate Deployment asks for."""
    events = list(events)
    mine = [p for p in live(pods) if version(p) == model_version]
    waiting: tuple[str, Any] | None = None
    problem: str | None = None
    for pod in mine:
        stuck = unschedulable(pod)
        if stuck is not None:
            message, since = stuck
            # The longest wait decides whether waiting is still plausible.
            if waiting is None or (
                since is not None and (waiting[1] is None or since < waiting[1])
            ):
                waiting = (message, since)
        found = container_problem(pod, events)
        if found is not None and problem is None:
            problem = f"{found.reason}: pod {pod_name(pod)}: {found.message}"
    return CandidatePods(
        desired=desired,
        ready=sum(1 for p in mine if is_ready(p)),
        unschedulable=waiting[0] if waiting else None,
        unschedulable_since=waiting[1] if waiting else None,
        problem=problem,
        complete=complete,
    )


def histogram_quantile(q: float, buckets: Mapping[str | float, int]) -> float | None:
    """The q-quantile of a cumulative histogram {upper bound: count}, interpolated
    linearly inside the bucket as Prometheus does; None without observations. A quantile
    in the +Inf bucket is reported as the largest finite bound."""
    pairs = sorted((float(le), int(n)) for le, n in buckets.items())
    if not pairs or pairs[-1][1] == 0:
        return None
    total = pairs[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in pairs:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def merge_version(summaries: Sequence[Mapping[str, Any]]) -> VersionFigures:
    """One version's figures from its pods' summaries: counters summed, p99 from the
    summed latency buckets."""
    requests = sum(int(s.get("requests") or 0) for s in summaries)
    errors = sum(int(s.get("errors") or 0) for s in summaries)
    buckets: dict[float, int] = {}
    for s in summaries:
        for le, n in (s.get("latencyBuckets") or {}).items():
            buckets[float(le)] = buckets.get(float(le), 0) + int(n)
    return VersionFigures(requests, errors, histogram_quantile(0.99, buckets))


def merge_figures(
    stable: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]]
) -> ObservedFigures:
    """ObservedFigures from the stable pods' and the candidate pods' summaries (the
    mirrored / agreed counts come from the stable side, whose sidecar mirrors)."""
    return ObservedFigures(
        stable=merge_version(stable),
        candidate=merge_version(candidate),
        mirrored=sum(_compared(s) for s in stable),
        agreed=sum(int(s.get("agreed") or 0) for s in stable),
    )


def _compared(summary: Mapping[str, Any]) -> int:
    """Mirrored requests whose two answers were compared: the sidecar's ``compared``
    (``mirrored`` also counts copies the candidate failed, which are candidate errors,
    not disagreement); ``mirrored`` from a sidecar that does not report it."""
    value = summary.get("compared")
    return int(value if value is not None else summary.get("mirrored") or 0)

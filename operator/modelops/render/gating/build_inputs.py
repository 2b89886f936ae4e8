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
"mirrored" (copies sent) also counts those the candidate failed. On the
canary side "split" counts the calls the candidate answered and "splitErrors"
the ones it failed (answered by the stable pod instead, so also counted in
"splitFallbacks"): disjoint, so what was sent is split + splitErrors.

Counters are cumulative since the sidecar started; summing them over pods and
computing p99 from the summed buckets is exact up to the bucket resolution,
whereas averaging per-pod p99s is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..pods import container_problem, is_ready, live, pod_name, unschedulable, version
from .inputs import CandidatePods, ObservedFigures, VersionFigures
from .ledger import COUNTERS


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


Summaries = Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]

# part <= whole, for every document: (part, whole).
_SUBSETS = (
    ("agreed", "compared"),
    ("mirrorErrors", "mirrored"),
    ("mirrorTimeouts", "mirrorErrors"),
    # ``split`` counts the split calls the candidate answered, ``splitErrors`` those it
    # failed (each one then answered here: a fallback). They are disjoint, not nested.
    ("splitErrors", "splitFallbacks"),
    ("splitTimeouts", "splitErrors"),
    ("selfAgreed", "selfCompared"),
)
# In-flight mirrors a stable sidecar may have sent that its candidate has not counted yet
# when both are read (the sidecar's --mirror-max-in-flight), and the share of sent
# requests the two sides may differ by (pods replaced within a poll interval).
IN_FLIGHT_PER_POD = 16
SLACK_ABSOLUTE = 20
SLACK_RELATIVE = 0.1


def _count(summary: Mapping[str, Any], key: str) -> int:
    value = summary.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def inconsistency(summary: Mapping[str, Any]) -> str | None:
    """Why one sidecar's figures cannot be true (None when they add up): a counter that is
    not a non-negative integer, a part larger than its whole (agreed > compared, compared >
    mirrored, errors > requests, ...), a latency histogram that is not cumulative."""
    for key in COUNTERS:  # each a non-negative int when present
        value = summary.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{key} {value!r} is not a count"
    for part, whole in _SUBSETS:
        if whole == "compared" and "compared" not in summary:
            whole = "mirrored"  # an older sidecar: agreed counted against mirrored
        if whole == "splitFallbacks" and whole not in summary:
            continue  # a sidecar from before split fallbacks
        if part in summary and _count(summary, part) > _count(summary, whole):
            return f"{part} {_count(summary, part)} > {whole} {_count(summary, whole)}"
    compared = _count(summary, "compared") + _count(summary, "notCompared")
    if compared > _count(summary, "mirrored"):
        return f"compared {compared} > mirrored {_count(summary, 'mirrored')}"
    failed = _count(summary, "errors") + _count(summary, "clientErrors")
    if failed > _count(summary, "requests"):
        return f"errors {failed} > requests {_count(summary, 'requests')}"
    buckets = summary.get("latencyBuckets")
    if buckets is not None:
        if not isinstance(buckets, Mapping):
            return "latencyBuckets is not a histogram"
        try:
            pairs = sorted((float(le), n) for le, n in buckets.items())
        except (TypeError, ValueError):
            return "latencyBuckets has a bound that is not a number"
        last = 0
        for le, n in pairs:
            if not isinstance(n, int) or isinstance(n, bool) or n < last:
                return f"latencyBuckets is not cumulative at le={le:g}"
            last = n
    latency_sum = summary.get("latencySum")
    if latency_sum is not None and (
        not isinstance(latency_sum, int | float) or latency_sum < 0 or math.isnan(latency_sum)
    ):
        return f"latencySum {latency_sum!r} is not a duration"
    return None


def merge_version(summaries: Sequence[Mapping[str, Any]]) -> VersionFigures:
    """One version's figures from its pods' summaries: counters summed, p99 from the
    summed latency buckets."""
    requests = sum(_count(s, "requests") for s in summaries)
    errors = sum(_count(s, "errors") for s in summaries)
    client_errors = sum(_count(s, "clientErrors") for s in summaries)
    buckets: dict[float, int] = {}
    for s in summaries:
        for le, n in (s.get("latencyBuckets") or {}).items():
            buckets[float(le)] = buckets.get(float(le), 0) + int(n)
    return VersionFigures(
        requests,
        errors,
        histogram_quantile(0.99, buckets),
        client_errors,
        tuple(sorted(buckets.items())),
    )


def _named(summaries: Summaries) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(summaries, Mapping):
        return [(str(k), v) for k, v in summaries.items()]
    return [(f"#{i}", s) for i, s in enumerate(summaries)]


def merge_figures(
    stable: Summaries, candidate: Summaries, *, refused: Sequence[str] = ()
) -> ObservedFigures:
    """ObservedFigures from the stable pods' and the candidate pods' summaries (by pod
    name, or a plain sequence).

    Every summary must add up on its own (``inconsistency``); one that does not is
    refused: left out of every sum, its reason in ``refused``. The candidate is judged
    from both sides: its requests and errors are the larger of what its own sidecars
    counted and what the stable sidecars sent it and saw fail (5xx, resets, timeouts), so
    a candidate that resets connections before its sidecar counts them is still seen
    failing. The two sides must agree: fewer candidate requests than the stable side
    sent (less those that failed, beyond in-flight slack) means one side is wrong, and
    the figures are marked inconsistent (no verdict on them). refused: reasons found
    earlier (counters that went backwards, render/gating/ledger.py)."""
    reasons = list(refused)

    def accepted(group: Summaries, side: str) -> list[Mapping[str, Any]]:
        out = []
        for name, summary in _named(group):
            why = inconsistency(summary)
            if why is None:
                out.append(summary)
            else:
                reasons.append(f"{side} pod {name}: {why}")
        return out

    stable_ok = accepted(stable, "stable")
    cand_ok = accepted(candidate, "candidate")
    own = merge_version(cand_ok)
    # Sent to the candidate: every mirror copy (``mirrored`` includes failed ones), the
    # split calls it answered and those it failed (``split`` excludes them).
    sent = sum(
        _count(s, "mirrored") + _count(s, "split") + _count(s, "splitErrors") for s in stable_ok
    )
    failed = sum(_count(s, "mirrorErrors") + _count(s, "splitErrors") for s in stable_ok)
    timeouts = sum(_count(s, "mirrorTimeouts") + _count(s, "splitTimeouts") for s in stable_ok)
    slack = max(SLACK_ABSOLUTE + IN_FLIGHT_PER_POD * len(stable_ok), SLACK_RELATIVE * sent)
    consistent = True
    if own.requests + failed + slack < sent:
        consistent = False
        reasons.append(
            f"the candidate's pods counted {own.requests} requests but the stable side sent "
            f"it {sent} ({failed} failed): one side's figures are wrong"
        )
    seen = VersionFigures(
        requests=max(own.requests, sent),
        errors=max(own.errors, failed),
        latency_p99_s=own.latency_p99_s,
        client_errors=own.client_errors,
        latency_buckets=own.latency_buckets,
    )
    self_docs = [s for s in stable_ok if "selfCompared" in s]
    return ObservedFigures(
        stable=merge_version(stable_ok),
        candidate=seen,
        mirrored=sum(_compared(s) for s in stable_ok),
        agreed=sum(_count(s, "agreed") for s in stable_ok),
        sent=sent,
        sent_failed=failed,
        sent_timeouts=timeouts,
        split_fallbacks=sum(_count(s, "splitFallbacks") for s in stable_ok),
        breaker_trips=sum(_count(s, "breakerTrips") for s in stable_ok),
        self_compared=sum(_count(s, "selfCompared") for s in self_docs) if self_docs else None,
        self_agreed=sum(_count(s, "selfAgreed") for s in self_docs) if self_docs else None,
        refused=tuple(reasons),
        consistent=consistent,
    )


def _compared(summary: Mapping[str, Any]) -> int:
    """Mirrored requests whose two answers were compared: the sidecar's ``compared``
    (``mirrored`` also counts copies the candidate failed, which are candidate errors,
    not disagreement); ``mirrored`` from a sidecar that does not report it."""
    value = summary.get("compared")
    return _count(summary, "compared") if value is not None else _count(summary, "mirrored")

"""Per-epoch rollout figures of one sidecar: what ``GET /rollout`` reports. Pure.

One :class:`RolloutFigures` per epoch (the candidate version of the current
rollout): a new epoch starts a new object, so "since the epoch began" needs
no reset logic and a late writer of the old epoch (a comparison finishing
after the switch) only touches the old object.

Writers: the event loop writes every counter except ``compared``,
``agreed`` and ``not_compared``, which only the comparison worker thread
writes. One writer per field, so no increment is lost without a lock.

The document's keys are the contract with the operator
(:func:`modelops.render.gating.observe.merge_figures` reads ``requests``,
``errors``, ``latencyBuckets``, ``mirrored``, ``agreed``).
"""

from __future__ import annotations

import bisect
from typing import Any

# Upper bounds in seconds (Prometheus' default buckets); +Inf is implicit.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


def bound_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else format(bound, "g")


class RolloutFigures:
    __slots__ = (
        "agreed",
        "buckets",
        "compared",
        "epoch",
        "errors",
        "latency_sum",
        "mirror_dropped",
        "mirror_errors",
        "mirrored",
        "not_compared",
        "requests",
        "split",
        "split_errors",
        "split_fallbacks",
    )

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        # Answered by this sidecar's own Triton (HTTP and gRPC infer calls).
        self.requests = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)  # per bucket, not cumulative
        # Stable side: mirroring.
        self.mirrored = 0  # sent to the candidate
        self.mirror_dropped = 0  # not sent: in-flight cap, or body above the stats cap
        self.mirror_errors = 0  # candidate answered non-200, failed or timed out
        self.compared = 0  # both answered 200 and both answers could be read
        self.agreed = 0
        self.not_compared = 0  # both 200, but an answer was unreadable or too large
        # Stable side: weighted split.
        self.split = 0  # answered by the candidate
        self.split_errors = 0  # of those, non-2xx or failed
        self.split_fallbacks = 0  # candidate unreachable: answered here instead

    def observe(self, status: int, seconds: float) -> None:
        """One infer call answered by this sidecar's Triton (status 0: it failed)."""
        self.requests += 1
        if not 200 <= status < 300:
            self.errors += 1
        self.latency_sum += seconds
        self.buckets[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def cumulative_buckets(self) -> list[tuple[float, int]]:
        out, total = [], 0
        for bound, n in zip((*LATENCY_BOUNDS, float("inf")), self.buckets, strict=True):
            total += n
            out.append((bound, total))
        return out

    def document(self, *, version: str, role: str, loaded: dict[str, list[str]]) -> dict[str, Any]:
        return {
            "version": version,
            "epoch": self.epoch,
            "role": role,
            "requests": self.requests,
            "errors": self.errors,
            "latencyBuckets": {bound_label(b): n for b, n in self.cumulative_buckets()},
            "latencySum": self.latency_sum,
            "mirrored": self.mirrored,
            "agreed": self.agreed,
            "compared": self.compared,
            "notCompared": self.not_compared,
            "mirrorDropped": self.mirror_dropped,
            "mirrorErrors": self.mirror_errors,
            "split": self.split,
            "splitErrors": self.split_errors,
            "splitFallbacks": self.split_fallbacks,
            "loaded": loaded,
        }

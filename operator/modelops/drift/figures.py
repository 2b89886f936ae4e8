"""Per-epoch rollout figures of one sidecar: what ``GET /rollout`` reports. Pure.

One :class:`RolloutFigures` per epoch (the candidate version of the current
rollout): a new epoch starts a new object, so "since the epoch began" needs
no reset logic and a late writer of the old epoch (a comparison finishing
after the switch) only touches the old object.

Writers: the event loop writes every counter except ``compared``,
``agreed`` and ``not_compared``, which only the comparison worker thread
writes. One writer per field, so no increment is lost without a lock.

The document's keys are the contract with the operator
(:func:`modelops.render.gating.build_inputs.merge_figures` reads ``requests``,
``errors``, ``latencyBuckets``, ``mirrored``, ``agreed``). Issue 18 adds:

- ``sidecar``: a random id drawn at process start, so the operator can tell a
  restarted sidecar (counters back at zero) from counters going backwards;
- ``errors`` counts only what users feel: 5xx answers and calls that got no
  answer at all (reset, timeout, upstream gone: status 0); ``clientErrors``
  counts 4xx apart and does not gate. Only inference calls count (POST to
  ``/v2/models/<m>[/versions/<v>]/infer``, gRPC ModelInfer and
  ModelStreamInfer), never GETs or other paths;
- ``mirrorTimeouts`` / ``splitTimeouts``: candidate calls that got no answer in
  time (also counted in ``mirrorErrors`` / ``splitErrors``);
- ``splitFallbacks``: split calls the stable version answered because the
  candidate failed them (unreachable, 5xx, reset, timeout) or its circuit
  breaker was open; ``breakerTrips``: times the breaker opened;
- ``selfCompared`` / ``selfAgreed``: the noise floor, when the traffic file
  asks for it (``selfComparePercent``): calls sent a second time to this
  pod's own Triton and compared with the first answer by the agreement rule.
"""

from __future__ import annotations

import bisect
import secrets
from typing import Any

# One id per process start (see the module docstring).
SIDECAR_ID = secrets.token_hex(8)

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
        "breaker_trips",
        "buckets",
        "client_errors",
        "compared",
        "epoch",
        "errors",
        "latency_sum",
        "mirror_dropped",
        "mirror_errors",
        "mirror_timeouts",
        "mirrored",
        "not_compared",
        "requests",
        "self_agreed",
        "self_compared",
        "split",
        "split_errors",
        "split_fallbacks",
        "split_timeouts",
    )

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        # Answered by this sidecar's own Triton (HTTP and gRPC infer calls).
        self.requests = 0
        self.errors = 0  # 5xx, or no answer (status 0)
        self.client_errors = 0  # 4xx: reported, not gating
        self.latency_sum = 0.0
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)  # per bucket, not cumulative
        # Stable side: mirroring.
        self.mirrored = 0  # sent to the candidate
        self.mirror_dropped = 0  # not sent: in-flight cap, or body above the stats cap
        self.mirror_errors = 0  # candidate answered non-200, failed or timed out
        self.mirror_timeouts = 0  # of those, no answer within the mirror timeout
        self.compared = 0  # both answered 200 and both answers could be read
        self.agreed = 0
        self.not_compared = 0  # both 200, but an answer was unreadable or too large
        # Stable side: weighted split.
        self.split = 0  # answered by the candidate
        self.split_errors = 0  # sent, the candidate failed (5xx, reset, timeout): not in split
        self.split_timeouts = 0  # of the errors, no answer within the split timeout
        self.split_fallbacks = 0  # answered here instead (candidate failed or breaker open)
        self.breaker_trips = 0  # the candidate's circuit breaker opened
        # Noise floor: calls answered twice by this pod's own Triton, and compared.
        self.self_compared = 0
        self.self_agreed = 0

    def observe(self, status: int, seconds: float) -> None:
        """One infer call answered by this sidecar's Triton (status 0: no answer)."""
        self.requests += 1
        if status >= 500 or status < 200:
            self.errors += 1
        elif status >= 400:
            self.client_errors += 1
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
            "sidecar": SIDECAR_ID,
            "version": version,
            "epoch": self.epoch,
            "role": role,
            "requests": self.requests,
            "errors": self.errors,
            "clientErrors": self.client_errors,
            "latencyBuckets": {bound_label(b): n for b, n in self.cumulative_buckets()},
            "latencySum": self.latency_sum,
            "mirrored": self.mirrored,
            "agreed": self.agreed,
            "compared": self.compared,
            "notCompared": self.not_compared,
            "mirrorDropped": self.mirror_dropped,
            "mirrorErrors": self.mirror_errors,
            "mirrorTimeouts": self.mirror_timeouts,
            "split": self.split,
            "splitErrors": self.split_errors,
            "splitTimeouts": self.split_timeouts,
            "splitFallbacks": self.split_fallbacks,
            "breakerTrips": self.breaker_trips,
            "selfCompared": self.self_compared,
            "selfAgreed": self.self_agreed,
            "loaded": loaded,
        }

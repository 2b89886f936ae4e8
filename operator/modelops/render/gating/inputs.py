"""What the controller observes for a gated rollout: small immutable values.

The controller builds these from the data plane's figures (the sidecars count
every request per version) and from the candidate's pods; the decision
function never sees a raw object, so every scenario is one table row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class VersionFigures:
    """One version's traffic over the candidate's life (counters summed over its pods).

    requests: requests it answered (for the candidate: mirrored plus live);
    errors: those that failed (HTTP 5xx, or a gRPC status other than OK, or a
    timeout); latency_p99_s: 99th-percentile latency in seconds over the same
    window, None when not measured yet.
    """

    requests: int = 0
    errors: int = 0
    latency_p99_s: float | None = None
    # 4xx answers: the client's mistake, reported apart and never gating (a client
    # cannot move a verdict by sending bad requests).
    client_errors: int = 0
    # The latency histogram the p99 comes from: cumulative (upper bound in seconds,
    # count), +Inf last; empty when not reported. The latency gate decides on it.
    latency_buckets: tuple[tuple[float, int], ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ObservedFigures:
    """The data plane's figures for one candidate, stable and candidate side by side.

    mirrored: mirrored requests whose two answers were both received and
    compared; agreed: how many of those agreed (modelops.render.gating.agreement).
    The counters are cumulative since the candidate's pods started serving; a
    counter that went backwards (a sidecar restarted) must be fixed up by the
    reader, not here.
    """

    stable: VersionFigures = field(default_factory=VersionFigures)
    candidate: VersionFigures = field(default_factory=VersionFigures)
    mirrored: int = 0
    agreed: int = 0
    # The candidate seen from the stable side: copies and split requests sent to it, and
    # how many of those it failed (5xx, reset, timeout; timeouts also counted apart).
    sent: int = 0
    sent_failed: int = 0
    sent_timeouts: int = 0
    split_fallbacks: int = 0
    # Times a stable sidecar's circuit breaker opened on the candidate (it failed a run
    # of consecutive requests): decisive on its own, however few requests it saw.
    breaker_trips: int = 0
    # The noise floor: mirrored requests compared stable against stable; None when the
    # sidecars do not measure it.
    self_compared: int | None = None
    self_agreed: int | None = None
    # Why figures were refused (never summed): a pod's reason, or the two sides'.
    refused: tuple[str, ...] = ()
    # False when the stable and candidate sides do not add up: no verdict on them.
    consistent: bool = True
    # Pods whose sidecars did not answer in time this look (skipped, "name (why)").
    unanswered: tuple[str, ...] = ()

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.mirrored if self.mirrored else None

    @property
    def self_agreement(self) -> float | None:
        """The stable version's agreement with itself (the noise floor), when measured."""
        if not self.self_compared or self.self_agreed is None:
            return None
        return self.self_agreed / self.self_compared


@dataclass(frozen=True)
class CandidatePods:
    """The pods of the version being rolled out.

    desired: replicas its Deployment asks for now; ready: how many pass Triton's
    readiness (model loaded). unschedulable / unschedulable_since: the
    scheduler's message for a candidate pod that found no node (PodScheduled
    False, reason Unschedulable) and since when (that condition's
    lastTransitionTime). problem: a failure that will not heal by waiting
    (CrashLoopBackOff, ModelPullFailed, ImagePullBackOff, with the message
    status derivation already writes); it rolls a gated candidate back.
    complete: for strategy Direct (and a first version): every desired replica
    runs the target version and no other pod runs (DeploymentView.complete with
    the target's template).
    """

    desired: int = 0
    ready: int = 0
    unschedulable: str | None = None
    unschedulable_since: datetime | None = None
    problem: str | None = None
    complete: bool = False


@dataclass(frozen=True)
class Target:
    """The concrete version the spec asks for now, resolved once by the controller.

    version: a concrete number ("8"), never "latest" (the controller resolves
    latest from TrainingJob results or the storage listing and records it);
    source: the lineage entry's `source` (modelops.render.gating.lineage:
    source_from_training_job / pinned_source / latest_source); checksum: the
    version's manifest digest ("sha256:<hex>"), when known.
    """

    version: str
    source: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    checksum: str | None = None

"""Where a gated rollout's candidate runs: in the serving pods, or in a slot of its own. Pure.

``spec.rollout.placement: InPlace`` asks for the candidate to be loaded beside the
stable version in the Triton servers that already serve (no extra pod, no extra
GPU). That is only possible when it fits and needs nothing a running pod cannot
change. :func:`choose_placement` decides, from:

- the spec (placement, inPlace.onNoFit, inPlace.memoryHeadroomPercent);
- ``restart_needed``: why the candidate would need different pods (another runtime
  image, resources, Triton arguments), or None;
- ``candidate_bytes``: the size of the candidate version's files (its manifest);
- ``reports``: each serving pod's memory as its sidecar reports it (GPU total/used
  from Triton's metrics, the container's memory limit/usage from its cgroup).

Rules, in order: Separate when asked, or when the candidate needs new pods. The
candidate's size must be known and at least one pod must have reported, else it
cannot be checked: until the pods report the size (they stage the candidate
first) the choice is a wait, and a pod that reports it could not stage it sends the
candidate Separate. A candidate larger than half a pod's GPU memory never goes in
place (two copies would not fit during the swap). It fits when, on the tightest pod,
its size plus the headroom fits in the free GPU memory (pods with GPUs) and in the
free memory under the container's limit (pods with a limit). Otherwise
``onNoFit`` decides: Separate (with the reason) or Wait (the rollout waits; the
reason says what for).

The choice is sticky for one attempt: once a candidate started in place or
separate it stays there (:func:`sticky`), so a pod that reports a different
figure later never moves a running candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Where = Literal["InPlace", "Separate"]
IN_PLACE: Where = "InPlace"
SEPARATE: Where = "Separate"


@dataclass(frozen=True)
class PodMemory:
    """One serving pod's memory, bytes (None: not known / no limit)."""

    pod: str
    gpu_total: int | None = None
    gpu_used: int | None = None
    host_limit: int | None = None
    host_used: int | None = None

    @classmethod
    def from_report(cls, pod: str, doc: Mapping[str, Any]) -> PodMemory:
        """From a sidecar's report (``gpuTotalBytes``, ...); wrong types read as unknown."""

        def num(key: str) -> int | None:
            v = doc.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

        return cls(
            pod,
            num("gpuTotalBytes"),
            num("gpuUsedBytes"),
            num("hostLimitBytes"),
            num("hostUsedBytes"),
        )


@dataclass(frozen=True)
class PlacementChoice:
    placement: Where
    reason: str
    wait: bool = False  # onNoFit Wait and it does not fit: the candidate waits


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def choose_placement(
    requested: Where,
    *,
    on_no_fit: Literal["Separate", "Wait"] = "Separate",
    headroom_percent: int = 10,
    candidate_bytes: int | None,
    reports: list[PodMemory],
    restart_needed: str | None = None,
    agent_error: str | None = None,
) -> PlacementChoice:
    if requested == SEPARATE:
        return PlacementChoice(SEPARATE, "spec.rollout.placement is Separate")
    if agent_error and restart_needed is None:
        return PlacementChoice(
            SEPARATE, f"InPlace not possible: a serving pod could not stage it: {agent_error}"
        )
    if candidate_bytes is None and restart_needed is None:
        # The pods fetch the candidate first (traffic file "stage"): its size is known
        # once they report it; a pod that cannot is the agent_error above, and
        # progressDeadline bounds a wait for pods that never report.
        return PlacementChoice(
            IN_PLACE,
            "waiting for the serving pods to stage the candidate (its size decides the fit)",
            wait=True,
        )
    why_not = _why_not(headroom_percent, candidate_bytes, reports, restart_needed)
    if why_not is None:
        return PlacementChoice(IN_PLACE, _fits(headroom_percent, candidate_bytes, reports))
    if on_no_fit == "Wait" and restart_needed is None:
        return PlacementChoice(IN_PLACE, f"waiting to run in place: {why_not}", wait=True)
    return PlacementChoice(SEPARATE, f"InPlace not possible: {why_not}")


def _need(headroom_percent: int, candidate_bytes: int) -> int:
    return candidate_bytes + candidate_bytes * headroom_percent // 100


def _why_not(
    headroom_percent: int,
    candidate_bytes: int | None,
    reports: list[PodMemory],
    restart_needed: str | None,
) -> str | None:
    if restart_needed:
        return f"the candidate needs new pods ({restart_needed})"
    assert candidate_bytes is not None  # choose_placement waits for it first
    if not reports:
        return "no serving pod has reported its memory yet"
    need = _need(headroom_percent, candidate_bytes)
    for r in sorted(reports, key=lambda r: r.pod):
        if r.gpu_total is not None:
            if candidate_bytes * 2 > r.gpu_total:
                return (
                    f"the candidate ({_size(candidate_bytes)}) is bigger than half the GPU "
                    f"memory of pod {r.pod} ({_size(r.gpu_total)})"
                )
            free = r.gpu_total - (r.gpu_used or 0)
            if need > free:
                return (
                    f"GPU memory: pod {r.pod} has {_size(free)} free, the candidate needs "
                    f"{_size(need)} ({_size(candidate_bytes)} + {headroom_percent}% headroom)"
                )
        if r.host_limit is not None:
            free = r.host_limit - (r.host_used or 0)
            if need > free:
                return (
                    f"memory: pod {r.pod} has {_size(free)} free under its limit, the "
                    f"candidate needs {_size(need)} ({_size(candidate_bytes)} + "
                    f"{headroom_percent}% headroom)"
                )
    return None


def _fits(headroom_percent: int, candidate_bytes: int | None, reports: list[PodMemory]) -> str:
    assert candidate_bytes is not None
    need = _need(headroom_percent, candidate_bytes)
    frees = []
    for r in reports:
        if r.gpu_total is not None:
            frees.append((r.gpu_total - (r.gpu_used or 0), f"GPU memory of pod {r.pod}"))
        if r.host_limit is not None:
            frees.append((r.host_limit - (r.host_used or 0), f"memory of pod {r.pod}"))
    if not frees:
        return (
            f"fits: the candidate needs {_size(need)}; the pods report no GPU and no memory limit"
        )
    free, where = min(frees)
    return f"fits: the candidate needs {_size(need)}, {_size(free)} free in the {where}"


def sticky(
    previous: Mapping[str, Any], candidate_version: str, choice: PlacementChoice
) -> PlacementChoice:
    """The placement status recorded for this candidate, when there is one and it was
    not a wait; else ``choice``."""
    where = previous.get("placement")
    if (
        previous.get("candidate") == candidate_version
        and where in (IN_PLACE, SEPARATE)
        and not str(previous.get("placementReason") or "").startswith("waiting")
    ):
        return PlacementChoice(where, str(previous.get("placementReason") or ""))
    return choice


__all__ = [
    "IN_PLACE",
    "SEPARATE",
    "PlacementChoice",
    "PodMemory",
    "Where",
    "choose_placement",
    "sticky",
]

"""Per-sidecar baselines: cumulative counters across sidecar restarts. Pure.

A sidecar's `/rollout` counters are cumulative since *it* started, within one
epoch (one rollout attempt). When a sidecar restarts (its pod's container
restarted, or the pod was replaced) its counters start again from zero; the
requests it counted before are still real evidence, and the stable side's
`mirrored` still counts them. So the operator keeps, per pod, the last
figures of every earlier sidecar process (told apart by the document's
`sidecar` id, a random id per process start) as a *baseline*, and the pod's
effective figures are baseline + the current process's figures.

Within one sidecar id counters never go backwards: a document whose counters
did is refused (never summed; the last good figures stay) and the reason is
returned for status and an event. A document without a `sidecar` id (an older
sidecar) whose counters went backwards is taken as a restart.

Pods that went away keep their last figures until the epoch changes: their
answers happened. The ledger is the caller's to keep between polls (the
controller keeps it in memory; an operator restarted mid-analysis starts its
baselines from the next poll, and a sidecar that restarted in between loses
what it counted before, which only ever delays a verdict).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# The counters of the /rollout document (docs/rollouts.md): cumulative, summed over
# sidecar processes and pods, checked for monotonicity.
COUNTERS = (
    "requests",
    "errors",
    "clientErrors",
    "mirrored",
    "compared",
    "agreed",
    "notCompared",
    "mirrorDropped",
    "mirrorErrors",
    "mirrorTimeouts",
    "split",
    "splitErrors",
    "splitFallbacks",
    "splitTimeouts",
    "breakerTrips",
    "selfCompared",
    "selfAgreed",
)


@dataclass(frozen=True)
class PodLedger:
    """One pod's figures in one epoch: the slot its owner chain gave it, the summed last
    figures of its earlier sidecar processes, and the current process's document."""

    epoch: str
    slot: str
    sidecar: str
    current: Mapping[str, Any]
    baseline: Mapping[str, Any] = field(default_factory=dict)
    restarts: int = 0

    def effective(self) -> dict[str, Any]:
        return add(self.baseline, self.current) if self.baseline else dict(self.current)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def add(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """b's document with a's counters, latency buckets and latency sum added in."""
    out = dict(b)
    for key in COUNTERS:
        if key in a or key in b:
            out[key] = _int(a.get(key)) + _int(b.get(key))
    buckets: dict[str, int] = {}
    for doc in (a, b):
        for le, n in (doc.get("latencyBuckets") or {}).items():
            buckets[str(le)] = buckets.get(str(le), 0) + _int(n)
    if buckets:
        out["latencyBuckets"] = buckets
    sums = [d.get("latencySum") for d in (a, b) if isinstance(d.get("latencySum"), int | float)]
    if sums:
        out["latencySum"] = float(sum(sums))
    return out


def went_backwards(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first counter (or latency bucket) lower in ``new`` than in ``old``, described."""
    for key in COUNTERS:
        if _int(new.get(key)) < _int(old.get(key)):
            return f"{key} went from {_int(old.get(key))} to {_int(new.get(key))}"
    old_b = old.get("latencyBuckets") or {}
    new_b = new.get("latencyBuckets") or {}
    for le, n in old_b.items():
        if _int(new_b.get(le)) < _int(n):
            return f"latency bucket le={le} went from {_int(n)} to {_int(new_b.get(le))}"
    return None


@dataclass(frozen=True)
class Posted:
    """The ledger after one poll: per pod its ledger entry, and the refusals of this
    poll (pod name -> reason)."""

    pods: Mapping[str, PodLedger]
    refused: Mapping[str, str]

    def effective(self, epoch: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Figures by pod, and slot by pod, for one epoch."""
        figures = {n: p.effective() for n, p in self.pods.items() if p.epoch == epoch}
        slots = {n: p.slot for n, p in self.pods.items() if p.epoch == epoch}
        return figures, slots


def post(
    ledger: Mapping[str, PodLedger],
    documents: Mapping[str, Mapping[str, Any]],
    slots: Mapping[str, str],
    epoch: str,
) -> Posted:
    """Fold one poll's documents (pod name -> /rollout document, already schema-checked)
    into the ledger for ``epoch``. slots: the owner-checked slot of each pod polled.
    Entries of other epochs are dropped; documents of another epoch (a sidecar that has
    not read the new traffic settings yet) are left out."""
    kept: dict[str, PodLedger] = {n: p for n, p in ledger.items() if p.epoch == epoch}
    refused: dict[str, str] = {}
    for pod, doc in documents.items():
        if str(doc.get("epoch") or "") != epoch or pod not in slots:
            continue
        sidecar = str(doc.get("sidecar") or "")
        old = kept.get(pod)
        if old is None:
            kept[pod] = PodLedger(epoch, slots[pod], sidecar, dict(doc))
            continue
        backwards = went_backwards(old.current, doc)
        if sidecar and sidecar == old.sidecar and backwards:
            refused[pod] = f"counters went backwards within sidecar {sidecar}: {backwards}"
            continue
        if sidecar != old.sidecar or backwards:
            # A new sidecar process: what the old one counted becomes baseline.
            kept[pod] = PodLedger(
                epoch,
                slots[pod],
                sidecar,
                dict(doc),
                baseline=add(old.baseline, old.current) if old.baseline else dict(old.current),
                restarts=old.restarts + 1,
            )
            continue
        kept[pod] = replace(old, current=dict(doc), slot=slots[pod])
    return Posted(kept, refused)


__all__ = ["COUNTERS", "PodLedger", "Posted", "add", "post", "went_backwards"]

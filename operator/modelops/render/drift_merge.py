"""One drift decision over all replicas, made on their merged histograms. Pure.

Every sidecar exports cumulative sufficient statistics of the rows it saw
(`GET /drift/histograms`, modelops.drift.monitor.histograms): per feature the
counts in the *reference's* bins, the finite and non-finite value counts, and
the sum and sum of squares of ``x - center``. All of them add up across
replicas, so the sum of the replicas' new counts since the last look is
exactly the window one monitor would have seen had it received all the
traffic. The decision is made once, on that sum, with the same test the
sidecar runs (modelops.drift.detectors.evaluate): replicas are not judged one
at a time, so a shift that each replica's share of the traffic is too small
to show, but the fleet's traffic shows, is found (and N replicas fill a window
N times as fast).

False alarms: the merged stream is one monitor whose windows are numbered
from 1 in ``MergedDrift.windows``; with ``ksz`` window ``k`` gets the spent
share ``ks_alpha / (2.11 (k+1) ln(k+1)^2)`` (detectors.DetectorConfig), so a
stationary fleet raises a false alarm with probability at most ``ks_alpha``
(0.001 by default) over the whole life of this state, however many replicas
and windows. The sidecars' own per-replica decisions play no part.

Operator restarts: what the next decision needs is written into
status.drift at each decision (`windows`, the reference's digest and the
sidecars whose counts were judged) and read back by `resume`. Without it a
restarted operator would number windows from 1 again, and every restart
would hand a stationary fleet a fresh alpha budget. A resumed sidecar's
first report is its new baseline (its rows up to the last decision were
judged; those after it were pending in the lost memory and are dropped,
never counted twice).

Counters are cumulative per sidecar process (``sidecar`` id, new on every
start): the new counts of a sidecar are its counters minus those seen last
time under the same id; a new id starts from zero (everything it reports is
new); counters that go backwards under one id are refused (the sidecar is
re-based and its counts skipped). Sidecars are keyed by id, so two pods
reporting one sidecar count once; a sidecar that no pod reports for a
while (a readiness blip) is remembered, so its return adds only its new
rows (the last ``MAX_REMEMBERED`` sidecars are kept). A pod whose reference
differs from the one most replicas report is refused; when the reference
itself changes (a new reference or model version) the state starts over.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from modelops.drift.detectors import DetectorConfig, evaluate

# Far above any real reference (the sidecar bins 20 per feature), far below what
# would make one merge expensive; the client's size cap bounds the rest.
MAX_FEATURES = 4096
MAX_BINS = 4096
# Sidecars whose last counters are kept: the replicas, plus those gone for a while.
# Far above a ModelDeployment's replica count; bounds the state and status.drift.
MAX_REMEMBERED = 64
# A sidecar id as figures.SIDECAR_ID makes it (16 hex digits); status allows up to this.
MAX_SIDECAR_ID = 64
# Window numbers above this are not a real monitor's (a window a second for 30 years).
MAX_WINDOWS = 10**9


class Refused(ValueError):
    """A histograms document that cannot be merged; the message says why."""


@dataclass(frozen=True)
class RefView:
    """The reference the counts are binned against, as padded matrices."""

    names: tuple[str, ...]
    counts: np.ndarray  # [features, max_bins] int64
    mask: np.ndarray  # [features, max_bins] bool
    center: np.ndarray  # [features] reference mean
    var: np.ndarray  # [features] reference variance
    key: tuple[Any, ...]  # hashable identity, for comparing replicas

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RefView) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def digest(self) -> str:
        """A stable name of this reference (status.drift.reference), across processes."""
        return hashlib.sha256(repr(self.key).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Counters:
    """Sufficient statistics of some rows (cumulative, or a difference of two reads)."""

    rows: int
    counts: np.ndarray  # [features, max_bins] int64
    n: np.ndarray  # [features] finite values
    nonfinite: np.ndarray  # [features]
    s1: np.ndarray  # [features] sum of x - center
    s2: np.ndarray  # [features] sum of (x - center)^2

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.rows + other.rows,
            self.counts + other.counts,
            self.n + other.n,
            self.nonfinite + other.nonfinite,
            self.s1 + other.s1,
            self.s2 + other.s2,
        )

    def minus(self, earlier: Counters) -> Counters | None:
        """The rows added since ``earlier``; None when a counter went backwards."""
        d = Counters(
            self.rows - earlier.rows,
            self.counts - earlier.counts,
            self.n - earlier.n,
            self.nonfinite - earlier.nonfinite,
            self.s1 - earlier.s1,
            self.s2 - earlier.s2,
        )
        if d.rows < 0 or (d.counts < 0).any() or (d.n < 0).any() or (d.nonfinite < 0).any():
            return None
        # Rounding can leave a tiny negative sum of squares with no new rows.
        return replace(d, s2=np.maximum(d.s2, 0.0))


def _int_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise Refused(f"{what}: not a list of counts")
    return value


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Refused(f"{what}: not a count")
    return value


def _real(value: Any, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
        raise Refused(f"{what}: not a finite number")
    return float(value)


def parse(doc: Mapping[str, Any]) -> tuple[str, RefView, Counters]:
    """(sidecar id, reference, cumulative counters) of one validated document; the
    figures must add up (each row has one value per feature, each finite value is
    in one bin), or the document is refused."""
    sidecar = doc.get("sidecar")
    if not isinstance(sidecar, str) or not sidecar:
        raise Refused("no sidecar id")
    rows = _count(doc.get("rows"), "rows")
    feats = doc.get("features")
    if not isinstance(feats, list) or not 0 < len(feats) <= MAX_FEATURES:
        raise Refused("features: not a list of 1 to 4096 features")
    names, ref_bins, win_bins, center, var = [], [], [], [], []
    n, nonfinite, s1, s2 = [], [], [], []
    for i, f in enumerate(feats):
        if not isinstance(f, Mapping) or not isinstance(f.get("name"), str):
            raise Refused(f"features[{i}]: no name")
        ref = f.get("reference")
        if not isinstance(ref, Mapping):
            raise Refused(f"features[{i}].reference: missing")
        rb = _int_list(ref.get("bins"), f"features[{i}].reference.bins")
        wb = _int_list(f.get("bins"), f"features[{i}].bins")
        if not 0 < len(rb) <= MAX_BINS or len(wb) != len(rb):
            raise Refused(f"features[{i}].bins: not one count per reference bin")
        fn = _count(f.get("n"), f"features[{i}].n")
        fbad = _count(f.get("nonfinite"), f"features[{i}].nonfinite")
        if sum(wb) != fn or fn + fbad != rows:
            raise Refused(f"features[{i}]: bins, n, nonfinite and rows do not add up")
        sq = _real(f.get("sumsq"), f"features[{i}].sumsq")
        if sq < 0:
            raise Refused(f"features[{i}].sumsq: negative")
        names.append(f["name"])
        ref_bins.append(rb)
        win_bins.append(wb)
        center.append(_real(f.get("center"), f"features[{i}].center"))
        var.append(_real(ref.get("var"), f"features[{i}].reference.var"))
        n.append(fn)
        nonfinite.append(fbad)
        s1.append(_real(f.get("sum"), f"features[{i}].sum"))
        s2.append(sq)
    if len(set(names)) != len(names):
        raise Refused("features: a name appears twice")
    width = max(len(b) for b in ref_bins)
    rc = np.zeros((len(names), width), dtype=np.int64)
    wc = np.zeros_like(rc)
    mask = np.zeros(rc.shape, dtype=bool)
    for i, (rb, wb) in enumerate(zip(ref_bins, win_bins, strict=True)):
        rc[i, : len(rb)] = rb
        wc[i, : len(wb)] = wb
        mask[i, : len(rb)] = True
    key = (tuple(names), tuple(map(tuple, ref_bins)), tuple(center), tuple(var))
    view = RefView(tuple(names), rc, mask, np.array(center), np.array(var), key)
    counters = Counters(
        rows,
        wc,
        np.array(n, dtype=np.int64),
        np.array(nonfinite, dtype=np.int64),
        np.array(s1, dtype=np.float64),
        np.array(s2, dtype=np.float64),
    )
    return sidecar, view, counters


@dataclass(frozen=True)
class MergedDrift:
    """What the operator keeps between polls for one ModelDeployment."""

    reference: RefView | None = None
    seen: Mapping[str, Counters] = field(default_factory=dict)  # sidecar id -> last read
    pending: Counters | None = None  # merged new rows not yet evaluated
    pending_sidecars: frozenset[str] = frozenset()
    windows: int = 0  # merged windows evaluated (ksz spends alpha over them)
    streak: int = 0  # consecutive drifted conclusive windows
    drifted: bool = False
    since: str | None = None
    result: Mapping[str, Any] | None = None  # the last decision (status.drift's input)
    refused: Mapping[str, str] = field(default_factory=dict)  # pod -> why, last step
    # Set by `resume` until the first step: the reference digest the resumed windows
    # were judged against, and the sidecars whose first report is a baseline.
    resumed_reference: str | None = None
    rebase: frozenset[str] = frozenset()


def _zero(ref: RefView) -> Counters:
    f = len(ref.names)
    return Counters(
        0,
        np.zeros_like(ref.counts),
        np.zeros(f, np.int64),
        np.zeros(f, np.int64),
        np.zeros(f),
        np.zeros(f),
    )


def step(
    state: MergedDrift,
    documents: Mapping[str, Mapping[str, Any]],
    *,
    config: DetectorConfig,
    window: int,
    now: str,
    confirm_windows: int = 1,
) -> MergedDrift:
    """Merge the replicas' new counts into the pending window and decide once it
    holds ``window`` rows. ``documents``: pod name -> its `/drift/histograms`
    answer (only owner-checked ready pods). Applying the same documents twice adds
    nothing (their counts are no longer new). ``now``: RFC 3339, for ``since``."""
    refused: dict[str, str] = {}
    parsed: dict[str, tuple[str, RefView, Counters]] = {}
    for pod in sorted(documents):
        try:
            parsed[pod] = parse(documents[pod])
        except Refused as err:
            refused[pod] = str(err)
    if not parsed:
        return replace(state, refused=refused)
    # The reference most replicas report (ties: the one in force) is the one judged
    # against; the others are refused. A new reference starts the state over.
    votes = Counter(view for _, view, _ in parsed.values())
    top = max(votes.values())
    chosen = (
        state.reference
        if state.reference is not None and votes.get(state.reference) == top
        else next(view for view, count in votes.items() if count == top)
    )
    if state.reference is None and state.resumed_reference == chosen.digest:
        state = replace(state, reference=chosen)  # carried over an operator restart
    elif chosen != state.reference:
        state = MergedDrift(reference=chosen)
    seen = dict(state.seen)
    pending = state.pending if state.pending is not None else _zero(chosen)
    contributed = set(state.pending_sidecars)
    live: set[str] = set()
    for pod, (sidecar, view, counters) in parsed.items():
        if view != chosen:
            refused[pod] = "reports another reference than the other replicas"
            continue
        if sidecar in live:
            continue  # two pods, one sidecar: counted once
        live.add(sidecar)
        before = seen.pop(sidecar, None)
        seen[sidecar] = counters  # (re)inserted last: the most recently reported
        if before is None and sidecar in state.rebase:
            continue  # judged up to the last decision before a restart: a baseline
        new = counters if before is None else counters.minus(before)
        if new is None:
            refused[pod] = "counters went backwards without a new sidecar id"
            continue
        if new.rows:
            pending = pending + new
            contributed.add(sidecar)
    # Sidecars no pod reports now are kept while there is room (oldest report first
    # out): one that comes back after a readiness blip must not be counted again.
    for sidecar in [s for s in seen if s not in live][: max(0, len(seen) - MAX_REMEMBERED)]:
        del seen[sidecar]
    out = replace(
        state,
        seen=seen,
        pending=pending,
        pending_sidecars=frozenset(contributed),
        refused=refused,
        resumed_reference=None,
        rebase=frozenset(),
    )
    if pending.rows < window:
        return out
    return _decide(out, config, window, now, confirm_windows)


def _decide(
    state: MergedDrift, config: DetectorConfig, window: int, now: str, confirm_windows: int
) -> MergedDrift:
    ref, w = state.reference, state.pending
    assert ref is not None and w is not None
    n = w.n.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m1 = np.where(n > 0, w.s1 / n, 0.0)
        var = np.where(n > 1, (w.s2 - n * m1 * m1) / (n - 1), 0.0)
    k = state.windows + 1
    ev = evaluate(
        ref.names,
        ref.counts,
        w.counts,
        ref.mask,
        ref.center,
        ref.var,
        w.n,
        m1 + ref.center,
        np.maximum(var, 0.0),
        w.rows,
        config,
        win_nonfinite=w.nonfinite,
        min_finite=min(config.min_finite, window),
        window=k,
    )
    if ev.conclusive:
        streak = state.streak + 1 if ev.drifted else 0
        drifted = streak >= confirm_windows
        since = (state.since if state.drifted else now) if drifted else None
    else:  # too few finite values to call it clean: nothing changes
        streak, drifted, since = state.streak, state.drifted, state.since
    scores = {f.name: f.score(ev.method) for f in ev.features}
    result: dict[str, Any] = {
        "score": ev.score,
        "drifted": drifted,
        "features": {name: s for name, s in scores.items() if np.isfinite(s)},
        "method": ev.method,
        "threshold": ev.threshold,
        "samples": ev.samples,
        "replicas": len(state.pending_sidecars),
        "windows": k,
        "windowAlpha": ev.alpha,
        "driftedFeatures": ev.drifted_features,
        # What a restarted operator resumes from (status.drift; see `resume`).
        "reference": ref.digest,
        "sidecars": sorted(state.seen),
    }
    if since is not None:
        result["since"] = since
    return replace(
        state,
        pending=_zero(ref),
        pending_sidecars=frozenset(),
        windows=k,
        streak=streak,
        drifted=drifted,
        since=since,
        result=result,
    )


def resume(drift: Mapping[str, Any] | None, *, confirm_windows: int = 1) -> MergedDrift:
    """The state a restarted operator goes on from: status.drift as this module's
    decisions wrote it. Status can be edited by anyone allowed to patch it, so every
    field is checked (a bad one refuses the whole, and the caller starts over); a
    resumed state is used only while the replicas report the same reference."""
    if not drift:
        return MergedDrift()
    windows = drift.get("windows")
    reference = drift.get("reference")
    sidecars = drift.get("sidecars")
    if windows is None and reference is None and sidecars is None:
        return MergedDrift()  # written before decisions were resumable
    windows = _count(windows, "status.drift.windows")
    if windows > MAX_WINDOWS:
        raise Refused("status.drift.windows: above any real monitor's")
    if not isinstance(reference, str) or not 0 < len(reference) <= 64:
        raise Refused("status.drift.reference: not a reference digest")
    if (
        not isinstance(sidecars, list)
        or len(sidecars) > MAX_REMEMBERED
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_SIDECAR_ID for s in sidecars)
    ):
        raise Refused(f"status.drift.sidecars: not a list of at most {MAX_REMEMBERED} ids")
    drifted = drift.get("drifted") is True
    since = drift.get("since") if drifted and isinstance(drift.get("since"), str) else None
    features = drift.get("features") if isinstance(drift.get("features"), list) else []
    score = drift.get("score")
    result: dict[str, Any] = {
        "score": _real(score, "status.drift.score") if score is not None else None,
        "drifted": drifted,
        "features": {
            f["name"]: f["score"]
            for f in features
            if isinstance(f, Mapping)
            and isinstance(f.get("name"), str)
            and isinstance(f.get("score"), int | float)
        },
        "windows": windows,
        "reference": reference,
        "sidecars": sorted(sidecars),
    }
    if since is not None:
        result["since"] = since
    return MergedDrift(
        windows=windows,
        streak=confirm_windows if drifted else 0,
        drifted=drifted,
        since=since,
        result=result,
        resumed_reference=reference,
        rebase=frozenset(sidecars),
    )


def detector_config(method: str, threshold: float | None) -> DetectorConfig:
    """The sidecar's detector for a spec's method and threshold (as drift/cli.py
    builds it from the same flags the sidecar is rendered with)."""
    if threshold is None:
        return DetectorConfig(method=method)
    key = {"psi": "psi_threshold", "js": "js_threshold"}.get(method, "ks_alpha")
    return DetectorConfig(method=method, **{key: threshold})


__all__ = [
    "Counters",
    "MergedDrift",
    "RefView",
    "Refused",
    "detector_config",
    "parse",
    "resume",
    "step",
]

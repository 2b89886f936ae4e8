"""The drift monitor: windows of rows in, evaluations and a drift state out.

No I/O here. The proxy feeds rows from one background thread while the HTTP
handlers read :meth:`DriftMonitor.summary` from the event loop, so the mutable
window sits behind a lock and each published evaluation is an immutable
object swapped in whole.

Windows are tumbling: every ``window_size`` rows (a request batch that
crosses the boundary is split, so windows are exact), and/or every
``window_seconds`` once at least ``min_samples`` rows arrived. The model is
reported drifted after ``confirm_windows`` consecutive drifted windows and
stops being drifted at the first clean window; ``since`` is when the current
drifted streak was confirmed. A window that is not conclusive (some feature
has too few finite values; see :mod:`~modelops.drift.detectors`) is published
but leaves the drift state and the streak as they were: a burst of NaN rows
cannot clear a drift.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelops.drift.detectors import DetectorConfig, Evaluation, evaluate
from modelops.drift.reference import Reference
from modelops.drift.window import ReferenceLayout, WindowAccumulator

SUMMARY_SCHEMA = "modelops.drift.summary/v1"
HISTOGRAMS_SCHEMA = "modelops.drift.histograms/v1"


@dataclass(frozen=True)
class WindowConfig:
    size: int = 1000  # rows per window; 0 = time-based only
    seconds: float = 0.0  # 0 = count-based only
    min_samples: int = 100  # a time-based window with fewer rows is left to grow
    confirm_windows: int = 1

    def __post_init__(self) -> None:
        if self.size < 0 or self.seconds < 0:
            raise ValueError("window size and seconds must be >= 0")
        if self.size == 0 and self.seconds == 0:
            raise ValueError("need a window size or a window duration")
        if self.min_samples < 1 or self.confirm_windows < 1:
            raise ValueError("min_samples and confirm_windows must be >= 1")


@dataclass(frozen=True)
class DriftState:
    evaluation: Evaluation | None
    drifted: bool
    since: float | None  # unix time the current drifted streak was confirmed
    evaluated_at: float | None
    evaluations: int
    consecutive_drifted: int


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(v: float) -> float | None:
    """JSON has no NaN/Infinity: report them as null."""
    return float(v) if math.isfinite(v) else None


class DriftMonitor:
    def __init__(
        self,
        reference: Reference,
        detector: DetectorConfig,
        window: WindowConfig,
        clock: Callable[[], float] = time.time,
        on_evaluation: Callable[[Evaluation, DriftState, float], None] | None = None,
        windows_before: int = 0,
    ) -> None:
        """``windows_before``: windows this monitor's false-alarm budget was already
        spent on (``ksz``; benches use it to look at a monitor late in its life)."""
        self.reference = reference
        self.detector = detector
        self.window = window
        self._clock = clock
        self._on_evaluation = on_evaluation
        self._windows_before = windows_before
        self._layout = ReferenceLayout(reference)
        self._acc = WindowAccumulator(self._layout)
        # Sufficient statistics of every completed window since start (see histograms()).
        self._totals: list[Any] | None = None
        self._lock = threading.Lock()
        self._window_started = clock()
        self.total_samples = 0
        self._state = DriftState(None, False, None, None, 0, 0)
        # A count-based window smaller than min_finite could never be conclusive.
        size = window.size
        self._min_finite = min(detector.min_finite, size) if size else detector.min_finite

    @property
    def names(self) -> list[str]:
        return self._layout.names

    @property
    def state(self) -> DriftState:
        return self._state

    @property
    def current_samples(self) -> int:
        return self._acc.samples

    def add(self, rows: np.ndarray) -> list[Evaluation]:
        """Add [rows, features]; returns the evaluations this completed (usually none)."""
        done: list[Evaluation] = []
        n = rows.shape[0]
        with self._lock:
            size = self.window.size
            while rows.shape[0]:
                if size:
                    take = min(rows.shape[0], size - self._acc.samples)
                    self._acc.add(rows[:take])
                    rows = rows[take:]
                    if self._acc.samples >= size:
                        done.append(self._evaluate_locked())
                else:
                    self._acc.add(rows)
                    break
            # Counted last: /drift reads without the lock (from another thread
            # than the statistics worker), and must never show these rows
            # without the evaluations they completed.
            self.total_samples += n
        return done

    def tick(self) -> Evaluation | None:
        """Time-based evaluation; call periodically (cheap when nothing is due)."""
        if not self.window.seconds:
            return None
        with self._lock:
            due = self._clock() - self._window_started >= self.window.seconds
            if not due or self._acc.samples < self.window.min_samples:
                return None
            return self._evaluate_locked()

    def seconds_until_due(self) -> float:
        if not self.window.seconds:
            return math.inf
        return max(0.0, self._window_started + self.window.seconds - self._clock())

    def _evaluate_locked(self) -> Evaluation:
        t0 = time.perf_counter()
        sums = self._acc.sums()
        if self._totals is None:
            self._totals = list(sums)
        else:
            self._totals = [a + b for a, b in zip(self._totals, sums, strict=True)]
        w = self._acc.snapshot(reset=True)
        lay = self._layout
        ev = evaluate(
            lay.names,
            lay.counts,
            w.counts,
            lay.mask,
            lay.mean,
            lay.var,
            w.n,
            w.mean,
            w.var,
            w.samples,
            self.detector,
            win_nonfinite=w.nonfinite,
            min_finite=self._min_finite,
            window=self._windows_before + self._state.evaluations + 1,
        )
        now = self._clock()
        self._window_started = now
        prev = self._state
        if ev.conclusive:
            streak = prev.consecutive_drifted + 1 if ev.drifted else 0
            drifted = streak >= self.window.confirm_windows
            since = (prev.since if prev.drifted else now) if drifted else None
        else:  # too few finite values to call it clean: nothing changes
            streak, drifted, since = prev.consecutive_drifted, prev.drifted, prev.since
        self._state = DriftState(ev, drifted, since, now, prev.evaluations + 1, streak)
        if self._on_evaluation is not None:
            self._on_evaluation(ev, self._state, time.perf_counter() - t0)
        return ev

    def histograms(self, sidecar: str = "") -> dict[str, Any]:
        """Cumulative sufficient statistics since this monitor started: the input of
        a drift decision over several replicas. Counters only grow; ``sidecar``
        changes when the process restarts (counters back at zero). A reader takes
        the difference between two reads of one sidecar, sums the differences of
        all replicas bin by bin, and evaluates the sum as one window (bins are
        the reference's, so they line up; ``sum``/``sumsq`` are of ``x - center``).
        """
        with self._lock:
            current = self._acc.sums()
            totals = self._totals
            if totals is not None:
                current = tuple(a + b for a, b in zip(totals, current, strict=True))
        counts, n, nonfinite, s1, s2, rows = current
        lay = self._layout
        bins = lay.mask.sum(axis=1)
        return {
            "schema": HISTOGRAMS_SCHEMA,
            "sidecar": sidecar,
            "rows": int(rows),
            "features": [
                {
                    "name": name,
                    "center": float(lay.mean[i]),
                    "bins": counts[i, : bins[i]].tolist(),
                    "n": int(n[i]),
                    "nonfinite": int(nonfinite[i]),
                    "sum": float(s1[i]),
                    "sumsq": float(s2[i]),
                    # What the counts are judged against, so that a reader merging
                    # replicas can check they share one reference and evaluate the sum.
                    "reference": {
                        "bins": lay.counts[i, : bins[i]].tolist(),
                        "var": float(lay.var[i]),
                    },
                }
                for i, name in enumerate(lay.names)
            ],
        }

    def summary(self, model: str = "") -> dict[str, Any]:
        """The ``/drift`` document (see modelops.drift.cli for the schema)."""
        st = self._state
        ev = st.evaluation
        feats: list[dict[str, Any]] = []
        if ev is not None:
            for f in ev.features:
                feats.append(
                    {
                        "name": f.name,
                        "score": _num(f.score(ev.method)),
                        "drifted": f.drifted,
                        "psi": _num(f.psi),
                        "js": _num(f.js),
                        "ks": _num(f.ks),
                        "ks_pvalue": _num(f.ks_pvalue),
                        "z_pvalue": _num(f.z_pvalue),
                        "ksz": _num(f.ksz),
                        "mean_shift": _num(f.mean_shift),
                        "variance_ratio": _num(f.variance_ratio),
                        "n": f.n,
                        "nonfinite": f.nonfinite,
                    }
                )
        return {
            "schema": SUMMARY_SCHEMA,
            "model": model,
            "method": self.detector.method,
            "threshold": self.detector.threshold,
            # ksz: the false-alarm probability the last window was allowed (its share
            # of "threshold", which bounds false alarms over the monitor's life).
            "window_alpha": ev.alpha if ev is not None else None,
            "score": _num(ev.score) if ev is not None else None,
            "drifted": st.drifted,
            "since": _rfc3339(st.since),
            "drifted_features": ev.drifted_features if ev is not None else [],
            "drifted_features_ratio": ev.drifted_ratio if ev is not None else 0.0,
            "conclusive": ev.conclusive if ev is not None else False,
            "window": {
                "size": self.window.size,
                "seconds": self.window.seconds,
                "samples": ev.samples if ev is not None else 0,
                "current_samples": self._acc.samples,
                "evaluations": st.evaluations,
                "evaluated_at": _rfc3339(st.evaluated_at),
                "consecutive_drifted": st.consecutive_drifted,
                "confirm_windows": self.window.confirm_windows,
            },
            "samples": {"total": self.total_samples},
            "features": feats,
        }

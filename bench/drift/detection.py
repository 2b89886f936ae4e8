"""Drift detection quality and cost: our detectors next to Alibi Detect's KSDrift.

Stream: 20 features (10 normal, 5 log-normal, 5 discrete Poisson, so binning
meets skew and ties), a reference sample of 10,000 rows, tumbling windows of
1,000 rows where every request carries one row.

- False alarms: windows flagged over ``--null-windows`` stationary windows.
- Time to detect: a mean shift of k reference standard deviations in one
  normal feature starts at a window boundary; windows (and requests) until the
  first alarm, over ``--trials`` independent streams (median / worst; "miss"
  when nothing fired within ``--max-windows``).
- CPU per 1,000 requests: process time of (a) the sidecar's full statistics
  path per request (parse the binary request body, map to features, add to the
  window, evaluate when the window fills), (b) the detector alone fed one row
  at a time, (c) the detector fed whole windows; for Alibi Detect, ``predict``
  on each 1,000-row window.

Alibi Detect runs when it imports (``pip install alibi-detect``, or put an
environment holding it on PYTHONPATH); otherwise its rows are skipped with the
reason.

    python bench/drift/detection.py [--null-windows 100] [--trials 20]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import binary_infer_body

from modelops.drift.detectors import DetectorConfig
from modelops.drift.feeder import StatsFeeder
from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.payload import http_parser
from modelops.drift.reference import build_reference

N_FEATURES = 20
SHIFTED = 7  # a normal feature
WINDOW = 1000
N_REF = 10_000


def sample(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    x = np.empty((n, N_FEATURES))
    x[:, :10] = rng.normal(size=(n, 10))
    x[:, 10:15] = rng.lognormal(0.0, 0.5, size=(n, 5))
    x[:, 15:] = rng.poisson(3.0, size=(n, 5))
    x[:, SHIFTED] += shift  # feature SHIFTED is N(0, 1): the shift is in sigmas
    return x


Detector = Callable[[np.ndarray], bool]  # one window in, drifted?


def ours(method: str, ref_sample: np.ndarray, windows_before: int = 0) -> Callable[[], Detector]:
    """Our monitor; ``windows_before``: as if it had already evaluated that many windows
    (ksz spends its false-alarm budget over windows: this shows its power late in life)."""
    ref = build_reference(ref_sample, bins=20)

    def make() -> Detector:
        mon = DriftMonitor(
            ref, DetectorConfig(method), WindowConfig(size=WINDOW), windows_before=windows_before
        )

        def detect(window: np.ndarray) -> bool:
            mon.add(window)
            return mon.state.drifted

        return detect

    return make


def alibi(ref_sample: np.ndarray, p_val: float) -> Callable[[], Detector]:
    from alibi_detect.cd import KSDrift

    cd = KSDrift(ref_sample.astype(np.float32), p_val=p_val, correction="bonferroni")

    def make() -> Detector:
        def detect(window: np.ndarray) -> bool:
            return bool(cd.predict(window.astype(np.float32))["data"]["is_drift"])

        return detect

    return make


def false_alarms(make: Callable[[], Detector], windows: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    det = make()
    return sum(det(sample(rng, WINDOW)) for _ in range(windows))


def windows_to_detect(
    make: Callable[[], Detector], shift: float, trials: int, max_windows: int, seed: int
) -> list[int | None]:
    out: list[int | None] = []
    for t in range(trials):
        rng = np.random.default_rng(seed + 1000 * t)
        det = make()
        det(sample(rng, WINDOW))  # one stationary window first
        found = None
        for w in range(1, max_windows + 1):
            if det(sample(rng, WINDOW, shift)):
                found = w
                break
        out.append(found)
    return out


def cpu_full_path(ref_sample: np.ndarray, method: str, requests: int) -> float:
    """Process-CPU ms per 1,000 requests through the sidecar's statistics path."""
    ref = build_reference(ref_sample, bins=20)
    metrics = DriftMetrics("bench", ref.names)
    mon = DriftMonitor(
        ref, DetectorConfig(method), WindowConfig(size=WINDOW),
        on_evaluation=metrics.observe_evaluation,
    )  # fmt: skip
    feeder = StatsFeeder(mon, metrics)
    rng = np.random.default_rng(5)
    bodies = [binary_infer_body(r[None, :].astype(np.float32)) for r in sample(rng, 2000)]
    # As the sidecar hands them over: one parser per distinct request head, bodies
    # in batches of 16 (the worker's chunk; see modelops.drift.feeder).
    parser = http_parser(bodies[0][1], None)
    t0 = time.process_time()
    for i in range(0, requests, 16):
        feeder.process_batch(
            [(bodies[j % len(bodies)][0], parser) for j in range(i, min(i + 16, requests))]
        )
    return (time.process_time() - t0) / requests * 1000 * 1e3


def cpu_detector(ref_sample: np.ndarray, method: str, requests: int, per_row: bool) -> float:
    ref = build_reference(ref_sample, bins=20)
    mon = DriftMonitor(ref, DetectorConfig(method), WindowConfig(size=WINDOW))
    rng = np.random.default_rng(6)
    x = sample(rng, requests)
    t0 = time.process_time()
    if per_row:
        for i in range(requests):
            mon.add(x[i : i + 1])
    else:
        for i in range(0, requests, WINDOW):
            mon.add(x[i : i + WINDOW])
    return (time.process_time() - t0) / requests * 1000 * 1e3


def cpu_alibi(ref_sample: np.ndarray, requests: int, p_val: float) -> float:
    det = alibi(ref_sample, p_val)()
    x = sample(np.random.default_rng(6), requests)
    t0 = time.process_time()
    for i in range(0, requests, WINDOW):
        det(x[i : i + WINDOW])
    return (time.process_time() - t0) / requests * 1000 * 1e3


def _fmt(results: list[int | None]) -> str:
    hits = [r for r in results if r is not None]
    misses = len(results) - len(hits)
    if not hits:
        return "miss"
    s = f"{int(np.median(hits))} / {max(hits)}"
    return s + (f" ({misses} miss)" if misses else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--null-windows", type=int, default=100)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--max-windows", type=int, default=10)
    ap.add_argument("--shifts", default="0.25,0.5,1.0", help="mean shifts in sigmas")
    ap.add_argument("--cpu-requests", type=int, default=20_000)
    ap.add_argument(
        "--alibi-p-val",
        type=float,
        default=0.001,
        help="KSDrift p_val (family-wise with Bonferroni, like our --ks-alpha)",
    )
    args = ap.parse_args()
    shifts = [float(s) for s in args.shifts.split(",")]
    command = "python bench/drift/detection.py " + shlex.join(sys.argv[1:])
    ref_sample = sample(np.random.default_rng(42), N_REF)

    makers: dict[str, Callable[[], Detector]] = {
        "modelops ksz (alpha 0.001 for life; default)": ours("ksz", ref_sample),
        "modelops ksz after 10,000 windows": ours("ksz", ref_sample, 10_000),
        "modelops ksz after 1,000,000 windows": ours("ksz", ref_sample, 1_000_000),
        "modelops psi (0.2)": ours("psi", ref_sample),
        "modelops ks (alpha 0.001)": ours("ks", ref_sample),
        "modelops js (0.04)": ours("js", ref_sample),
    }
    alibi_reason = ""
    try:
        import alibi_detect

        makers[f"alibi-detect {alibi_detect.__version__} KSDrift (p {args.alibi_p_val:g})"] = alibi(
            ref_sample, args.alibi_p_val
        )
        if args.alibi_p_val != 0.05:
            makers["alibi-detect KSDrift (p 0.05, its default)"] = alibi(ref_sample, 0.05)
    except Exception as exc:  # ImportError, or its own dependencies failing
        alibi_reason = f"{type(exc).__name__}: {exc}"

    rows = []
    for name, make in makers.items():
        fa = false_alarms(make, args.null_windows, seed=7)
        ttd = [
            _fmt(windows_to_detect(make, s, args.trials, args.max_windows, seed=11)) for s in shifts
        ]
        if name.startswith("modelops ksz after"):
            cpu = "as above"
        elif name.startswith("modelops"):
            method = name.split()[1]
            cpu = (
                f"{cpu_full_path(ref_sample, method, args.cpu_requests):.1f} full / "
                f"{cpu_detector(ref_sample, method, args.cpu_requests, True):.1f} per-row / "
                f"{cpu_detector(ref_sample, method, args.cpu_requests, False):.2f} batched"
            )
        else:
            p = args.alibi_p_val if "0.05" not in name else 0.05
            cpu = f"{cpu_alibi(ref_sample, args.cpu_requests, p):.1f} batched"
        rows.append((name, f"{fa}/{args.null_windows}", *ttd, cpu))
        print(f"  done: {name}", flush=True)

    print()
    print(f"command: {command}")
    print(
        f"stream: {N_FEATURES} features (10 normal, 5 log-normal, 5 Poisson), reference "
        f"{N_REF} rows, window {WINDOW} rows = {WINDOW} one-row requests; shift in f{SHIFTED}; "
        f"{args.trials} trials per shift"
    )
    heads = ["detector", "false alarms", *(f"{s:g} sigma: windows median / worst" for s in shifts),
             "CPU ms per 1000 requests"]  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    print(" | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
    print("windows are 1000 requests each: requests to detect = windows x 1000")
    print("CPU: 'full' = read binary request bodies (batches of 16) + map + window + evaluation;")
    print("     'per-row' = detector fed one row per call; 'batched' = one call per window")
    if alibi_reason:
        print(f"alibi-detect skipped: {alibi_reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

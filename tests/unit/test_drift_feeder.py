"""The statistics worker: generic parsers, byte-bounded queue, CPU share, skip reasons."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np

from modelops.drift.detectors import DetectorConfig
from modelops.drift.feeder import StatsFeeder
from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.payload import SkipSample, http_parser
from modelops.drift.reference import build_reference

N_FEAT = 3


def _feeder(**kw: object) -> StatsFeeder:
    ref = build_reference(np.random.default_rng(0).normal(size=(500, N_FEAT)), bins=5)
    metrics = DriftMetrics("m", ref.names)
    monitor = DriftMonitor(ref, DetectorConfig("psi"), WindowConfig(size=1000))
    return StatsFeeder(monitor, metrics, **kw)  # type: ignore[arg-type]


def _body(rows: int = 2) -> bytes:
    data = np.zeros((rows, N_FEAT)).tolist()
    return json.dumps(
        {"inputs": [{"name": "X", "shape": [rows, N_FEAT], "datatype": "FP64", "data": data}]}
    ).encode()


def test_any_parser_runs_in_the_worker_thread_and_feeds_the_monitor():
    threads: list[str] = []

    def parse(payload: bytes) -> dict[str, np.ndarray]:
        threads.append(threading.current_thread().name)
        return {"x": np.frombuffer(payload, dtype="<f4").reshape(-1, N_FEAT)}

    async def main() -> None:
        f = _feeder()
        f.start()
        try:
            f.offer(np.ones((4, N_FEAT), "<f4").tobytes(), parse)
            f.offer(_body(3), http_parser(None, None))
            await f.drain()
        finally:
            await f.stop()
        assert threads == ["drift-stats"]
        assert f.monitor.total_samples == 7 and f.processed == 2 and f.pending == 0

    asyncio.run(main())


def test_skips_are_counted_with_their_reason_and_never_raised():
    def skip(_: bytes) -> dict[str, np.ndarray]:
        raise SkipSample("shape")

    def overflow(_: bytes) -> dict[str, np.ndarray]:
        raise OverflowError("too big")

    f = _feeder(max_payload_bytes=100)
    f.offer(b"x" * 101, skip)  # above the stats cap: never queued
    f.process(b"", skip)
    f.process(b"", overflow)
    assert f.skipped == {"too_large": 1, "shape": 1, "overflow": 1}
    assert f.queued == 0 and f.pending == 0
    text = f.metrics.render().decode()
    assert 'modelops_drift_skipped_requests_total{model="m",reason="too_large"} 1.0' in text


def test_queue_is_bounded_in_bytes():
    f = _feeder(max_queue_bytes=1000)  # not started: nothing consumes
    parse = http_parser(None, None)
    for _ in range(5):
        f.offer(b"x" * 400, parse)
    assert f.queued == 2 and f.queued_bytes == 800 and f.dropped == 3
    f.offer(b"x" * 200, parse)  # still fits
    assert f.queued == 3 and f.dropped == 3


def test_worker_over_its_cpu_share_drops_instead_of_queueing():
    def burn(_: bytes) -> dict[str, np.ndarray]:
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.03:
            pass
        raise SkipSample("shape")

    async def main() -> None:
        f = _feeder(cpu_share=0.05)
        f.start()
        started = time.monotonic()
        try:
            for _ in range(40):
                f.offer(b"{}", burn)
                await f.drain()
        finally:
            await f.stop()
        elapsed = time.monotonic() - started
        # 0.25 s of burst allowance, then 5% of a core for the time that passed (longer
        # on a loaded machine): what fits in that CPU runs, the rest is dropped.
        allowed = int((0.25 + 0.05 * elapsed) / 0.03) + 2
        assert f.skipped.get("shape", 0) <= allowed < 40
        assert f.dropped >= 40 - allowed

    asyncio.run(main())

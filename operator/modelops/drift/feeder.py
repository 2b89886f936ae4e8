"""Between the proxy and the monitor: a bounded queue and one background task.

The proxy hands over the body of each successful inference request *after*
the response went out (``offer`` never waits: on a full queue the request is
counted as dropped). The task turns bodies into feature rows and adds them to
the monitor.

The task runs on the event loop rather than in a thread on purpose: a
CPU-bound thread holds the GIL for up to the interpreter's 5 ms switch
interval whenever the loop wants it back, which would land directly in the
proxy's tail latency. On the loop, a request that arrives while a sample is
being parsed waits for that one sample only (tens of microseconds), and the
task yields between samples when requests are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor
from modelops.drift.payload import FeatureMapper, SkipSample, decode_body, parse_infer_request

log = logging.getLogger("modelops.drift.feeder")

Sample = tuple[bytes, int | None, str | None]  # body, Inference-Header-Content-Length, encoding


class StatsFeeder:
    def __init__(
        self,
        monitor: DriftMonitor,
        metrics: DriftMetrics,
        input_name: str | None = None,
        queue_size: int = 1024,
        sample_rate: float = 1.0,
    ) -> None:
        self.monitor = monitor
        self.metrics = metrics
        self.sample_rate = sample_rate
        self.mapper = FeatureMapper(monitor.names, input_name)
        self.queue: asyncio.Queue[Sample] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0
        self.skipped: dict[str, int] = {}
        self.processed = 0
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, body: bytes, header_length: int | None, encoding: str | None) -> None:
        """Hot path: never blocks, never raises."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        try:
            self.queue.put_nowait((body, header_length, encoding))
        except asyncio.QueueFull:
            self.dropped += 1
            self.metrics.dropped_m.inc()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume(), name="drift-stats")]
        if self.monitor.window.seconds:
            self._tasks.append(asyncio.create_task(self._ticker(), name="drift-ticker"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []

    async def drain(self) -> None:
        """Wait until everything queued so far is processed (tests, shutdown)."""
        await self.queue.join()

    def process(self, body: bytes, header_length: int | None, encoding: str | None) -> None:
        try:
            tensors = parse_infer_request(decode_body(body, encoding), header_length)
            rows = self.mapper.rows(tensors)
        except SkipSample as skip:
            self.skipped[skip.reason] = self.skipped.get(skip.reason, 0) + 1
            self.metrics.skipped.labels(self.metrics.model, skip.reason).inc()
            return
        self.monitor.add(rows)
        self.metrics.samples_m.inc(rows.shape[0])
        self.processed += 1

    async def _consume(self) -> None:
        q = self.queue
        while True:
            item = await q.get()
            try:
                self.process(*item)
            except Exception:  # a bug here must never stop the proxy
                log.exception("drift statistics failed for one request")
            finally:
                q.task_done()
            if not q.empty():
                await asyncio.sleep(0)  # let waiting requests run between samples

    async def _ticker(self) -> None:
        period = max(0.05, min(1.0, self.monitor.window.seconds / 10))
        while True:
            await asyncio.sleep(period)
            try:
                self.monitor.tick()
            except Exception:
                log.exception("time-based drift evaluation failed")

"""Between the proxy and the monitor: a queue bounded in bytes and one worker thread.

The proxy hands over each payload worth a look together with the function
that reads it (:meth:`StatsFeeder.offer`): the HTTP proxy passes a request
body and :func:`modelops.drift.payload.http_parser`; any other front end
(gRPC) passes its own bytes and parser. ``offer`` is an append to a deque on
the event loop; everything else -- decompression, JSON, numpy, binning,
window evaluation -- happens in the worker thread, so a large or hostile body
can slow the statistics but never the proxy.

The worker is not woken per payload: it polls every few milliseconds and
works through what has queued, handing the GIL back every 0.5 ms of work.
Waking a thread per request costs a dozen futex calls and a GIL hand-over
each time (measured: ~15 futex calls per request and about twice the
sidecar's CPU per request), while polling costs a wake-up per 5 ms.

Bounds, each counted when it bites (never logged per request):

- a payload above ``max_payload_bytes`` is not queued (skipped, ``too_large``);
- the queue holds at most ``max_queue_bytes`` of payloads; past that new ones
  are dropped (``modelops_drift_dropped_samples``);
- the worker may use at most ``cpu_share`` of one core, measured with its
  own thread CPU clock over a short burst allowance; past that payloads are
  dropped too. This is what keeps the proxy's share of the GIL: C code such
  as ``json.loads`` holds the GIL for its whole call, so a thread busy
  parsing large JSON bodies back to back would otherwise stall the event
  loop for as long as it works. (numpy's bulk operations release the GIL;
  binary tensors, tritonclient's default, cost little either way.)

Parse failures of any kind become skips with a reason (``SkipSample``);
the worker itself never dies of one.

The same thread runs other off-loop jobs (:meth:`StatsFeeder.run_later`: the
comparison of mirrored answers during a gated rollout). A second thread woken
per job cost about 300 us of CPU per job in wake-ups and GIL hand-overs
(bench/rollout/mirror.py), against ~60 us for the comparison itself; this
thread is awake anyway. Jobs are bounded by their producer (the mirror cap),
not by this queue, and are not charged to the statistics' CPU share.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time
from collections.abc import Callable

from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor
from modelops.drift.payload import FeatureMapper, Parser, SkipSample, guarded

log = logging.getLogger("modelops.drift.feeder")

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024
DEFAULT_CPU_SHARE = 0.5
# CPU seconds the worker may spend in one go above its share (one large JSON body).
_BURST_SECONDS = 0.25
# How often an idle worker looks at the queue.
_POLL_SECONDS = 0.005
# Worker CPU time between two explicit GIL hand-overs: the longest the event
# loop waits for the GIL because of statistics (a hand-over per payload would
# cost more in futex calls than the parsing itself).
_SLICE_SECONDS = 0.0005


class StatsFeeder:
    def __init__(
        self,
        monitor: DriftMonitor,
        metrics: DriftMetrics,
        input_name: str | None = None,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        sample_rate: float = 1.0,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        cpu_share: float = DEFAULT_CPU_SHARE,
    ) -> None:
        self.monitor = monitor
        self.metrics = metrics
        self.sample_rate = sample_rate
        self.max_queue_bytes = max_queue_bytes
        self.max_payload_bytes = max_payload_bytes
        self.cpu_share = cpu_share
        self.mapper = FeatureMapper(monitor.names, input_name)
        # deque append/popleft are atomic: no lock between the loop and the worker.
        self._queue: collections.deque[tuple[bytes, Parser]] = collections.deque()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._lock = threading.Lock()  # only for the skip counts
        self._bytes_in = 0  # written by the loop only
        self._bytes_out = 0  # written by the worker only
        self._items_in = 0
        self._items_out = 0
        self.dropped = 0
        self.skipped: dict[str, int] = {}
        self.processed = 0
        self._debt = 0.0  # CPU seconds used above the allowance, at time _debt_at
        self._debt_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.poll_seconds = _POLL_SECONDS

    # -- hot path (event loop) -----------------------------------------------------

    def offer(self, payload: bytes, parse: Parser) -> None:
        """Queue ``payload`` for ``parse`` in the worker. Never blocks, never raises.

        ``parse`` runs in the worker thread; it returns the payload's numeric
        input tensors by name and may raise :class:`SkipSample`.
        """
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        n = len(payload)
        if n > self.max_payload_bytes:
            self.skip("too_large")
            return
        if self._debt > _BURST_SECONDS and self._current_debt() > _BURST_SECONDS:
            self._drop()
            return
        if self._bytes_in - self._bytes_out + n > self.max_queue_bytes:
            self._drop()
            return
        self._bytes_in += n
        self._items_in += 1
        self._queue.append((payload, parse))

    def run_later(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the worker thread (it must not raise; it is not charged)."""
        self._jobs.append(job)

    def skip(self, reason: str) -> None:
        """Count a payload that was not looked at, with its reason (thread-safe)."""
        with self._lock:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.metrics.skipped.labels(self.metrics.model, reason).inc()

    def _drop(self) -> None:
        self.dropped += 1  # only ever written on the event loop
        self.metrics.dropped_m.inc()

    def _current_debt(self) -> float:
        return max(0.0, self._debt - (time.monotonic() - self._debt_at) * self.cpu_share)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        return self._bytes_in - self._bytes_out

    @property
    def pending(self) -> int:
        """Payloads queued or being processed."""
        return self._items_in - self._items_out

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="drift-stats", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        t = self._thread
        if t is None:
            return
        self._stopping = True
        await asyncio.get_running_loop().run_in_executor(None, t.join, 5.0)
        self._thread = None

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is processed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    # -- the worker ------------------------------------------------------------------

    def process(self, payload: bytes, parse: Parser) -> None:
        """Parse one payload and add its rows to the monitor (worker thread, or tests)."""
        try:
            rows = self.mapper.rows(guarded(parse, payload))
        except SkipSample as skip:
            self.skip(skip.reason)
            return
        self.monitor.add(rows)
        self.metrics.samples_m.inc(rows.shape[0])
        self.processed += 1

    def _work(self) -> None:
        window_seconds = self.monitor.window.seconds
        period = max(0.05, min(1.0, window_seconds / 10)) if window_seconds else None
        next_tick = time.monotonic() + period if period else None
        queue, jobs = self._queue, self._jobs
        while not self._stopping:
            if not queue and not jobs:
                time.sleep(self.poll_seconds)
            while jobs and not self._stopping:
                job = jobs.popleft()
                try:
                    job()
                except Exception:  # a bug in a job must never stop the statistics
                    log.exception("off-loop job failed")
            slice_end = time.thread_time() + _SLICE_SECONDS
            while queue and not self._stopping:
                payload, parse = queue.popleft()
                t0 = time.thread_time()
                try:
                    self.process(payload, parse)
                except Exception:  # a bug in the monitor must never stop the worker
                    self.skip("error")
                self._bytes_out += len(payload)
                self._items_out += 1
                t1 = time.thread_time()
                self._charge(t1 - t0)
                if t1 > slice_end:
                    time.sleep(0)  # hand the GIL back to the event loop
                    slice_end = time.thread_time() + _SLICE_SECONDS
            if next_tick is not None and time.monotonic() >= next_tick:
                assert period is not None
                next_tick = time.monotonic() + period
                try:
                    self.monitor.tick()
                except Exception:
                    log.exception("time-based drift evaluation failed")

    def _charge(self, seconds: float) -> None:
        now = time.monotonic()
        debt = max(0.0, self._debt - (now - self._debt_at) * self.cpu_share)
        self._debt, self._debt_at = debt + seconds, now

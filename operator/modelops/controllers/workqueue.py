"""A rate-limited, delaying work queue for asyncio, with client-go's semantics.

Watch events say *which* object needs a reconcile; the queue decides *when*:

- a key is queued at most once (ten pod events in a burst -> one reconcile);
- a key is never handed to two workers at once: added while it is being
  processed, it is queued again when the worker calls `done(key)`, so the
  next reconcile sees the newest snapshot;
- `add_after` delays a key (time-based decisions: a surge timeout, drift
  polling); of several delays the earliest wins, and a key ready now is never
  pushed back;
- `add_rate_limited` retries a failing key after base * 2**failures seconds,
  capped and jittered so a thousand keys failing together (API server down)
  do not retry in lock-step; `forget` resets the count after a success.

Time comes from an injected `Clock`, so tests step a `FakeClock`
(tests/support/clock.py) instead of sleeping. The queue is not thread-safe: call
it from the event loop (async kopf handlers), or from a thread through
`loop.call_soon_threadsafe(queue.add, key)`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("modelops.workqueue")

K = TypeVar("K", bound=Hashable)

# 2**63 seconds overflows nothing but is absurd; the exponent stops growing
# long before that so a key failing for days does not build huge floats.
_MAX_EXPONENT = 62


class Clock(Protocol):
    """Monotonic time in seconds, and a way to wait for it to pass."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: time.monotonic and asyncio.sleep (the event loop's own time base)."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ShutDown(Exception):
    """The queue was shut down: `get` hands out nothing more."""


class WorkQueue(Generic[K]):
    """Per-key deduplicating queue with delayed and rate-limited adds."""

    def __init__(
        self,
        clock: Clock,
        *,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        self._clock = clock
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._jitter = jitter
        self._rng = rng or random.Random()
        # `_dirty`: keys that need processing. A dirty key that is not being
        # processed is in `_ready` (which may also hold stale entries of keys
        # removed meanwhile: `get` skips those, so `remove` stays O(1)).
        self._ready: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        # Delayed keys: their due time, and a heap ordered by it (lazy deletion:
        # an entry whose due time no longer matches `_waiting` is skipped).
        self._waiting: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._failures: dict[K, int] = {}
        self._getters: set[asyncio.Future[None]] = set()
        self._shut_down = False

    # -- adding ---------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` now (a no-op if it is queued already)."""
        if self._shut_down:
            return
        self._waiting.pop(key, None)  # ready now is earlier than any due time
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.append(key)
            self._wake()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` once ``delay`` seconds have passed; the earliest due time wins."""
        if self._shut_down:
            return
        if delay <= 0:
            self.add(key)
            return
        if key in self._dirty:
            return  # it runs soon anyway, and that run decides its own next requeue
        due = self._clock.monotonic() + delay
        current = self._waiting.get(key)
        if current is not None and current <= due:
            return
        self._waiting[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        self._wake()  # a getter sleeping until a later due time must recompute

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` after its backoff delay (one more failure); returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = self.backoff(failures)
        self.add_after(key, delay)
        return delay

    def backoff(self, failures: int) -> float:
        """The delay after ``failures`` earlier failures: base * 2**failures, capped, jittered.

        Jitter is applied after the cap, so keys failing together keep being
        spread even once they all reached `max_delay` (by at most +-jitter of it).
        """
        delay = min(self._max_delay, self._base_delay * 2 ** min(failures, _MAX_EXPONENT))
        if self._jitter:
            delay *= 1 + self._rng.uniform(-self._jitter, self._jitter)
        return delay

    def failures(self, key: K) -> int:
        """How many times in a row ``key`` failed (rate-limited adds since the last forget)."""
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        """Reset ``key``'s failure count (it succeeded); does not dequeue it."""
        self._failures.pop(key, None)

    def remove(self, key: K) -> None:
        """Drop every trace of ``key`` (its object was deleted): queued, delayed, failures.

        A worker processing it finishes, and `done` does not queue it again.
        """
        self._dirty.discard(key)
        self._waiting.pop(key, None)
        self._failures.pop(key, None)

    # -- taking -----------------------------------------------------------------

    def get_nowait(self) -> K | None:
        """The next ready key (now marked as processing), or None when none is ready."""
        if self._shut_down:
            raise ShutDown
        self._promote_due()
        while self._ready:
            key = self._ready.popleft()
            if key in self._dirty and key not in self._processing:
                self._dirty.discard(key)
                self._processing.add(key)
                return key
        return None

    async def get(self) -> K:
        """Wait for the next ready key; the caller must call `done(key)` when finished.

        Raises ShutDown once `shutdown` is called (also while waiting).
        """
        loop = asyncio.get_running_loop()
        while True:
            key = self.get_nowait()
            if key is not None:
                return key
            woken: asyncio.Future[None] = loop.create_future()
            self._getters.add(woken)
            due = self.next_due()
            sleeper = (
                None
                if due is None
                else asyncio.ensure_future(self._clock.sleep(due - self._clock.monotonic()))
            )
            try:
                if sleeper is None:
                    await woken
                else:
                    await asyncio.wait((woken, sleeper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._getters.discard(woken)
                if sleeper is not None:
                    sleeper.cancel()

    def done(self, key: K) -> None:
        """The worker finished ``key``; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty and not self._shut_down:
            self._ready.append(key)
            self._wake()

    def shutdown(self) -> None:
        """Stop handing out keys; waiting `get` calls raise ShutDown, adds are ignored."""
        self._shut_down = True
        self._wake()

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    # -- figures ----------------------------------------------------------------

    def __len__(self) -> int:
        """Keys ready to be handed out now (not counting those being processed)."""
        self._promote_due()
        return sum(1 for key in self._dirty if key not in self._processing)

    @property
    def pending(self) -> int:
        """Keys waiting for their due time (delayed or backing off)."""
        self._promote_due()
        return len(self._waiting)

    @property
    def processing(self) -> int:
        """Keys handed to a worker and not yet `done`."""
        return len(self._processing)

    def next_due(self) -> float | None:
        """The clock time at which the earliest delayed key becomes ready (None: none waits)."""
        while self._heap:
            due, _, key = self._heap[0]
            if self._waiting.get(key) == due:
                return due
            heapq.heappop(self._heap)  # superseded or removed
        return None

    # -- internals --------------------------------------------------------------

    def _promote_due(self) -> None:
        now = self._clock.monotonic()
        while (due := self.next_due()) is not None and due <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._waiting[key]
            self.add(key)

    def _wake(self) -> None:
        # Every waiting getter re-checks; there are as many as workers (a few),
        # so waking all is cheaper than bookkeeping which one should go.
        for woken in self._getters:
            if not woken.done():
                woken.set_result(None)


Handler = Callable[[K], Awaitable[float | None]]


async def run_workers(queue: WorkQueue[K], handle: Handler[K], concurrency: int) -> None:
    """Process keys from ``queue`` with at most ``concurrency`` handlers running at once.

    ``handle(key)`` returns the delay after which the key should be handled
    again (None: only when something changes). It succeeded: the key's
    failure count is forgotten. It raised: the key is retried with backoff.
    Returns once the queue is shut down and every running handler finished.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                after = await handle(key)
            except Exception:
                delay = queue.add_rate_limited(key)
                log.exception("handling %r failed; retrying in %.1fs", key, delay)
            else:
                queue.forget(key)
                if after is not None:
                    queue.add_after(key, after)
            finally:
                queue.done(key)

    await asyncio.gather(*(worker() for _ in range(concurrency)))

"""Holding requests for one model at zero: a bounded queue with a deadline.

No I/O: the activator (activator.py) tells a Holder when the model's ready
upstreams change, and each held request waits here for one, for at most
`timeout_s`. Beyond `queue_limit` waiting requests, or past the deadline, the
request is refused (the activator answers 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field


class QueueFull(Exception):
    """More requests are already held for this model than the queue allows."""


class WakeTimeout(Exception):
    """No replica became ready within the hold timeout."""


@dataclass
class WakeTimes:
    """Monotonic times of the latest wake-up, for the bench and the logs."""

    held_at: float | None = None  # first request held while at zero
    scaled_at: float | None = None  # the Deployment was asked for a replica
    ready_at: float | None = None  # a ready endpoint was seen
    answered_at: float | None = None  # the first held request was answered

    def as_dict(self) -> dict[str, float | None]:
        """Seconds since held_at (None where not reached)."""
        start = self.held_at

        def since(t: float | None) -> float | None:
            return None if t is None or start is None else round(t - start, 3)

        return {
            "scaledAfterS": since(self.scaled_at),
            "readyAfterS": since(self.ready_at),
            "answeredAfterS": since(self.answered_at),
        }


@dataclass
class Holder:
    """The requests held for one model and where they may go."""

    queue_limit: int
    timeout_s: float
    # Requests released within this window still count as held for KEDA, so
    # that a model woken between two KEDA polls is not taken back to zero on
    # the next one (KEDA's cooldown runs from the last active poll).
    linger_s: float = 60.0
    upstreams: list[tuple[str, int]] = field(default_factory=list)
    held: int = 0
    forwarded: int = 0  # requests this activator passed to a replica
    times: WakeTimes = field(default_factory=WakeTimes)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _released: deque[float] = field(default_factory=deque)
    _next: itertools.count = field(default_factory=itertools.count)

    def set_upstreams(self, upstreams: list[tuple[str, int]], now: float | None = None) -> None:
        if upstreams and not self.upstreams and self.held and self.times.ready_at is None:
            self.times.ready_at = time.monotonic() if now is None else now
        self.upstreams = list(upstreams)
        if upstreams:
            self._changed.set()
            self._changed = asyncio.Event()

    def pick(self) -> tuple[str, int] | None:
        """A ready upstream (round robin), or None while there is none."""
        if not self.upstreams:
            return None
        return self.upstreams[next(self._next) % len(self.upstreams)]

    async def wait(self) -> tuple[str, int]:
        """An upstream for one request: at once if one is ready, else after holding.

        QueueFull when `queue_limit` requests are already held; WakeTimeout after
        `timeout_s` without a ready upstream."""
        ready = self.pick()
        if ready is not None:
            return ready
        if self.held >= self.queue_limit:
            raise QueueFull(f"{self.held} requests already held (queue limit {self.queue_limit})")
        # A new wake-up starts with the first request held after the last one ended.
        if self.times.held_at is None or (self.held == 0 and self.times.answered_at is not None):
            self.times = WakeTimes(held_at=time.monotonic())
        self.held += 1
        deadline = time.monotonic() + self.timeout_s
        try:
            while (ready := self.pick()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WakeTimeout(f"no replica ready within {self.timeout_s:g}s")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    continue
            return ready
        finally:
            self.held -= 1
            self._released.append(time.monotonic())

    def answered(self) -> None:
        self.forwarded += 1
        if self.times.held_at is not None and self.times.answered_at is None:
            self.times.answered_at = time.monotonic()

    def activity(self, now: float | None = None) -> int:
        """Held now plus released within `linger_s`: what KEDA's trigger reads."""
        now = time.monotonic() if now is None else now
        while self._released and self._released[0] < now - self.linger_s:
            self._released.popleft()
        return self.held + len(self._released)

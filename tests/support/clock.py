"""A clock that tests move by hand (satisfies modelops.controllers.workqueue.Clock).

`sleep` parks the caller until `advance` moves time past its deadline, so a
test of anything time-based (delayed adds, backoff) runs in microseconds and
steps deterministically: advance, then `await settle()` to let the woken
tasks run.
"""

from __future__ import annotations

import asyncio


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds
        still: list[tuple[float, asyncio.Future[None]]] = []
        for deadline, future in self._sleepers:
            if future.done():
                continue  # cancelled: its waiter gave up
            if deadline <= self.now:
                future.set_result(None)
            else:
                still.append((deadline, future))
        self._sleepers = still

    @property
    def sleepers(self) -> int:
        """How many callers are parked in `sleep` right now."""
        return sum(1 for _, future in self._sleepers if not future.done())


async def settle(rounds: int = 10) -> None:
    """Let every task that can run, run (a few loop iterations; no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)

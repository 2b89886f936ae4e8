"""The work queue: dedup, delays, backoff and worker concurrency, on a fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from modelops.controllers.workqueue import MonotonicClock, ShutDown, WorkQueue, run_workers
from tests.support.clock import FakeClock, settle

A = ("md", "ns", "a")
B = ("md", "ns", "b")
C = ("md", "ns", "c")


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())


def queue(clock: FakeClock | None = None, **kwargs: Any) -> WorkQueue:
    return WorkQueue(clock or FakeClock(), rng=random.Random(7), **kwargs)


def drain(q: WorkQueue) -> list:
    out = []
    while (key := q.get_nowait()) is not None:
        out.append(key)
        q.done(key)
    return out


# -- dedup and processing -----------------------------------------------------


def test_a_key_added_twice_is_handed_out_once():
    q = queue()
    q.add(A)
    q.add(B)
    q.add(A)
    assert len(q) == 2
    assert drain(q) == [A, B]
    assert q.get_nowait() is None


def test_a_key_added_while_processing_is_requeued_on_done_not_handed_out_twice():
    q = queue()
    q.add(A)
    assert q.get_nowait() == A
    q.add(A)
    q.add(A)
    assert q.get_nowait() is None  # never two workers on one key
    assert q.processing == 1
    q.done(A)
    assert q.get_nowait() == A
    q.done(A)
    assert q.get_nowait() is None


def test_done_without_a_new_add_does_not_requeue():
    q = queue()
    q.add(A)
    q.get_nowait()
    q.done(A)
    assert len(q) == 0
    assert q.get_nowait() is None


def test_keys_come_out_in_the_order_they_were_added():
    q = queue()
    for key in (C, A, B):
        q.add(key)
    assert drain(q) == [C, A, B]


# -- delays -------------------------------------------------------------------


def test_delayed_keys_become_ready_in_due_order():
    clock = FakeClock()
    q = queue(clock)
    q.add_after(A, 5)
    q.add_after(B, 1)
    q.add_after(C, 3)
    assert q.get_nowait() is None
    assert q.pending == 3
    assert q.next_due() == clock.now + 1
    clock.advance(3)
    assert drain(q) == [B, C]
    assert q.next_due() == clock.now + 2
    clock.advance(2)
    assert drain(q) == [A]
    assert q.pending == 0
    assert q.next_due() is None


def test_the_earliest_due_time_wins():
    clock = FakeClock()
    q = queue(clock)
    q.add_after(A, 10)
    q.add_after(A, 2)
    q.add_after(A, 30)
    assert q.pending == 1
    assert q.next_due() == clock.now + 2
    clock.advance(2)
    assert drain(q) == [A]
    clock.advance(60)
    assert drain(q) == []  # the later delays were not kept


def test_add_now_beats_a_pending_delay_and_cancels_it():
    clock = FakeClock()
    q = queue(clock)
    q.add_after(A, 10)
    q.add(A)
    assert q.pending == 0
    assert drain(q) == [A]
    clock.advance(10)
    assert drain(q) == []


def test_add_after_on_a_key_that_is_ready_now_is_ignored():
    clock = FakeClock()
    q = queue(clock)
    q.add(A)
    q.add_after(A, 5)
    assert q.pending == 0
    assert drain(q) == [A]
    clock.advance(5)
    assert drain(q) == []


def test_add_after_zero_is_add():
    q = queue()
    q.add_after(A, 0)
    assert drain(q) == [A]


def test_a_delayed_key_due_while_processing_waits_for_done():
    clock = FakeClock()
    q = queue(clock)
    q.add(A)
    assert q.get_nowait() == A
    q.add_after(A, 1)
    clock.advance(1)
    assert q.get_nowait() is None
    q.done(A)
    assert q.get_nowait() == A


# -- backoff ------------------------------------------------------------------


def test_backoff_doubles_per_failure_and_is_capped():
    q = queue(base_delay=0.5, max_delay=10.0, jitter=0.0)
    delays = [q.add_rate_limited(A) for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert q.failures(A) == 8


def test_backoff_jitter_stays_within_bounds_and_spreads_keys():
    q = WorkQueue(FakeClock(), base_delay=1.0, max_delay=60.0, jitter=0.2, rng=random.Random(1))
    for failures in range(12):
        nominal = min(60.0, 2.0**failures)
        samples = [q.backoff(failures) for _ in range(200)]
        assert all(nominal * 0.8 <= s <= nominal * 1.2 for s in samples)
        assert max(samples) - min(samples) > nominal * 0.2  # spread, not lock-step


def test_backoff_with_a_seeded_rng_is_reproducible():
    first = [queue(jitter=0.3).backoff(n) for n in range(5)]
    second = [queue(jitter=0.3).backoff(n) for n in range(5)]
    assert first == second


def test_failures_are_counted_per_key():
    q = queue(jitter=0.0)
    q.add_rate_limited(A)
    q.add_rate_limited(A)
    assert q.add_rate_limited(B) == 0.5
    assert (q.failures(A), q.failures(B)) == (2, 1)


def test_rate_limited_key_becomes_ready_after_its_delay():
    clock = FakeClock()
    q = queue(clock, jitter=0.0)
    q.add_rate_limited(A)
    q.add_rate_limited(A)  # the earlier (0.5 s) due time stays
    clock.advance(0.49)
    assert drain(q) == []
    clock.advance(0.01)
    assert drain(q) == [A]


def test_huge_failure_counts_do_not_overflow():
    q = queue(max_delay=300.0, jitter=0.0)
    assert q.backoff(10_000) == 300.0


def test_forget_resets_the_backoff():
    q = queue(jitter=0.0)
    for _ in range(4):
        q.add_rate_limited(A)
    q.forget(A)
    assert q.failures(A) == 0
    assert q.add_rate_limited(A) == 0.5


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        WorkQueue(FakeClock(), base_delay=0)
    with pytest.raises(ValueError):
        WorkQueue(FakeClock(), base_delay=5, max_delay=1)
    with pytest.raises(ValueError):
        WorkQueue(FakeClock(), jitter=1.0)


# -- remove -------------------------------------------------------------------


def test_remove_drops_queued_delayed_and_failure_state():
    clock = FakeClock()
    q = queue(clock, jitter=0.0)
    q.add(A)
    q.add_rate_limited(B)
    q.add_rate_limited(B)
    q.remove(A)
    q.remove(B)
    assert (len(q), q.pending, q.failures(B)) == (0, 0, 0)
    clock.advance(100)
    assert drain(q) == []


def test_remove_while_processing_is_not_requeued_on_done():
    q = queue()
    q.add(A)
    assert q.get_nowait() == A
    q.add(A)
    q.remove(A)
    q.done(A)
    assert q.get_nowait() is None


def test_a_removed_key_added_again_is_handed_out_once():
    q = queue()
    q.add(A)
    q.remove(A)
    q.add(A)
    assert drain(q) == [A]


def test_a_stale_entry_of_a_removed_key_never_hands_it_out_while_processing():
    q = queue()
    q.add(A)
    q.remove(A)
    q.add(A)  # the first entry is stale now
    assert q.get_nowait() == A
    q.add(A)  # added while processing
    assert q.get_nowait() is None
    q.done(A)
    assert drain(q) == [A]


# -- async get ------------------------------------------------------------------


def test_get_waits_for_an_add():
    async def scenario() -> None:
        q = queue()
        getter = asyncio.ensure_future(q.get())
        await settle()
        assert not getter.done()
        q.add(A)
        assert await asyncio.wait_for(getter, 1) == A

    run(scenario)


def test_get_wakes_when_the_earliest_delayed_key_is_due_on_the_fake_clock():
    async def scenario() -> None:
        clock = FakeClock()
        q = queue(clock)
        q.add_after(A, 10)
        getter = asyncio.ensure_future(q.get())
        await settle()
        assert clock.sleepers == 1
        q.add_after(B, 3)  # earlier: the getter must re-aim its sleep
        await settle()
        clock.advance(3)
        assert await asyncio.wait_for(getter, 1) == B
        q.done(B)
        getter = asyncio.ensure_future(q.get())
        clock.advance(6.9)
        await settle()
        assert not getter.done()
        clock.advance(0.1)
        assert await asyncio.wait_for(getter, 1) == A

    run(scenario)


def test_get_on_the_real_clock_wakes_for_a_short_delay():
    async def scenario() -> None:
        q: WorkQueue = WorkQueue(MonotonicClock())
        q.add_after(A, 0.05)
        assert await asyncio.wait_for(q.get(), 2) == A

    run(scenario)


def test_shutdown_wakes_waiting_getters_and_ignores_adds():
    async def scenario() -> None:
        q = queue()
        getters = [asyncio.ensure_future(q.get()) for _ in range(3)]
        await settle()
        q.shutdown()
        results = await asyncio.gather(*getters, return_exceptions=True)
        assert all(isinstance(r, ShutDown) for r in results)
        q.add(A)
        with pytest.raises(ShutDown):
            q.get_nowait()

    run(scenario)


def test_a_cancelled_getter_leaves_no_trace():
    async def scenario() -> None:
        clock = FakeClock()
        q = queue(clock)
        q.add_after(A, 5)
        getter = asyncio.ensure_future(q.get())
        await settle()
        getter.cancel()
        await settle()
        assert clock.sleepers == 0
        q.add(B)
        assert q.get_nowait() == B

    run(scenario)


# -- run_workers ------------------------------------------------------------------


def test_workers_never_exceed_the_concurrency_limit_and_never_share_a_key():
    async def scenario() -> None:
        q = queue()
        running: set = set()
        peak = 0
        handled: list = []
        release = asyncio.Event()

        async def handle(key: Any) -> None:
            nonlocal peak
            assert key not in running
            running.add(key)
            peak = max(peak, len(running))
            await release.wait()
            handled.append(key)
            running.discard(key)
            return None

        workers = asyncio.ensure_future(run_workers(q, handle, concurrency=3))
        keys = [("md", "ns", str(i)) for i in range(10)]
        for key in keys:
            q.add(key)
        await settle()
        assert len(running) == 3
        q.add(keys[0])  # being processed: queued again, not run beside itself
        release.set()
        await settle(50)
        assert peak == 3
        assert sorted(handled) == sorted([*keys, keys[0]])
        q.shutdown()
        await asyncio.wait_for(workers, 1)

    run(scenario)


def test_workers_back_off_on_errors_forget_on_success_and_honour_requeue_after():
    async def scenario() -> None:
        clock = FakeClock()
        q = queue(clock, jitter=0.0)
        calls: list[tuple[Any, float]] = []
        outcomes = {A: [RuntimeError("boom"), RuntimeError("boom"), None], B: [30.0, None]}

        async def handle(key: Any) -> float | None:
            calls.append((key, clock.now - 1000.0))
            outcome = outcomes[key].pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        workers = asyncio.ensure_future(run_workers(q, handle, concurrency=2))
        q.add(A)
        q.add(B)
        await settle()
        assert q.failures(A) == 1
        clock.advance(0.5)  # first retry after base_delay
        await settle()
        assert q.failures(A) == 2
        clock.advance(1.0)  # second retry after 2 * base_delay; then success
        await settle()
        assert q.failures(A) == 0
        clock.advance(28.5)  # B asked to be handled again 30 s after its first run
        await settle()
        assert calls == [(A, 0.0), (B, 0.0), (A, 0.5), (A, 1.5), (B, 30.0)]
        q.shutdown()
        await asyncio.wait_for(workers, 1)

    run(scenario)


def test_run_workers_refuses_zero_concurrency():
    async def handle(key: Any) -> None:
        return None

    with pytest.raises(ValueError):
        run(lambda: run_workers(queue(), handle, 0))


def test_shutdown_lets_running_handlers_finish():
    async def scenario() -> None:
        q = queue()
        release = asyncio.Event()
        finished: list = []

        async def handle(key: Any) -> None:
            await release.wait()
            finished.append(key)

        workers = asyncio.ensure_future(run_workers(q, handle, concurrency=2))
        q.add(A)
        await settle()
        q.shutdown()
        await settle()
        assert not workers.done()
        release.set()
        await asyncio.wait_for(workers, 1)
        assert finished == [A]

    run(scenario)

"""The operator's run loop (controllers/operator.py) with stand-in controllers: keys
wait at their kind's barrier, a standby reconciles nothing, and a refused
(fenced) write stops the worker instead of being retried."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from modelops.controllers.md_reconcile import Result
from modelops.controllers.operator import Operator
from modelops.controllers.stores import Change
from modelops.controllers.workqueue import MonotonicClock, WorkQueue
from modelops.kube.errors import NotLeader


@dataclass
class Controller:
    """Records reconciles; raises what ``fail_with`` says."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None
    # What a ModelDeployment controller polls in the background: nothing here.
    sidecars: None = None
    store: None = None

    def reconcile(self, key: tuple[str, str]) -> Result:
        self.seen.append(key)
        if self.fail_with is not None:
            raise self.fail_with
        return Result()

    def known_keys(self) -> list[tuple[str, str]]:
        return []

    def forget(self, key: Any) -> None:
        pass

    def delivered(self, key: Any, version: Any) -> bool:
        return False

    def model_deployment_of(self, key: Any) -> None:
        return None


class Barriers:
    """Stands in for the informers: one event per set of stores."""

    def __init__(self) -> None:
        self.listed: dict[frozenset[str], asyncio.Event] = {}

    def event(self, names: frozenset[str]) -> asyncio.Event:
        return self.listed.setdefault(frozenset(names), asyncio.Event())

    async def wait_synced(self, names: Any) -> None:
        await self.event(frozenset(names)).wait()

    def stop(self) -> None:
        pass


class Elector:
    def __init__(self) -> None:
        self.leading = asyncio.Event()


def operator(md: Controller, tj: Controller, barriers: Barriers | None = None) -> Operator:
    return Operator(
        md=md,  # type: ignore[arg-type]
        tj=tj,  # type: ignore[arg-type]
        queue=WorkQueue(MonotonicClock()),
        concurrency=2,
        informers=barriers,  # type: ignore[arg-type]
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_keys_wait_for_their_own_kinds_stores_only():
    asyncio.run(_barriers())


async def _barriers() -> None:
    from modelops.controllers.indexes import MD_STORES, TJ_STORES

    md, tj, barriers = Controller(), Controller(), Barriers()
    op = operator(md, tj, barriers)
    run = asyncio.create_task(op.run())
    op.on_changes("md_index", [Change(("ml", "a"), "ADDED", "1")])
    op.on_changes("tj_index", [Change(("ml", "t"), "ADDED", "2")])
    barriers.event(TJ_STORES).set()
    await settle()
    assert tj.seen == [("ml", "t")] and md.seen == []  # the md key is parked
    barriers.event(MD_STORES).set()
    await settle()
    assert md.seen == [("ml", "a")]
    op.stop()
    run.cancel()


def test_a_standby_reconciles_nothing_until_it_leads():
    asyncio.run(_standby())


async def _standby() -> None:
    md, tj = Controller(), Controller()
    op = operator(md, tj)
    op.elector = Elector()  # type: ignore[assignment]
    run = asyncio.create_task(op.run())
    op.on_changes("md_index", [Change(("ml", "a"), "ADDED", "1")])
    await settle()
    assert md.seen == []
    op.elector.leading.set()
    await settle()
    assert md.seen == [("ml", "a")]
    op.stop()
    run.cancel()


def test_a_fenced_write_stops_the_worker_without_a_retry():
    asyncio.run(_fenced())


async def _fenced() -> None:
    md, tj = Controller(fail_with=NotLeader("lost the Lease")), Controller()
    op = operator(md, tj)
    run = asyncio.create_task(op.run())
    op.on_changes("md_index", [Change(("ml", "a"), "ADDED", "1")])
    await settle()
    assert md.seen == [("ml", "a")]
    assert op.queue.pending == 0 and len(op.queue) == 0  # not queued again with back-off
    op.stop()
    run.cancel()

"""Leader election on a coordination.k8s.io/v1 Lease, and the write fence.

The decisions are render/lease.py's (pure); this is the loop that reads and
writes the Lease every retry period, on the event loop with the requests on
a thread (the kubernetes client is synchronous). Lease requests go through
their own executor, never the reconcile pool: a reconcile storm must not
delay the renewal that keeps this replica the leader.

`check` is the fence `Kube` calls before every write (from any thread): it
raises NotLeader unless this replica's last successful renewal was *sent*
less than the renew deadline ago. Losing the lease (the deadline passed
without a renewal, or the Lease names another holder) closes the fence at
once and calls ``on_lost``; the operator then stops (see controllers/operator.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from modelops.kube.errors import Conflict, Forbidden, KubeError, NotLeader
from modelops.render import lease as decisions
from modelops.render.lease import LeaseConfig, Observation, Record

log = logging.getLogger("modelops.leader")

# Read-and-replace tries of the release on shutdown (each one a GET and a PUT).
RELEASE_ATTEMPTS = 3


class LeaseApi(Protocol):
    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_lease(self, lease: Mapping[str, Any]) -> dict[str, Any]: ...

    def replace_lease(self, lease: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass
class LeaderElector:
    api: LeaseApi
    namespace: str
    name: str
    identity: str
    config: LeaseConfig = field(default_factory=LeaseConfig)
    on_lost: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rng: random.Random = field(default_factory=random.Random)
    # The Lease's ownerReference (the replicas' ServiceAccount, see
    # render/lease.py service_account_owner); None keeps what the Lease has.
    owner: Mapping[str, Any] | None = None
    leading: asyncio.Event = field(default_factory=asyncio.Event)
    # Monotonic time at which the last successful renewal was sent (None: not leader).
    renewed_at: float | None = None
    _observed: Observation | None = None
    _lost: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lease")
    )

    # -- the fence (any thread) -----------------------------------------------------------

    def check(self) -> None:
        with self._lock:
            renewed_at = self.renewed_at
        if not decisions.may_write(renewed_at, self.clock(), self.config):
            raise NotLeader(f"{self.identity} does not hold the Lease {self.namespace}/{self.name}")

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set() and not self._lost

    # -- the loop (event loop) ----------------------------------------------------------------

    async def run(self) -> None:
        """Try to acquire, then renew, every retry period, until the lease is lost."""
        log.info(
            "leader election on Lease %s/%s as %s (lease %.0fs, renew %.0fs, retry %.0fs)",
            self.namespace,
            self.name,
            self.identity,
            self.config.lease_duration_s,
            self.config.renew_deadline_s,
            self.config.retry_period_s,
        )
        while not self._lost:
            await self.step()
            if self._lost:
                return
            # client-go's jitter on the candidates' retries (not the leader's).
            jitter = 0.0 if self.leading.is_set() else self.rng.uniform(0, 0.2)
            await asyncio.sleep(self.config.retry_period_s * (1 + jitter))

    async def step(self) -> None:
        """One look at the Lease: acquire or renew it if the rules allow."""
        loop = asyncio.get_running_loop()
        try:
            lease = await loop.run_in_executor(
                self._pool, self.api.get_lease, self.namespace, self.name
            )
            record = Record.of(lease) if lease is not None else None
            self._observed = decisions.observe(self._observed, record, self.clock())
            if self.leading.is_set() and record is not None and record.holder != self.identity:
                self._lose(f"the Lease is held by {record.holder or 'nobody'} now")
                return
            decision = decisions.decide(
                self._observed, self.identity, self.clock(), self.wall(), self.config
            )
            if decision.action != "wait" and decision.spec is not None:
                body = decisions.lease_object(
                    self.namespace,
                    self.name,
                    decision.spec,
                    record.resource_version if record else None,
                    decisions.lease_owners(self.owner, lease),
                )
                write = (
                    self.api.create_lease if decision.action == "create" else self.api.replace_lease
                )
                sent = self.clock()
                written = await loop.run_in_executor(self._pool, write, body)
                with self._lock:
                    self.renewed_at = sent
                self._observed = decisions.observe(self._observed, Record.of(written), sent)
                if not self.leading.is_set():
                    log.info(
                        "%s acquired the Lease %s/%s", self.identity, self.namespace, self.name
                    )
                    self.leading.set()
        except Conflict:
            pass  # another replica wrote first (created, renewed or took it): look again
        except Forbidden as err:
            if self.owner is None:
                log.warning("Lease %s/%s: %s", self.namespace, self.name, err)
            else:
                # With OwnerReferencesPermissionEnforcement, setting an owner needs
                # delete on the Lease (the chart's Role has it; an older Role may
                # not): lead without the owner rather than not at all.
                log.warning(
                    "Lease %s/%s: writing it with its owner was refused (%s); going on without",
                    self.namespace,
                    self.name,
                    err,
                )
                self.owner = None
        except KubeError as err:
            log.warning("Lease %s/%s: %s", self.namespace, self.name, err)
        if self.leading.is_set() and not decisions.may_write(
            self.renewed_at, self.clock(), self.config
        ):
            self._lose("no renewal within the renew deadline")

    def _lose(self, why: str) -> None:
        with self._lock:
            self.renewed_at = None  # the fence closes before anything else
        self._lost = True
        log.error("%s lost the Lease %s/%s: %s", self.identity, self.namespace, self.name, why)
        self.on_lost()

    async def release(self) -> None:
        """Hand the lease back on a clean shutdown (after the last write).

        The Lease is read again first, on the Lease executor: a renewal that the
        cancelled loop still had in flight there changes its resourceVersion
        after it ran, and a release built on the record seen before was refused
        (409 Conflict), which left the standby to wait out the whole lease.
        """
        if not self.is_leader:
            return
        with self._lock:
            self.renewed_at = None
        loop = asyncio.get_running_loop()
        for _ in range(RELEASE_ATTEMPTS):
            try:
                released = await loop.run_in_executor(self._pool, self._release_now)
            except Conflict:
                continue  # written between this read and this write: read again
            except KubeError as err:
                log.warning("could not release the Lease: %s", err)
                return
            if released:
                log.info("%s released the Lease %s/%s", self.identity, self.namespace, self.name)
            return
        log.warning("could not release the Lease: it changed under every attempt")

    def _release_now(self) -> bool:
        """Read the Lease and hand it back if this replica holds it (Lease executor)."""
        lease = self.api.get_lease(self.namespace, self.name)
        if lease is None:
            return False
        record = Record.of(lease)
        spec = decisions.released(record, self.identity, self.wall())
        if spec is None:
            return False  # someone else holds it: nothing of ours to hand back
        body = decisions.lease_object(
            self.namespace,
            self.name,
            spec,
            record.resource_version,
            decisions.lease_owners(self.owner, lease),
        )
        self.api.replace_lease(body)
        return True

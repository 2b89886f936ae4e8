"""Process-wide state of a running operator: the API client, the reconcilers,
kopf's indexes (captured at startup) and a small requeue scheduler.

kopf calls handlers when something changes; some decisions also depend on
time passing (a surge pod unschedulable for longer than its timeout, drift
polled from the sidecars). Those reconciles are requeued here, in memory,
rather than through kopf timers, which would put a finalizer on every
ModelDeployment and block its deletion whenever the operator is down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelops.controllers import metrics
from modelops.kube import Kube

log = logging.getLogger("modelops.runtime")

Key = tuple[str, str]
REQUEUE_AFTER_FAILURE_S = 30.0


@dataclass
class Runtime:
    kube: Kube = field(default=None)  # type: ignore[assignment]
    md: Any = None  # ModelDeploymentReconciler, set at startup
    tj: Any = None  # TrainingJobReconciler, set at startup
    indices: Mapping[str, Any] = field(default_factory=dict)
    _due: dict[tuple[str, Key], float] = field(default_factory=dict)
    _due_lock: threading.Lock = field(default_factory=threading.Lock)
    _running: set[tuple[str, Key]] = field(default_factory=set)
    _dirty: set[tuple[str, Key]] = field(default_factory=set)

    # -- index reads -------------------------------------------------------------

    def _one(self, index: str, key: Key) -> Mapping[str, Any] | None:
        store = self.indices.get(index, {}).get(key)
        return next(iter(store), None) if store else None

    def _all(self, index: str, key: Key) -> list[Mapping[str, Any]]:
        store = self.indices.get(index, {}).get(key)
        return list(store) if store else []

    def md_keys(self) -> list[Key]:
        return list(self.indices.get("md_index", {}).keys())

    # -- reconcile entry points ------------------------------------------------------

    def coalesced(self, kind: str, key: Key, reconcile: Callable[[Key], None]) -> None:
        """Run ``reconcile(key)`` unless one is already running for this key.

        A burst of child events (every pod and Deployment status change of a
        rollout) would otherwise queue one full reconcile each behind the
        per-object lock. Instead the running reconcile is marked dirty and
        runs once more with the newest snapshot when it finishes.
        """
        with self._due_lock:
            if (kind, key) in self._running:
                self._dirty.add((kind, key))
                return
            self._running.add((kind, key))
        try:
            while True:
                reconcile(key)
                with self._due_lock:
                    if (kind, key) not in self._dirty:
                        return
                    self._dirty.discard((kind, key))
        finally:
            with self._due_lock:
                self._running.discard((kind, key))
                self._dirty.discard((kind, key))

    def reconcile_md(self, key: Key) -> None:
        self.coalesced("md", key, self._reconcile_md)

    def reconcile_tj(self, key: Key) -> None:
        self.coalesced("tj", key, self._reconcile_tj)

    def _reconcile_md(self, key: Key) -> None:
        body = self._one("md_index", key)
        if body is None or self.md is None:
            return  # deleted meanwhile, or a child whose owner is not (yet) known
        try:
            outcome = self.md.reconcile(
                body,
                deployment=self._one("md_deployments", key),
                pods=self._all("md_pods", key),
                autoscaler=self._one("md_hpas", key),
                trainings=self.training_jobs_for(*key),
                post_event=lambda type_, reason, message: self.kube.post_event(
                    body, type_, reason, message
                ),
            )
        except Exception as err:
            # Never let one object's failure escape into kopf (which would only
            # log it for event handlers): count it and try again later.
            metrics.RECONCILE_ERRORS.labels("ModelDeployment", type(err).__name__).inc()
            log.exception("reconcile of ModelDeployment %s/%s failed", *key)
            self.requeue("md", key, REQUEUE_AFTER_FAILURE_S)
            return
        if outcome.requeue_after is not None:
            self.requeue("md", key, outcome.requeue_after)

    def training_jobs_for(self, namespace: str, md_name: str) -> list[Mapping[str, Any]]:
        """TrainingJobs of a namespace that name this ModelDeployment in modelDeploymentRef."""
        out = []
        for (ns, _), store in list(self.indices.get("tj_index", {}).items()):
            if ns != namespace:
                continue
            for body in store:
                ref = (body.get("spec") or {}).get("modelDeploymentRef") or {}
                if ref.get("name") == md_name:
                    out.append(body)
        return out

    def _reconcile_tj(self, key: Key) -> None:
        body = self._one("tj_index", key)
        if body is None or self.tj is None:
            return
        try:
            after = self.tj.reconcile(
                body,
                jobs=self._all("tj_jobs", key),
                pods=self._all("tj_pods", key),
                post_event=lambda type_, reason, message: self.kube.post_event(
                    body, type_, reason, message
                ),
            )
        except Exception as err:
            metrics.RECONCILE_ERRORS.labels("TrainingJob", type(err).__name__).inc()
            log.exception("reconcile of TrainingJob %s/%s failed", *key)
            self.requeue("tj", key, REQUEUE_AFTER_FAILURE_S)
            return
        if after is not None:
            self.requeue("tj", key, after)

    def trainingjob_changed(self, key: Key) -> None:
        """A TrainingJob's result may be the version its ModelDeployment follows."""
        body = self._one("tj_index", key)
        ref = ((body or {}).get("spec") or {}).get("modelDeploymentRef") or {}
        if ref.get("name"):
            self.reconcile_md((key[0], ref["name"]))

    # -- requeue -------------------------------------------------------------------

    def requeue(self, kind: str, key: Key, after: float) -> None:
        due = time.monotonic() + after
        with self._due_lock:
            current = self._due.get((kind, key))
            if current is None or due < current:
                self._due[(kind, key)] = due

    async def run_requeues(self, tick: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            with self._due_lock:
                ready = [k for k, due in self._due.items() if due <= now]
                for k in ready:
                    del self._due[k]
            # Due reconciles run side by side on kopf's executor (its size bounds
            # the concurrency); one slow object must not hold up the others.
            await asyncio.gather(
                *(loop.run_in_executor(None, self._run_requeued, kind, key) for kind, key in ready)
            )

    def _run_requeued(self, kind: str, key: Key) -> None:
        handler = {"md": self.reconcile_md, "tj": self.reconcile_tj}.get(kind)
        if handler is None:
            return
        try:
            handler(key)
        except Exception:  # a failed requeue must not stop the scheduler
            log.exception("requeued reconcile of %s %s/%s failed", kind, *key)
            self.requeue(kind, key, REQUEUE_AFTER_FAILURE_S)


RUNTIME = Runtime()

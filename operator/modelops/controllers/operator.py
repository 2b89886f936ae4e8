"""Operator start-up and shutdown, and the work queue that runs every reconcile.

kopf is the watch layer: its indexes keep projections of what is watched, and
its event handlers only queue keys. Reconciles run here, on a WorkQueue
(per-key de-duplication, delayed adds, back-off with jitter), by a bounded
number of workers, each reconcile on a thread of a pool of the same size (the
official kubernetes client is synchronous). Everything is built at start-up
and kept in kopf's ``memo``: no module-level state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import start_http_server

from modelops.api.images import ImageDefaults
from modelops.controllers import (
    indexes,  # noqa: F401  (registers the indexes)
    metrics,
    modeldeployment,  # noqa: F401  (registers the handlers)
    trainingjob,  # noqa: F401
)
from modelops.controllers.indexes import INDEX_NAMES, Indexes, Key
from modelops.controllers.md_controller import ModelDeploymentController, Result
from modelops.controllers.settings import configure, workers
from modelops.controllers.sidecar_client import SidecarClient
from modelops.controllers.store_watcher import StoreWatcher
from modelops.controllers.tj_controller import TrainingJobController
from modelops.controllers.workqueue import MonotonicClock, ShutDown, WorkQueue
from modelops.kube import Kube
from modelops.render import DEFAULT_PROMETHEUS_ADDRESS
from modelops.render.md_planner import Settings

DEFAULT_OPERATOR_IMAGE = "ghcr.io/modelops/modelops:0.1.0"
# A child's events come in bursts (a pod: scheduled, started, ready); its
# owner is reconciled this long after the first one, once, with all of them.
CHILD_EVENT_DELAY_S = 0.2
# Every object is reconciled at least this often even without events: a safety
# net against a missed watch event (as controller-runtime's resync period). At
# steady state such a reconcile sends no request, so it costs only CPU.
RESYNC_S = 300.0
log = logging.getLogger("modelops.operator")

QueueKey = tuple[str, str, str]  # ("md" | "tj", namespace, name)


@dataclass
class Operator:
    md: ModelDeploymentController
    tj: TrainingJobController
    queue: WorkQueue[QueueKey]
    concurrency: int
    _since: dict[QueueKey, float] = field(default_factory=dict)

    # -- what the kopf handlers call --

    def enqueue_md(self, key: Key, *, child: bool = False) -> None:
        self._enqueue(("md", *key), child)

    def enqueue_tj(self, key: Key, *, child: bool = False) -> None:
        self._enqueue(("tj", *key), child)

    def md_deleted(self, key: Key) -> None:
        self.queue.remove(("md", *key))
        self.md.forget(key)

    def tj_deleted(self, key: Key) -> None:
        self.queue.remove(("tj", *key))
        self.tj.forget(key)

    def keda_changed(self) -> None:
        self.md.kube.forget_api_cache()
        for key in self.md.known_keys():
            self.enqueue_md(key)

    def _enqueue(self, key: QueueKey, child: bool) -> None:
        self._since.setdefault(key, time.monotonic())
        if child:
            self.queue.add_after(key, CHILD_EVENT_DELAY_S)
        else:
            self.queue.add(key)

    # -- the workers --

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sidecars, store = self.md.sidecars, self.md.store

        def ready(key: Key) -> None:
            # A finished poll or listing (a pool thread) queues the ModelDeployment's
            # reconcile, which then reads the fresh answers from the cache.
            loop.call_soon_threadsafe(self.queue.add, ("md", *key))

        for source in (sidecars, store):
            if source is not None:
                source.on_ready = ready
        try:
            with concurrent.futures.ThreadPoolExecutor(
                self.concurrency, thread_name_prefix="reconcile"
            ) as pool:
                workers = [self._worker(loop, pool) for _ in range(self.concurrency)]
                await asyncio.gather(self._resync(), *workers)
        finally:
            for source in (sidecars, store):
                if source is not None:
                    source.close()

    async def _resync(self) -> None:
        while not self.queue.is_shut_down:
            await asyncio.sleep(RESYNC_S)
            for namespace, name in self.md.known_keys():
                self.queue.add(("md", namespace, name))
            for namespace, name in self.tj.known_keys():
                self.queue.add(("tj", namespace, name))

    async def _worker(
        self, loop: asyncio.AbstractEventLoop, pool: concurrent.futures.Executor
    ) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            since = self._since.pop(key, None)
            log.debug("reconciling %s %s/%s", *key)
            try:
                result = await loop.run_in_executor(pool, self._reconcile, key)
            except Exception as err:
                metrics.RECONCILE_ERRORS.labels(_kind(key), type(err).__name__).inc()
                delay = self.queue.add_rate_limited(key)
                log.exception("reconcile of %s %s/%s failed; again in %.1fs", *key, delay)
            else:
                if since is not None:
                    metrics.STATUS_LAG.labels(_kind(key)).observe(time.monotonic() - since)
                if result.failed:
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.forget(key)
                    if result.requeue_after is not None:
                        self.queue.add_after(key, result.requeue_after)
            finally:
                self.queue.done(key)
                self._export_depth()

    def _export_depth(self) -> None:
        metrics.WORKQUEUE_KEYS.labels("ready").set(len(self.queue))
        metrics.WORKQUEUE_KEYS.labels("waiting").set(self.queue.pending)
        metrics.WORKQUEUE_KEYS.labels("processing").set(self.queue.processing)

    def _reconcile(self, key: QueueKey) -> Result:
        kind, namespace, name = key
        controller = self.md if kind == "md" else self.tj
        return controller.reconcile((namespace, name))


def _kind(key: QueueKey) -> str:
    return "ModelDeployment" if key[0] == "md" else "TrainingJob"


def build(kube: Kube, views: Any) -> Operator:
    """The operator's parts, configured from the environment (`modelops run` sets
    the image defaults from its flags)."""
    idx = Indexes(views)
    images = ImageDefaults.from_environ()
    settings = Settings(
        operator_image=os.environ.get("MODELOPS_IMAGE", DEFAULT_OPERATOR_IMAGE),
        prometheus_address=os.environ.get(
            "MODELOPS_PROMETHEUS_ADDRESS", DEFAULT_PROMETHEUS_ADDRESS
        ),
        triton_image=images.triton,
    )
    log.info("default images: triton %s, trainer %s", images.triton, images.trainer)
    return Operator(
        md=ModelDeploymentController(
            kube,
            idx,
            settings,
            sidecars=SidecarClient.from_environment(),
            store=StoreWatcher(),
        ),
        tj=TrainingJobController(kube, idx, trainer_image=images.trainer),
        queue=WorkQueue(MonotonicClock()),
        concurrency=workers(),
    )


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **kwargs: Any
) -> None:
    configure(settings)
    # kopf hands every index to start-up handlers; they are live views.
    operator = build(Kube(), {name: kwargs[name] for name in INDEX_NAMES})
    memo.operator = operator
    port = int(os.environ.get("MODELOPS_METRICS_PORT", "8080"))
    if port:
        start_http_server(port)
        logger.info("metrics on :%d/metrics", port)
    memo.workers = asyncio.create_task(operator.run())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    operator = getattr(memo, "operator", None)
    if operator is not None:
        operator.queue.shutdown()
        task = memo.workers
        task.cancel()

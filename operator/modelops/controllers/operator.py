"""Operator start-up and shutdown, and the work queue that runs every reconcile.

The operator's own informers (controllers/informers.py) list and watch what
it owns into stores of projections; their changes only queue keys
(controllers/md_triggers.py, tj_triggers.py). Reconciles run here, on a
WorkQueue (per-key de-duplication, delayed adds, back-off with jitter), by a
bounded number of workers, each reconcile on a thread of a pool of the same
size (the official kubernetes client is synchronous).

kopf is kept for what it does well and costs nothing at scale: the process
life cycle (start-up and cleanup handlers, signal handling, graceful
shutdown) and the liveness endpoint. It no longer watches anything: its
indexes held every handler until all of them were filled, with a readiness
check per object that grew quadratically with the fleet, and its peering
is replaced by the Lease (controllers/leader.py).

Start-up order: informers start at once, leader or not (a standby keeps its
stores warm, so a failover does not pay a cold start); workers start once
this replica leads; each reconcile kind waits only for the stores it reads
(its barrier). Everything is built at start-up and kept in kopf's ``memo``:
no module-level state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import platform
import secrets
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import start_http_server

from modelops import logs
from modelops.api.images import ImageDefaults
from modelops.controllers import md_triggers, metrics, tj_triggers
from modelops.controllers.conversion import WEBHOOK_IDENTITY, ConversionWebhook, WebhookOptions
from modelops.controllers.indexes import MD_STORES, TJ_STORES, Indexes, Key
from modelops.controllers.informers import Informers
from modelops.controllers.leader import LeaderElector
from modelops.controllers.md_reconcile import ModelDeploymentController, Result
from modelops.controllers.settings import configure, workers
from modelops.controllers.sidecar_client import SidecarClient
from modelops.controllers.storage_migration import migrate
from modelops.controllers.store_watcher import StoreWatcher
from modelops.controllers.stores import Change
from modelops.controllers.tj_reconcile import TrainingJobController
from modelops.controllers.workqueue import MonotonicClock, ShutDown, WorkQueue
from modelops.kube import Kube
from modelops.kube.errors import NotLeader, Unavailable
from modelops.render import DEFAULT_PROMETHEUS_ADDRESS
from modelops.render.lease import LeaseConfig, service_account_owner
from modelops.render.md_planner import Settings

DEFAULT_OPERATOR_IMAGE = "ghcr.io/modelops/modelops-operator:0.2.0"
# A child's events come in bursts (a pod: scheduled, started, ready); its
# owner is reconciled this long after the first one, once, with all of them.
CHILD_EVENT_DELAY_S = 0.2
# Every object is reconciled at least this often even without events: a safety
# net against a missed watch event (as controller-runtime's resync period). At
# steady state such a reconcile sends no request, so it costs only CPU.
RESYNC_S = 300.0
# The pod's own ServiceAccount token (what in-cluster configuration authenticates with).
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
log = logging.getLogger("modelops.operator")

QueueKey = tuple[str, str, str]  # ("md" | "tj", namespace, name)
# The stores each kind of reconcile reads: its barrier.
BARRIERS = {"md": MD_STORES, "tj": TJ_STORES}


@dataclass(frozen=True)
class Options:
    """How `modelops run` was asked to run (handed over in kopf's memo)."""

    namespaces: tuple[str, ...] = ()
    leader_elect: bool = False
    lease_namespace: str = "modelops-system"
    lease_name: str = "modelops-operator"
    identity: str = ""
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    # The conversion webhook (None: not served) and the storage-version migration.
    webhook: WebhookOptions | None = None
    migrate_storage: bool = False


def holder_identity() -> str:
    """The pod name (or host name) and a random suffix: a restarted pod with the same
    name is a new holder, never mistaken for the one that held the lease before."""
    base = os.environ.get("POD_NAME") or platform.node()
    return f"{base}_{secrets.token_hex(4)}"


@dataclass
class Operator:
    md: ModelDeploymentController
    tj: TrainingJobController
    queue: WorkQueue[QueueKey]
    concurrency: int
    informers: Informers | None = None
    elector: LeaderElector | None = None
    _since: dict[QueueKey, float] = field(default_factory=dict)
    # Keys taken before their kind's stores were listed: queued again at the barrier.
    _parked: dict[str, set[QueueKey]] = field(default_factory=dict)
    _open: set[str] = field(default_factory=set)

    # -- what the triggers call --

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

    def on_changes(self, store: str, changes: list[Change]) -> None:
        """Store changes (on the event loop) -> keys on the queue."""
        if store.startswith("tj_"):
            tj_triggers.on_changes(self, store, changes)
        else:
            md_triggers.on_changes(self, store, changes)

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
        # The barriers open while standing by too: a standby's stores are listed
        # and watched, so taking over costs no list.
        barriers = [asyncio.create_task(self._barrier(kind)) for kind in BARRIERS]
        try:
            if self.elector is not None:
                await self.elector.leading.wait()
                log.info("leading: reconciling")
            with concurrent.futures.ThreadPoolExecutor(
                self.concurrency, thread_name_prefix="reconcile"
            ) as pool:
                workers = [self._worker(loop, pool) for _ in range(self.concurrency)]
                await asyncio.gather(self._resync(), *barriers, *workers)
        finally:
            for source in (sidecars, store):
                if source is not None:
                    source.close()

    async def _barrier(self, kind: str) -> None:
        if self.informers is not None:
            started = time.monotonic()
            await self.informers.wait_synced(BARRIERS[kind])
            name = "ModelDeployment" if kind == "md" else "TrainingJob"
            log.info("%s stores listed after %.1fs", name, time.monotonic() - started)
        self._open.add(kind)
        for key in self._parked.pop(kind, set()):
            self.queue.add(key)

    def stop(self) -> None:
        """Stop handing out work at once (the lease is lost, or shutdown)."""
        self.queue.shutdown()
        if self.informers is not None:
            self.informers.stop()

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
            if key[0] not in self._open:
                # Its stores are not listed yet: a reconcile now would see no
                # children and re-create them. It runs at the barrier.
                self._parked.setdefault(key[0], set()).add(key)
                self.queue.done(key)
                continue
            since = self._since.pop(key, None)
            log.debug("reconciling %s %s/%s", *key)
            try:
                result = await loop.run_in_executor(pool, self._reconcile, key)
            except NotLeader:
                log.warning("not the leader: %s %s/%s left for the new leader", *key)
                self.queue.done(key)
                return
            except Unavailable as err:
                # The API server cannot answer now (restarting, overloaded): one
                # line, not a traceback per object.
                metrics.RECONCILE_ERRORS.labels(_kind(key), err.reason).inc()
                delay = self.queue.add_rate_limited(key)
                log.warning("reconcile of %s %s/%s: %s; again in %.1fs", *key, err, delay)
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
        # Log records and Events made during this reconcile carry its id (modelops.logs).
        with logs.reconciling(_kind(key), namespace, name):
            return controller.reconcile((namespace, name))


def gpu_instance_kind(environ: Mapping[str, str] = os.environ) -> str:
    """MODELOPS_GPU_INSTANCE_KIND: "gpu" (the default) or "auto", for clusters whose
    GPU resources have no CUDA device behind them (docs/operations.md)."""
    kind = environ.get("MODELOPS_GPU_INSTANCE_KIND", "").strip() or "gpu"
    if kind not in ("gpu", "auto"):
        raise SystemExit(f"MODELOPS_GPU_INSTANCE_KIND must be gpu or auto, not {kind!r}")
    if kind == "auto":
        log.warning("GPU pods' Triton instances are KIND_AUTO: on CPU where no CUDA device is seen")
    return kind


def _kind(key: QueueKey) -> str:
    return "ModelDeployment" if key[0] == "md" else "TrainingJob"


def build(kube: Kube, views: Any) -> Operator:
    """The operator's parts, configured from the environment (`modelops run` sets
    the image defaults from its flags); ``views``: the stores by name."""
    idx = Indexes(views)
    images = ImageDefaults.from_environ()
    settings = Settings(
        operator_image=os.environ.get("MODELOPS_IMAGE", DEFAULT_OPERATOR_IMAGE),
        prometheus_address=os.environ.get(
            "MODELOPS_PROMETHEUS_ADDRESS", DEFAULT_PROMETHEUS_ADDRESS
        ),
        triton_image=images.triton,
        gpu_instance_kind=gpu_instance_kind(),
        # The wake activator's address as KEDA reaches it (modelops/wake/); unset:
        # no activator, models at zero are not woken by their requests.
        activator_url=os.environ.get("MODELOPS_ACTIVATOR_URL") or None,
    )
    log.info("default images: triton %s, trainer %s", images.triton, images.trainer)
    return Operator(
        md=ModelDeploymentController(
            kube,
            idx,
            settings,
            sidecars=SidecarClient.from_environment(),
            # Lists model stores with the credentials Secret each ModelDeployment names.
            store=StoreWatcher.from_environment(secrets=kube.read_secret),
        ),
        tj=TrainingJobController(kube, idx, trainer_image=images.trainer),
        queue=WorkQueue(MonotonicClock()),
        concurrency=workers(),
    )


def start(
    options: Options, loop: asyncio.AbstractEventLoop, exit_process: Callable[[], None]
) -> Operator:
    """Build the operator, start its informers and, with leader election, its elector."""
    kube = Kube()
    kube.identity = options.identity or holder_identity()
    holder: list[Operator] = []
    informers = Informers(
        kube,
        loop,
        on_changes=lambda store, changes: holder[0].on_changes(store, changes),
        on_crd=lambda crd, present: holder[0].keda_changed(),
        namespaces=tuple(options.namespaces) or (None,),
    )
    operator = build(kube, informers.stores)
    operator.informers = informers
    holder.append(operator)
    if options.leader_elect:

        def lost() -> None:
            # Exit rather than go back to standby: the controllers' memory (what
            # they applied, their own status versions) assumed one writer, and
            # the new leader has written since. A restarted process starts clean
            # as a standby; the other replica already leads, so nothing waits on it.
            operator.stop()
            exit_process()

        operator.elector = LeaderElector(
            kube,
            options.lease_namespace,
            options.lease_name,
            kube.identity,
            options.lease,
            on_lost=lost,
            owner=lease_owner(options.lease_namespace),
        )
        kube.fence = operator.elector.check
    informers.start()
    return operator


def lease_owner(namespace: str, token_path: str = SERVICE_ACCOUNT_TOKEN) -> dict[str, Any] | None:
    """In a pod: the Lease's owner, its ServiceAccount (why: render/lease.py)."""
    try:
        with open(token_path, encoding="utf-8") as f:
            token = f.read(64 * 1024)  # a JWT is a few KB; the cap keeps a bad mount harmless
    except OSError:
        return None  # not in a pod (a kubeconfig): the Lease keeps the owners it has
    return service_account_owner(token, namespace)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    configure(settings)
    options: Options = getattr(memo, "options", None) or Options()
    loop = asyncio.get_running_loop()
    operator = start(options, loop, lambda: os.kill(os.getpid(), signal.SIGTERM))
    memo.operator = operator
    port = int(os.environ.get("MODELOPS_METRICS_PORT", "8080"))
    if port:
        start_http_server(port)
        logger.info("metrics on :%d/metrics", port)
    if options.webhook is not None:
        # Before the workers: the API server needs the webhook to read any object
        # stored in another version than asked, the operator's own reads included.
        memo.webhook = await asyncio.to_thread(start_webhook, options.webhook)
        if options.migrate_storage:
            memo.migration = asyncio.create_task(
                asyncio.to_thread(migrate_storage, options.webhook.crds)
            )
    memo.workers = asyncio.create_task(operator.run())
    if operator.elector is not None:
        memo.elector = asyncio.create_task(operator.elector.run())


def start_webhook(options: WebhookOptions) -> ConversionWebhook:
    """Serve the conversion webhook and keep its certificate fresh. Its own client: every
    replica serves it, so its writes are not fenced by the leader's Lease."""
    kube = Kube()
    # Its writes (the certificate Secret, the CRDs' caBundle, never a reconciled
    # object) are every replica's, so the write log names them apart from the leader's.
    kube.identity = WEBHOOK_IDENTITY
    webhook = ConversionWebhook(kube, options)
    webhook.start()
    webhook.run_refresh()
    return webhook


def migrate_storage(crds: tuple[str, ...], attempts: int = 60, pause_s: float = 5.0) -> None:
    """Rewrite objects stored in an older version (storage_migration.migrate); retried, as
    the CRDs may be re-applied while the operator starts. Idempotent: any replica may."""
    kube = Kube()
    for crd in crds:
        for attempt in range(attempts):
            try:
                result = migrate(kube, crd)
            except Exception:
                # E.g. the API server not trusting the caBundle just patched in yet.
                log.exception("storage migration of %s failed (attempt %d)", crd, attempt + 1)
                time.sleep(pause_s)
                continue
            if result.objects:
                log.info("stored %d %s as %s", result.objects, crd, result.storage_version)
            break


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    webhook = getattr(memo, "webhook", None)
    if webhook is not None:
        webhook.stop()
    operator = getattr(memo, "operator", None)
    if operator is not None:
        operator.stop()
        memo.workers.cancel()
        if operator.elector is not None:
            memo.elector.cancel()
            await operator.elector.release()

"""The activator: holds HTTP requests for models at zero and wakes them.

Data path: while a marked Service (render/wake.py) has no ready endpoint, the
activator keeps an EndpointSlice of its own in that Service, so kube-proxy
sends the model's HTTP traffic here. A request is matched to its model by its
Host header (`<service>`, `<service>.<namespace>`, `<service>.<namespace>.svc[...]`,
as the HTTP add-on does), held in that model's bounded queue (holder.py), and
the first one scales the Deployment from 0 to 1 at once. The held requests go
to the first ready pod (ready == Triton's /v2/health/ready, i.e. the model is
loaded) when it appears; past the queue limit or the hold timeout the answer is
503 with Retry-After. Once a pod is ready the activator deletes its slice: with
replicas it is out of the path.

Control: the marked Services are listed every `sync_s`; while requests are held
for a model its slices are polled every `poll_s`. KEDA reads
`GET /wake/<namespace>/<name>` ({"held": n}) through a metrics-api trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from modelops.render.wake import (
    WakeTarget,
    ready_upstreams,
    slice_name,
    slice_points_at,
    slice_wanted,
)

from .cluster import WakeCluster
from .holder import Holder, QueueFull, WakeTimeout

log = logging.getLogger(__name__)

# Not forwarded (RFC 9110 7.6.1): they describe one connection, not the request.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass(frozen=True)
class ActivatorSettings:
    advertise_ip: str  # the address put in the slices (the activator pod's IP)
    advertise_port: int
    queue_limit: int = 100
    timeout_s: float = 120.0
    retry_after_s: int = 5
    max_body_bytes: int = 64 << 20
    upstream_timeout_s: float = 120.0
    sync_s: float = 2.0
    poll_s: float = 0.2


class Activator:
    def __init__(self, cluster: WakeCluster, settings: ActivatorSettings) -> None:
        self.cluster = cluster
        self.settings = settings
        self.targets: dict[tuple[str, str], WakeTarget] = {}
        self.holders: dict[tuple[str, str], Holder] = {}
        self._hosts: dict[str, tuple[str, str]] = {}
        self._pollers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._session: ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=self.settings.upstream_timeout_s))
        await self.sync_once()
        self._tasks.append(asyncio.create_task(self._sync_loop()))

    async def _stop(self, _: web.Application) -> None:
        for task in [*self._tasks, *self._pollers.values()]:
            task.cancel()
        for task in [*self._tasks, *self._pollers.values()]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    # -- control: targets, slices, scale-ups ------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_s)
            try:
                await self.sync_once()
            except Exception:  # the next round retries; the data path keeps serving
                log.exception("activator sync failed")

    async def sync_once(self) -> None:
        targets = await asyncio.to_thread(self.cluster.targets)
        self.targets = {t.key: t for t in targets}
        self._hosts = {host: t.key for t in targets for host in hosts_of(t)}
        for key in list(self.holders):
            if key not in self.targets and not self.holders[key].held:
                del self.holders[key]
        for target in targets:
            await self.refresh(target)

    async def refresh(self, target: WakeTarget) -> list[tuple[str, int]]:
        """Read the Service's endpoints; keep the activator's slice only while none is ready."""
        slices = await asyncio.to_thread(self.cluster.slices, target)
        upstreams = ready_upstreams(slices)
        self.holder(target.key).set_upstreams(upstreams)
        own = next(
            (
                s
                for s in slices
                if (s.get("metadata") or {}).get("name") == slice_name(target.service)
            ),
            None,
        )
        s = self.settings
        if slice_wanted(upstreams):
            # Also when the slice names another address: one this activator had
            # before it was restarted elsewhere.
            if own is None or not slice_points_at(own, s.advertise_ip, s.advertise_port):
                await asyncio.to_thread(
                    self.cluster.put_slice, target, s.advertise_ip, s.advertise_port
                )
                log.info("in the path of %s/%s (no ready replica)", *target.key)
        elif own is not None:
            await asyncio.to_thread(self.cluster.drop_slice, target, own)
            log.info("out of the path of %s/%s (%d ready)", *target.key, len(upstreams))
        return upstreams

    def holder(self, key: tuple[str, str]) -> Holder:
        holder = self.holders.get(key)
        if holder is None:
            s = self.settings
            holder = self.holders[key] = Holder(queue_limit=s.queue_limit, timeout_s=s.timeout_s)
        return holder

    def _wake(self, target: WakeTarget) -> None:
        """Scale up and poll the Service's endpoints until one is ready (once per wake)."""
        running = self._pollers.get(target.key)
        if running is not None and not running.done():
            return
        self._pollers[target.key] = asyncio.create_task(self._poll_until_ready(target))

    async def _poll_until_ready(self, target: WakeTarget) -> None:
        holder = self.holder(target.key)
        try:
            if await asyncio.to_thread(self.cluster.scale_from_zero, target):
                holder.times.scaled_at = time.monotonic()
                log.info("woke %s/%s: scaled %s to 1", *target.key, target.deployment)
            while holder.held:
                if await self.refresh(target):
                    return
                await asyncio.sleep(self.settings.poll_s)
        except Exception:
            log.exception("waking %s/%s", *target.key)

    # -- data path --------------------------------------------------------------------

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"targets": len(self.targets)})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = self._hosts.get(host_name(request.headers.get("Host", "")))
        if key is None:
            if request.method == "GET" and request.path.startswith("/wake/"):
                return self._activity(request)
            return web.json_response(
                {"error": f"no model behind host {request.headers.get('Host', '')!r}"}, status=404
            )
        target = self.targets[key]
        holder = self.holder(key)
        body = await request.read()  # capped by client_max_size (413 beyond)
        if holder.pick() is None:
            self._wake(target)
        try:
            upstream = await holder.wait()
        except (QueueFull, WakeTimeout) as err:
            return self._unavailable(str(err))
        response = await self._forward(request, body, upstream)
        holder.answered()
        return response

    def _unavailable(self, why: str) -> web.Response:
        return web.json_response(
            {"error": f"model is waking from zero: {why}"},
            status=503,
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    async def _forward(
        self, request: web.Request, body: bytes, upstream: tuple[str, int]
    ) -> web.Response:
        assert self._session is not None
        ip, port = upstream
        host = f"[{ip}]" if ":" in ip else ip
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            async with self._session.request(
                request.method,
                f"http://{host}:{port}{request.path_qs}",
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=answer.status, body=payload, headers=out)
        except (TimeoutError, OSError) as err:
            return self._unavailable(f"the replica did not answer: {err}")

    def _activity(self, request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")
        if len(parts) != 3:
            return web.json_response({"error": "expected /wake/<namespace>/<name>"}, status=404)
        holder = self.holders.get((parts[1], parts[2]))
        if holder is None:
            return web.json_response({"held": 0})
        return web.json_response(
            {
                "held": holder.activity(),
                "heldNow": holder.held,
                "forwarded": holder.forwarded,
                "lastWake": holder.times.as_dict(),
            }
        )


def hosts_of(target: WakeTarget) -> list[str]:
    """The Host names clients use for the Service (cluster DNS forms)."""
    svc, ns = target.service, target.namespace
    return [svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"]


def host_name(header: str) -> str:
    """The Host header without its port, lower-cased."""
    host = header.strip().lower()
    if host.startswith("["):
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def parse_activity(payload: Mapping[str, Any]) -> int:
    """The held count from /wake/... (for tests and the bench)."""
    held = payload.get("held")
    return held if isinstance(held, int) else 0

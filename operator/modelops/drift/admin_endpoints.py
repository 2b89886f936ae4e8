"""The sidecar's own endpoints: a small aiohttp app on the admin port, apart from Triton's.

Holds :class:`AdminEndpoints`, the server for one :class:`~modelops.drift.proxy.DriftProxy`
and its handlers: ``GET /metrics`` (Prometheus, the proxy's gauges refreshed
first), ``/drift`` (the monitor's summary with the statistics queue's
figures), ``/drift/histograms`` (this sidecar's counts, which the operator
sums across replicas), ``/healthz``, and ``/rollout`` (the rollout's
per-epoch figures, with the versions Triton has READY read from its
repository index, cached).

Not on the hot path, and never mixed with Triton's URL space: the proxy port
relays every request to Triton and answers nothing itself but its own errors
(:mod:`modelops.drift.proxy`). What the documents contain is the monitor's
(:mod:`modelops.drift.monitor`) and the rollout's
(:mod:`modelops.drift.traffic_plane`); this module only serves them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from modelops.drift.figures import SIDECAR_ID
from modelops.drift.http1 import ChunkedDecoder, ProtocolError
from modelops.drift.metrics import CONTENT_TYPE
from modelops.drift.traffic_plane import LoadedCache, ready_versions

if TYPE_CHECKING:
    from modelops.drift.proxy import DriftProxy

log = logging.getLogger("modelops.drift.proxy")  # the HTTP proxy's, as before the split

# Triton's repository index read for GET /rollout (a few hundred bytes per model).
_INDEX_LIMIT = 4 * 1024 * 1024


class AdminEndpoints:
    """The admin server of one proxy: ``start`` binds it, ``stop`` closes it."""

    def __init__(self, proxy: DriftProxy) -> None:
        self.proxy = proxy
        self._runner: web.AppRunner | None = None
        self._loaded = LoadedCache()

    async def start(self, host: str, port: int) -> int:
        """Serve on host:port; returns the bound port (0 picks a free one)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # the port when port == 0
        return sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/drift", self._drift)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/rollout", self._rollout)
        app.router.add_get("/drift/histograms", self._histograms)
        return app

    async def _histograms(self, request: web.Request) -> web.Response:
        return web.json_response(self.proxy.monitor.histograms(SIDECAR_ID))

    async def _metrics(self, request: web.Request) -> web.Response:
        proxy = self.proxy
        m = proxy.metrics
        m.queue_depth_m.set(proxy.feeder.queued)
        m.connections.set(len(proxy._clients))
        m.buffered_bytes.set(proxy.buffered)
        return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})

    def summary(self) -> dict[str, Any]:
        proxy = self.proxy
        doc = proxy.monitor.summary(proxy.config.model or "")
        doc["samples"].update(
            {
                "dropped": proxy.feeder.dropped,
                "skipped": sum(proxy.feeder.skipped.values()),
                "queued": proxy.feeder.queued,
            }
        )
        return doc

    async def _drift(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary())

    async def loaded_versions(self) -> dict[str, list[str]]:
        """Model -> READY versions from Triton's repository index, cached for 10 s."""
        cache = self._loaded
        loop = asyncio.get_running_loop()
        if cache.value is not None and loop.time() - cache.at < cache.ttl:
            return cache.value
        host, port = self.proxy._address
        try:
            async with asyncio.timeout(2.0):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(
                        b"POST /v2/repository/index HTTP/1.1\r\nHost: %s\r\n"
                        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}" % host.encode()
                    )
                    raw = b""
                    while len(raw) < _INDEX_LIMIT and (chunk := await reader.read(65536)):
                        raw += chunk
                finally:
                    writer.close()
            head, _, body = raw.partition(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                raise ValueError(head.split(b"\r\n", 1)[0].decode("latin-1"))
            if b"transfer-encoding: chunked" in head.lower():
                decoder = ChunkedDecoder()
                decoder.feed(body)
                body = bytes(decoder.body)
            value = ready_versions(json.loads(body))
        except (OSError, TimeoutError, ValueError, ProtocolError) as exc:
            log.debug("repository index of %s: %s", self.proxy.config.upstream, exc)
            value = cache.value if cache.value is not None else {}
        cache.value, cache.at = value, loop.time()
        return value

    async def _rollout(self, request: web.Request) -> web.Response:
        proxy = self.proxy
        loaded = await self.loaded_versions()
        doc = proxy.rollout.document(loaded)
        if proxy.inplace is not None:
            doc["inPlace"] = proxy.inplace.document(loaded)
        if proxy.agent is not None:
            doc["agent"] = proxy.agent.document()
        return web.json_response(doc)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "features": len(self.proxy.monitor.names)})

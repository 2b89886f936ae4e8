"""The activator's data path: hold, wake, answer; 503 with Retry-After beyond the
queue limit or the hold timeout; out of the path once a replica is ready.

Real HTTP on both sides (aiohttp servers on loopback). The cluster is an
in-memory stand-in for WakeCluster (its API calls are exercised against the
real API server in e2e/test_wake_real.py): a Service whose "pod" endpoint
becomes ready when the test says so.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from modelops.render.wake import (
    ACTIVATOR_MANAGER,
    WakeTarget,
    activator_slice,
    slice_name,
)
from modelops.wake.activator import Activator, ActivatorSettings, host_name
from modelops.wake.holder import Holder, QueueFull, WakeTimeout

TARGET = WakeTarget("ml", "fraud", "svc-uid", "fraud", "md-uid")
HOST = "fraud.ml.svc.cluster.local:8000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MemoryCluster:
    """One marked Service; its pod endpoint is ready once `pod` is set."""

    def __init__(self) -> None:
        self.pod: tuple[str, int] | None = None
        self.own: dict[str, Any] | None = None
        self.replicas = 0
        self.scale_calls = 0

    def targets(self) -> list[WakeTarget]:
        return [TARGET]

    def slices(self, target: WakeTarget) -> list[dict[str, Any]]:
        out = [] if self.own is None else [self.own]
        if self.pod is not None:
            ip, port = self.pod
            out.append(
                {
                    "metadata": {"name": "fraud-abcde", "labels": {}},
                    "ports": [{"name": "http", "port": port}],
                    "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
                }
            )
        return out

    def put_slice(self, target: WakeTarget, ip: str, port: int) -> None:
        self.own = activator_slice(target, ip, port)

    def drop_slice(self, target: WakeTarget, live: dict[str, Any]) -> None:
        assert live["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == (
            ACTIVATOR_MANAGER
        )
        self.own = None

    def scale_from_zero(self, target: WakeTarget) -> bool:
        self.scale_calls += 1
        if self.replicas:
            return False
        self.replicas = 1
        return True


async def upstream_server() -> tuple[web.AppRunner, int, list[bytes]]:
    seen: list[bytes] = []

    async def infer(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(body)
        return web.json_response({"echo": body.decode(), "path": request.path})

    app = web.Application()
    app.router.add_post("/v2/models/m/infer", infer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port, seen


async def activator_server(
    cluster: MemoryCluster, **settings: Any
) -> tuple[web.AppRunner, Activator, str]:
    port = free_port()
    activator = Activator(
        cluster,  # type: ignore[arg-type]
        ActivatorSettings(
            advertise_ip="127.0.0.1", advertise_port=port, sync_s=0.2, poll_s=0.05, **settings
        ),
    )
    runner = web.AppRunner(activator.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, activator, f"http://127.0.0.1:{port}"


async def post(session: aiohttp.ClientSession, url: str, i: int) -> tuple[int, dict, dict]:
    async with session.post(
        f"{url}/v2/models/m/infer", data=f"req-{i}".encode(), headers={"Host": HOST}
    ) as r:
        return r.status, dict(r.headers), await r.json()


def test_a_burst_at_zero_is_held_and_every_request_answered_once_a_replica_is_ready():
    async def main() -> None:
        cluster = MemoryCluster()
        up, up_port, seen = await upstream_server()
        runner, activator, url = await activator_server(cluster)
        try:
            # At zero the activator puts itself in the Service's path.
            assert cluster.own is not None and cluster.own["metadata"]["name"] == slice_name(
                "fraud"
            )
            async with aiohttp.ClientSession() as session:
                burst = [asyncio.create_task(post(session, url, i)) for i in range(20)]
                await asyncio.sleep(0.5)
                assert not any(t.done() for t in burst), "answered before any replica was ready"
                assert cluster.replicas == 1, "the first held request did not scale up"
                async with session.get(f"{url}/wake/ml/fraud") as r:
                    activity = await r.json()
                assert activity["held"] == 20 and activity["heldNow"] == 20
                cluster.pod = ("127.0.0.1", up_port)  # the replica is Ready
                answers = await asyncio.gather(*burst)
            assert [s for s, _, _ in answers] == [200] * 20
            assert sorted(b["echo"] for _, _, b in answers) == sorted(f"req-{i}" for i in range(20))
            assert len(seen) == 20  # each forwarded exactly once
            # ... and with a replica ready it leaves the path.
            await asyncio.sleep(0.5)
            assert cluster.own is None
            times = activator.holders[("ml", "fraud")].times.as_dict()
            assert times["scaledAfterS"] is not None
            assert times["readyAfterS"] >= times["scaledAfterS"]
            assert times["answeredAfterS"] >= times["readyAfterS"]
        finally:
            await runner.cleanup()
            await up.cleanup()

    asyncio.run(main())


def test_beyond_the_queue_limit_and_the_timeout_the_answer_is_503_with_retry_after():
    async def main() -> None:
        cluster = MemoryCluster()
        runner, _, url = await activator_server(
            cluster, queue_limit=3, timeout_s=1.0, retry_after_s=7
        )
        try:
            async with aiohttp.ClientSession() as session:
                held = [asyncio.create_task(post(session, url, i)) for i in range(3)]
                await asyncio.sleep(0.3)
                status, headers, body = await post(session, url, 99)
                assert status == 503 and headers["Retry-After"] == "7"
                assert "queue limit 3" in body["error"]
                # No replica ever comes: the held ones time out, also as 503.
                for status, headers, body in await asyncio.gather(*held):
                    assert status == 503 and headers["Retry-After"] == "7"
                    assert "no replica ready within 1s" in body["error"]
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_unknown_host_is_refused_not_held():
    async def main() -> None:
        runner, activator, url = await activator_server(MemoryCluster())
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{url}/v2/models/m/infer", headers={"Host": "other.ml"}) as r,
            ):
                assert r.status == 404
            assert not activator.holders[("ml", "fraud")].held
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_holder_counts_recent_activity_for_keda():
    async def main() -> None:
        holder = Holder(queue_limit=1, timeout_s=0.05, linger_s=10)
        with pytest.raises(WakeTimeout):
            await holder.wait()
        assert holder.held == 0 and holder.activity() == 1
        assert holder.activity(now=1e12) == 0
        holder.held = 1
        with pytest.raises(QueueFull):
            await holder.wait()

    asyncio.run(main())


def test_host_name_strips_the_port():
    assert host_name("Fraud.ML:8000") == "fraud.ml"
    assert host_name("fraud") == "fraud"


def test_a_slice_left_by_an_activator_elsewhere_is_re_pointed_at_this_one():
    """An activator restarted on another address (a rescheduled pod) finds the
    slice of its former self and takes it over, rather than leaving the model's
    traffic going to an address nobody serves."""

    async def main() -> None:
        cluster = MemoryCluster()
        cluster.own = activator_slice(TARGET, "10.0.0.99", 8080)
        runner, _, url = await activator_server(cluster)
        try:
            port = int(url.rsplit(":", 1)[1])
            assert [a for e in cluster.own["endpoints"] for a in e["addresses"]] == ["127.0.0.1"]
            assert [p["port"] for p in cluster.own["ports"]] == [port]
        finally:
            await runner.cleanup()

    asyncio.run(main())

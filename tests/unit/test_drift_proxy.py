"""The proxy against a fake upstream (an aiohttp app): passthrough, errors, stats feeding.

The same behaviour against the real Triton is in tests/drift/.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from modelops.drift.detectors import DetectorConfig
from modelops.drift.metrics import DriftMetrics, classify_endpoint
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.proxy import DriftProxy, ProxyConfig
from modelops.drift.reference import build_reference

N_FEAT = 4
LOOP = "asyncio"


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Every proxy test runs on both loops: the sidecar prefers uvloop when installed."""
    global LOOP
    LOOP = request.param
    yield
    LOOP = "asyncio"


def _fake_triton(seen: list[web.Request]) -> web.Application:
    async def infer(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.read()
        if body.startswith(b"{bad"):
            return web.json_response(
                {"error": "failed to parse the request JSON buffer"}, status=400
            )
        out = {"model_name": request.match_info["model"], "echo_bytes": len(body)}
        return web.json_response(out, headers={"Inference-Header-Content-Length": "7"})

    async def ready(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=200)

    async def meta(request: web.Request) -> web.Response:
        seen.append(request)
        body = gzip.compress(json.dumps({"name": "triton", "path": request.raw_path}).encode())
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response(text="late")

    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/v2/models/{model}/infer", infer)
    app.router.add_post("/v2/models/{model}/versions/{v}/infer", infer)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2", meta)
    app.router.add_get("/slow", slow)
    return app


async def _start_app(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


Scenario = Callable[
    [aiohttp.ClientSession, str, str, DriftProxy, list[web.Request]], Awaitable[None]
]


def _run(
    scenario: Scenario,
    upstream_up: bool = True,
    window: WindowConfig | None = None,
    **cfg: object,
) -> None:
    async def main() -> None:
        seen: list[web.Request] = []
        runner, port = await _start_app(_fake_triton(seen))
        if not upstream_up:
            await runner.cleanup()
        rng = np.random.default_rng(0)
        ref = build_reference(rng.normal(size=(2000, N_FEAT)), bins=10)
        metrics = DriftMetrics("m1", ref.names)
        monitor = DriftMonitor(
            ref,
            DetectorConfig("psi"),
            window or WindowConfig(size=10),
            on_evaluation=metrics.observe_evaluation,
        )
        config = ProxyConfig(upstream=f"http://127.0.0.1:{port}", **cfg)
        proxy = DriftProxy(config, monitor, metrics)
        pport, aport = await proxy.start("127.0.0.1", 0, admin_port=0)
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as s:
                await scenario(
                    s, f"http://127.0.0.1:{pport}", f"http://127.0.0.1:{aport}", proxy, seen
                )
        finally:
            await proxy.stop()
            if upstream_up:
                await runner.cleanup()

    if LOOP == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


def _infer_body(rows: int = 2) -> bytes:
    data = np.arange(rows * N_FEAT, dtype=float).tolist()
    return json.dumps(
        {"inputs": [{"name": "X", "shape": [rows, N_FEAT], "datatype": "FP64", "data": data}]}
    ).encode()


def test_passthrough_of_status_headers_body_and_query():
    async def scenario(s, url, admin, proxy, seen):
        body = _infer_body()
        async with s.post(
            f"{url}/v2/models/m1/infer?x=1",
            data=body,
            headers={"X-Custom": "yes", "Content-Type": "application/json"},
        ) as r:
            assert r.status == 200
            assert r.headers["Inference-Header-Content-Length"] == "7"
            assert json.loads(await r.read()) == {"model_name": "m1", "echo_bytes": len(body)}
        got = seen[-1]
        assert got.headers["X-Custom"] == "yes"
        assert got.query_string == "x=1"
        # Compressed responses are passed as they are, not decompressed and re-sent.
        async with s.get(f"{url}/v2?a=b&c=%20d") as r:
            assert r.headers["Content-Encoding"] == "gzip"
            doc = json.loads(gzip.decompress(await r.read()))
            assert doc == {"name": "triton", "path": "/v2?a=b&c=%20d"}
        async with s.get(f"{url}/v2/health/ready") as r:
            assert r.status == 200
        async with s.get(f"{url}/nope") as r:
            assert r.status == 404

    _run(scenario)


def test_successful_infer_feeds_the_monitor_and_errors_do_not():
    async def scenario(s, url, admin, proxy, seen):
        for path in ("/v2/models/m1/infer", "/v2/models/m1/versions/3/infer"):
            async with s.post(url + path, data=_infer_body(3)) as r:
                assert r.status == 200
        async with s.post(url + "/v2/models/m1/infer", data=b"{bad json") as r:
            assert r.status == 400
            assert "parse" in (await r.json())["error"]
        await proxy.feeder.drain()
        assert proxy.monitor.total_samples == 6
        async with s.get(admin + "/drift") as r:
            doc = await r.json()
        assert doc["samples"] == {"total": 6, "dropped": 0, "skipped": 0, "queued": 0}
        assert doc["window"]["current_samples"] == 6
        async with s.post(url + "/v2/models/m1/infer", data=_infer_body(5)) as r:
            assert r.status == 200
        await proxy.feeder.drain()
        async with s.get(admin + "/drift") as r:
            doc = await r.json()
        assert doc["window"]["evaluations"] == 1 and doc["model"] == "m1"
        async with s.get(admin + "/metrics") as r:
            text = await r.text()
        assert 'modelops_drift_samples_total{model="m1"} 11.0' in text
        assert 'modelops_proxy_requests_total{code="200",endpoint="infer"} 3.0' in text
        assert 'modelops_proxy_requests_total{code="400",endpoint="infer"} 1.0' in text
        assert 'modelops_drift_evaluations_total{model="m1"} 1.0' in text
        assert 'modelops_drift_feature_score{feature="f0",method="psi",model="m1"}' in text

    _run(scenario, model="m1")


def test_other_models_and_unmappable_inputs_are_not_counted():
    async def scenario(s, url, admin, proxy, seen):
        async with s.post(url + "/v2/models/other/infer", data=_infer_body()) as r:
            assert r.status == 200
        odd = json.dumps(
            {"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        ).encode()
        async with s.post(url + "/v2/models/m1/infer", data=odd) as r:
            assert r.status == 200
        await proxy.feeder.drain()
        assert proxy.monitor.total_samples == 0
        assert proxy.feeder.skipped == {"unmapped": 1}
        async with s.get(admin + "/metrics") as r:
            assert 'modelops_drift_skipped_requests_total{model="m1",reason="unmapped"} 1.0' in (
                await r.text()
            )

    _run(scenario, model="m1")


def test_time_based_windows_are_evaluated_by_the_background_ticker():
    async def scenario(s, url, admin, proxy, seen):
        for _ in range(3):
            async with s.post(url + "/v2/models/m1/infer", data=_infer_body(2)) as r:
                assert r.status == 200
        await proxy.feeder.drain()
        assert proxy.monitor.state.evaluations == 0  # no count-based window
        for _ in range(40):  # the ticker runs every 50 ms for a 0.3 s window
            await asyncio.sleep(0.05)
            if proxy.monitor.state.evaluations:
                break
        async with s.get(admin + "/drift") as r:
            doc = await r.json()
        assert doc["window"]["evaluations"] == 1 and doc["window"]["samples"] == 6
        assert doc["window"]["seconds"] == 0.3 and doc["window"]["size"] == 0

    _run(scenario, window=WindowConfig(size=0, seconds=0.3, min_samples=5))


def test_full_queue_drops_without_blocking():
    async def scenario(s, url, admin, proxy, seen):
        await proxy.feeder.stop()  # nobody consumes: the queue fills up
        body = _infer_body()
        for _ in range(4):
            async with s.post(url + "/v2/models/m1/infer", data=body) as r:
                assert r.status == 200
        assert proxy.feeder.queued == 1 and proxy.feeder.dropped == 3
        async with s.get(admin + "/metrics") as r:
            text = await r.text()
        assert 'modelops_drift_dropped_samples_total{model="m1"} 3.0' in text
        assert 'modelops_drift_queue_depth{model="m1"} 1.0' in text

    _run(scenario, stats_queue_bytes=len(_infer_body()) + 10)


def test_oversized_bodies_get_413_and_the_proxy_keeps_serving():
    async def scenario(s, url, admin, proxy, seen):
        async with s.post(url + "/v2/models/m1/infer", data=b"x" * 2048) as r:
            assert r.status == 413
            assert "exceeds the proxy limit of 1000 bytes" in (await r.json())["error"]

        async def chunks():
            for _ in range(4):
                yield b"y" * 600

        async with s.post(url + "/v2/models/m1/infer", data=chunks()) as r:
            assert r.status == 413
        n = len(seen)
        async with s.post(url + "/v2/models/m1/infer", data=_infer_body()) as r:
            assert r.status == 200
        assert len(seen) == n + 1  # oversized ones never reached Triton

    _run(scenario, max_body_bytes=1000)


def test_upstream_down_gives_502_json_and_proxy_survives():
    async def scenario(s, url, admin, proxy, seen):
        for _ in range(2):
            async with s.post(url + "/v2/models/m1/infer", data=_infer_body()) as r:
                assert r.status == 502
                assert "unreachable" in (await r.json())["error"]
        async with s.get(admin + "/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with s.get(admin + "/metrics") as r:
            assert 'modelops_proxy_requests_total{code="502",endpoint="infer"} 2.0' in (
                await r.text()
            )

    _run(scenario, upstream_up=False)


def test_slow_upstream_gives_504():
    async def scenario(s, url, admin, proxy, seen):
        async with s.get(url + "/slow") as r:
            assert r.status == 504
            assert "did not answer in time" in (await r.json())["error"]

    _run(scenario, upstream_timeout=0.2)


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/v2/models/m/infer", "infer"),
        ("/v2/models/m/versions/2/infer", "infer"),
        ("/v2/health/live", "health"),
        ("/v2/health/ready", "health"),
        ("/v2/models/m/ready", "health"),
        ("/v2/models/m/versions/1/ready", "health"),
        ("/v2", "metadata"),
        ("/v2/models/m", "metadata"),
        ("/v2/models/m/versions/1", "metadata"),
        ("/v2/models/m/config", "config"),
        ("/v2/models/m/stats", "statistics"),
        ("/v2/models/stats", "statistics"),
        ("/v2/repository/index", "repository"),
        ("/v2/repository/models/m/load", "repository"),
        ("/v2/systemsharedmemory/status", "other"),
        ("/metrics", "other"),
        ("/anything/at/all", "other"),
    ],
)
def test_endpoint_classification_is_a_small_fixed_set(path, endpoint):
    assert classify_endpoint(path) == endpoint

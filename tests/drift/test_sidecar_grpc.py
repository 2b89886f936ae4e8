"""The drift-monitor's gRPC proxy in front of the real tritonserver, with tritonclient.grpc.

The sidecar runs as a real process (``python -m modelops.cli drift-monitor``)
proxying Triton's HTTP and gRPC ports; every answer through it is compared
with Triton's own answer to the same call. The drift tests that run over
both protocols are in test_sidecar_triton.py.
"""

from __future__ import annotations

import contextlib
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from tests.drift.conftest import (
    MODEL,
    N_FEATURES,
    SLOW_MODEL,
    SLOW_SECONDS,
    drift_doc,
    grpc_client,
    grpc_infer,
    grpc_stub,
    grpc_typed_infer,
    http_get,
    metric_value,
)
from tests.support.triton_server import free_port

pytestmark = [pytest.mark.triton, pytest.mark.timeout(180)]


def _wait_samples(admin: str, n: int, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = drift_doc(admin)
        if doc["samples"]["total"] >= n or time.monotonic() > deadline:
            assert doc["samples"]["total"] == n, doc["samples"]
            return doc
        time.sleep(0.05)


def _grpc_metric(admin: str, method: str) -> float:
    text = http_get(admin + "/metrics")[1].decode()
    return metric_value(text, "modelops_proxy_grpc_requests_total", method=method)


def test_infer_through_sidecar_equals_direct_and_is_observed(triton, sidecar_subprocess):
    started = sidecar_subprocess("--model", MODEL, "--window", "100")
    admin = started[1]
    rng = np.random.default_rng(0)
    direct, via = grpc_client(triton.grpc_url), grpc_client(started.grpc_url)
    direct_stub, via_stub = grpc_stub(triton.grpc_url), grpc_stub(started.grpc_url)
    for batch in (1, 7, 64):
        x = rng.normal(size=(batch, N_FEATURES)).astype(np.float32)
        a, b = grpc_infer(direct, x), grpc_infer(via, x)  # raw_input_contents
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(b[:, 0], x.sum(axis=1), rtol=1e-5)
        np.testing.assert_array_equal(
            grpc_typed_infer(via_stub, x), grpc_typed_infer(direct_stub, x)
        )
    # Compressed calls: grpc's core undoes the compression, the rows are the same.
    x = rng.normal(size=(5, N_FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(
        grpc_infer(via, x, compression_algorithm="gzip"), grpc_infer(direct, x)
    )
    expected_rows = 2 * (1 + 7 + 64) + 5  # raw + typed per batch size, and the gzip one
    doc = _wait_samples(admin, expected_rows)
    assert doc["samples"]["skipped"] == 0 and doc["samples"]["dropped"] == 0
    assert doc["window"]["evaluations"] == expected_rows // 100
    assert _grpc_metric(admin, "ModelInfer") == 7


def test_stream_infer_through_sidecar(triton, sidecar_subprocess):
    started = sidecar_subprocess("--model", MODEL, "--window", "1000")
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(b, N_FEATURES)).astype(np.float32) for b in (1, 3, 5, 8)]
    results: list = []
    client = grpc_client(started.grpc_url)
    client.start_stream(callback=lambda result, error: results.append((result, error)))
    for i, x in enumerate(xs):
        inp = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        client.async_stream_infer(MODEL, [inp], request_id=str(i))
    # A request Triton refuses inside the stream: its error comes back on the
    # stream, the stream carries on, and the request is not observed.
    bad = grpcclient.InferInput("INPUT0", [1, N_FEATURES - 1], "FP32")
    bad.set_data_from_numpy(np.ones((1, N_FEATURES - 1), dtype=np.float32))
    client.async_stream_infer(MODEL, [bad], request_id="bad")
    x_last = rng.normal(size=(2, N_FEATURES)).astype(np.float32)
    last = grpcclient.InferInput("INPUT0", list(x_last.shape), "FP32")
    last.set_data_from_numpy(x_last)
    client.async_stream_infer(MODEL, [last], request_id="last")
    client.stop_stream()  # waits for the responses
    assert len(results) == len(xs) + 2
    by_id = {r.get_response().id: r for r, e in results if e is None}
    errors = [e for _, e in results if e is not None]
    assert len(errors) == 1 and "INPUT0" in str(errors[0])
    for i, x in enumerate(xs):
        np.testing.assert_allclose(by_id[str(i)].as_numpy("OUTPUT0")[:, 0], x.sum(axis=1), 1e-5)
    np.testing.assert_allclose(by_id["last"].as_numpy("OUTPUT0")[:, 0], x_last.sum(axis=1), 1e-5)
    doc = _wait_samples(started[1], 1 + 3 + 5 + 8 + 2)
    assert doc["samples"]["skipped"] == 0
    assert _grpc_metric(started[1], "ModelStreamInfer") == 1


def test_control_calls_equal_direct(triton, sidecar_subprocess):
    started = sidecar_subprocess()
    c, d = grpc_client(started.grpc_url), grpc_client(triton.grpc_url)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert not c.is_model_ready("no_such_model")
    for call in (
        lambda k: k.get_server_metadata(as_json=True),
        lambda k: k.get_model_metadata(MODEL, as_json=True),
        lambda k: k.get_model_metadata(MODEL, model_version="1", as_json=True),
        lambda k: k.get_model_config(MODEL, as_json=True),
        lambda k: k.get_model_repository_index(as_json=True),
        lambda k: k.get_system_shared_memory_status(as_json=True),
        lambda k: k.get_trace_settings(as_json=True),
    ):
        assert call(c) == call(d)
    stats = c.get_inference_statistics(MODEL, as_json=True)
    assert stats["model_stats"][0]["name"] == MODEL
    # The standard gRPC health service (grpc.health.v1) is not part of Triton's
    # inference service; it passes through all the same. Empty request; the
    # answer is HealthCheckResponse{status: SERVING}, i.e. field 1 = 1.
    for address in (started.grpc_url, triton.grpc_url):
        with grpc.insecure_channel(address) as ch:
            check = ch.unary_unary("/grpc.health.v1.Health/Check")
            assert check(b"", timeout=5) == b"\x08\x01"


def test_errors_keep_their_status_codes(triton, sidecar_subprocess):
    started = sidecar_subprocess("--model", MODEL, "--stats-max-bytes", "20000")
    admin = started[1]
    c, d = grpc_client(started.grpc_url), grpc_client(triton.grpc_url)
    x = np.ones((2, N_FEATURES), dtype=np.float32)

    def outcome(client, fn):
        with pytest.raises(InferenceServerException) as err:
            fn(client)
        return err.value.status(), err.value.message()

    def infer_as(model: str, dtype: str = "FP32", cols: int = N_FEATURES):
        def fn(client):
            inp = grpcclient.InferInput("INPUT0", [2, cols], dtype)
            inp.set_data_from_numpy(
                np.ones((2, cols), dtype=np.float32 if dtype == "FP32" else np.int32)
            )
            return client.infer(model, [inp])

        return fn

    cases = {
        "unknown model": infer_as("no_such_model"),
        "wrong dtype": infer_as(MODEL, "INT32"),
        "wrong shape": infer_as(MODEL, cols=N_FEATURES - 1),
        "unknown model metadata": lambda k: k.get_model_metadata("no_such_model"),
        "unknown model config": lambda k: k.get_model_config("no_such_model"),
        "unknown version": lambda k: k.get_model_metadata(MODEL, model_version="9"),
    }
    for name, fn in cases.items():
        via, direct = outcome(c, fn), outcome(d, fn)
        assert via == direct, name
        assert via[0].startswith("StatusCode."), name
    assert outcome(c, cases["unknown model"])[0] == "StatusCode.NOT_FOUND"
    assert outcome(c, cases["wrong shape"])[0] == "StatusCode.INVALID_ARGUMENT"

    # Over the statistics cap: answered by Triton, counted as skipped, not buffered.
    big = np.ones((256, N_FEATURES), dtype=np.float32)  # 20 KiB of raw tensor
    np.testing.assert_allclose(grpc_infer(c, big)[:, 0], big.sum(axis=1))

    # Still serving; none of the failed calls reached the drift window.
    np.testing.assert_allclose(grpc_infer(c, x)[:, 0], x.sum(axis=1))
    doc = _wait_samples(admin, 2)
    assert doc["samples"]["skipped"] == 1  # the large one (too_large)
    text = http_get(admin + "/metrics")[1].decode()
    assert metric_value(text, "modelops_drift_skipped_requests_total", reason="too_large") == 1
    assert started[2].poll() is None
    # unknown model x2, dtype, shape x2, the large one, the last one
    assert _grpc_metric(admin, "ModelInfer") == 7


def test_client_deadline_is_honoured(triton, sidecar_subprocess):
    started = sidecar_subprocess()
    c = grpc_client(started.grpc_url)
    inp = grpcclient.InferInput("INPUT0", [1], "FP32")
    inp.set_data_from_numpy(np.ones(1, dtype=np.float32))
    t0 = time.monotonic()
    with pytest.raises(InferenceServerException) as err:
        c.infer(SLOW_MODEL, [inp], client_timeout=0.5)
    elapsed = time.monotonic() - t0
    assert err.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert elapsed < SLOW_SECONDS / 2, elapsed
    # With time to spare the same call succeeds through the proxy.
    out = c.infer(SLOW_MODEL, [inp], client_timeout=SLOW_SECONDS * 5)
    assert out.as_numpy("OUTPUT0").tolist() == [1.0]
    # (That the deadline reaches Triton as the client set it is checked in
    # tests/unit/test_drift_grpc_proxy.py: Triton does not report it back.)


def test_typed_contents_of_another_model_are_not_observed(triton, sidecar_subprocess):
    started = sidecar_subprocess("--model", SLOW_MODEL)
    stub = grpc_stub(started.grpc_url)
    grpc_typed_infer(stub, np.ones((1, N_FEATURES)))  # sum20: not the watched model
    time.sleep(0.3)
    doc = drift_doc(started[1])
    assert doc["samples"] == {"total": 0, "dropped": 0, "skipped": 0, "queued": 0}


def test_triton_grpc_down_gives_unavailable_not_a_crash(triton, sidecar_subprocess):
    started = sidecar_subprocess(grpc_upstream=f"127.0.0.1:{free_port()}")
    url, admin, proc = started
    c = grpc_client(started.grpc_url)
    with pytest.raises(InferenceServerException) as err:
        c.is_server_live()
    assert err.value.status() == "StatusCode.UNAVAILABLE"
    with pytest.raises(InferenceServerException) as err:
        grpc_infer(c, np.ones((1, N_FEATURES)))
    assert err.value.status() == "StatusCode.UNAVAILABLE"
    assert http_get(admin + "/healthz")[0] == 200
    assert http_get(url + "/v2/health/ready")[0] == 200  # HTTP unaffected
    assert proc.poll() is None


def test_request_message_layout_assumption_holds_for_tritonclient():
    """The hot path reads model_name from the first bytes; tritonclient writes it first."""
    from tritonclient.grpc._utils import _get_inference_request

    from modelops.drift.grpc_payload import leading_model_name

    inp = grpcclient.InferInput("INPUT0", [1, N_FEATURES], "FP32")
    inp.set_data_from_numpy(np.ones((1, N_FEATURES), dtype=np.float32))
    req = _get_inference_request(  # what tritonclient.grpc puts on the wire
        model_name=MODEL,
        inputs=[inp],
        model_version="",
        request_id="",
        outputs=None,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        parameters=None,
    )
    assert isinstance(req, service_pb2.ModelInferRequest)
    assert leading_model_name(req.SerializeToString()) == MODEL.encode()


# -- bounds and a misbehaving upstream ---------------------------------------------------


def _rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_connection_limit_and_flat_memory(triton, sidecar_subprocess):
    started = sidecar_subprocess("--model", MODEL, "--grpc-max-connections", "2")
    admin, proc = started[1], started[2]
    opts = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(started.grpc_url, options=opts) for _ in range(3)]
    live = [ch.unary_unary("/inference.GRPCInferenceService/ServerLive") for ch in channels]
    assert live[0](b"", timeout=5) == live[1](b"", timeout=5)  # two connections: fine
    with pytest.raises(grpc.RpcError) as err:
        live[2](b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    text = http_get(admin + "/metrics")[1].decode()
    assert metric_value(text, "modelops_proxy_grpc_refused_connections_total", reason="limit") >= 1
    assert metric_value(text, "modelops_proxy_grpc_connections") == 2
    for ch in channels:
        ch.close()
    # The relay sees the closed connections a moment later; until then a new one is
    # still over the limit (a loaded machine made that race fail the next call).
    deadline = time.monotonic() + 10
    while metric_value(http_get(admin + "/metrics")[1].decode(), "modelops_proxy_grpc_connections"):
        assert time.monotonic() < deadline, "closed gRPC connections still counted"
        time.sleep(0.05)

    # Thousands of observed calls: the relay's memory does not grow with them.
    client = grpc_client(started.grpc_url)
    x = np.ones((1, N_FEATURES), dtype=np.float32)
    for _ in range(500):
        grpc_infer(client, x)
    before = _rss_bytes(proc.pid)
    for _ in range(3000):
        grpc_infer(client, x)
    grown = _rss_bytes(proc.pid) - before
    assert grown < 8 * 1024 * 1024, grown
    _wait_samples(admin, 3500, timeout=30)


def test_triton_restarted_under_the_relay(triton_factory, model_repository, sidecar_subprocess):
    """Triton goes away with a stream open and comes back on the same port: new calls work."""
    own = triton_factory(model_repository)
    started = sidecar_subprocess("--model", MODEL, grpc_upstream=own.grpc_url)
    client = grpc_client(started.grpc_url)
    x = np.ones((1, N_FEATURES), dtype=np.float32)
    results: list = []
    client.start_stream(callback=lambda result, error: results.append((result, error)))
    inp = grpcclient.InferInput("INPUT0", [1, N_FEATURES], "FP32")
    inp.set_data_from_numpy(x)
    client.async_stream_infer(MODEL, [inp])
    deadline = time.monotonic() + 10
    while not results and time.monotonic() < deadline:
        time.sleep(0.05)
    assert results and results[0][1] is None
    ports = (own.http_port, own.grpc_port, own.metrics_port)
    own.stop()
    deadline = time.monotonic() + 10
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(results) == 2 and results[1][1] is not None  # the stream ended with an error
    with pytest.raises(InferenceServerException) as err:
        grpc_infer(client, x)
    assert err.value.status() == "StatusCode.UNAVAILABLE"
    with contextlib.suppress(InferenceServerException):
        client.stop_stream()
    again = triton_factory(
        model_repository, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2]
    )
    assert again.grpc_port == ports[1]
    deadline = time.monotonic() + 20
    while True:  # the client reconnects with its own backoff
        try:
            np.testing.assert_allclose(grpc_infer(client, x)[:, 0], x.sum(axis=1))
            break
        except InferenceServerException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert started[2].poll() is None

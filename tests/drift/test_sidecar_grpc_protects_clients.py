"""The gRPC half of issue 18: what users feel is counted apart from their own
mistakes, every ModelInfer answer names who gave it, and SIGTERM drains.

The sidecar relays to the real tritonserver (``sum20`` and the ``slow`` model);
clients are grpcio's generated stub and tritonclient.grpc. The drain test
retires a real sidecar process with SIGTERM while gRPC calls are in flight.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from modelops.drift.grpc_proxy import CLIENT_FAULT_CODES
from tests.drift.conftest import (
    MODEL,
    N_FEATURES,
    REPO_ROOT,
    SLOW_MODEL,
    SLOW_SECONDS,
    Sidecar,
    grpc_client,
    grpc_infer,
    grpc_stub,
    http_get,
    wait_healthy,
)
from tests.support.triton_server import free_ports

pytestmark = [pytest.mark.triton, pytest.mark.timeout(180)]


@pytest.fixture
def sidecar(triton, reference_path: Path, tmp_path: Path) -> Iterator[Sidecar]:
    traffic = tmp_path / "traffic.json"
    traffic.write_text(json.dumps({"epoch": "g1"}))
    args = [
        "--reference", str(reference_path), "--upstream", triton.http_url, "--model", MODEL,
        "--grpc-upstream", triton.grpc_url, "--traffic-file", str(traffic),
        "--model-version", "7",
    ]  # fmt: skip
    with Sidecar(args) as sc:
        deadline = time.monotonic() + 10
        while _rollout(sc)["epoch"] != "g1":
            assert time.monotonic() < deadline, "traffic file not applied"
            time.sleep(0.05)
        yield sc


def _rollout(sc: Sidecar) -> dict:
    return json.loads(http_get(sc.admin_url + "/rollout")[1])


def _request(x: np.ndarray, model: str = MODEL) -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name=model)
    req.inputs.add(name="INPUT0", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.astype("<f4").tobytes())
    return req


def _settle(sc: Sidecar, done, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while not done(doc := _rollout(sc)):
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)
    return doc


def test_grpc_client_faults_are_apart_and_answers_name_version_and_epoch(sidecar):
    stub = grpc_stub(sidecar.grpc_url)
    x = np.arange(2 * N_FEATURES, dtype=np.float32).reshape(2, N_FEATURES)
    resp, call = stub.ModelInfer.with_call(_request(x), timeout=30)
    got = np.frombuffer(resp.raw_output_contents[0], "<f4")
    np.testing.assert_allclose(got, x.sum(axis=1))
    meta = dict(call.initial_metadata())
    assert meta["x-modelops-version"] == "7" and meta["x-modelops-epoch"] == "g1"

    # The caller's mistakes: a wrong shape, a model that is not there.
    faults = []
    for req in (_request(x[:, :-1]), _request(x, model="no_such_model")):
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(req, timeout=30)
        faults.append(err.value.code())
        # A trailers-only error answer names the version too.
        assert dict(err.value.trailing_metadata())["x-modelops-version"] == "7"
    assert all(code.value[0] in CLIENT_FAULT_CODES for code in faults), faults

    # Not inference: never counted, never named.
    live, call = stub.ServerLive.with_call(service_pb2.ServerLiveRequest(), timeout=10)
    assert live.live and "x-modelops-version" not in dict(call.initial_metadata())
    stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=MODEL), timeout=10)

    # What users feel: a call that runs out of time (the client gives up, a reset).
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(_request(np.ones((1,), np.float32), SLOW_MODEL), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    doc = _settle(sidecar, lambda d: d["requests"] == 4)
    assert doc["clientErrors"] == 2 and doc["errors"] == 1
    assert doc["latencyBuckets"]["+Inf"] == 4


def test_many_calls_keep_the_hpack_tables_in_step(sidecar):
    """The added metadata must not disturb either side's HPACK state: many calls
    on one connection (tritonclient, then a stub), each answer exact and named."""
    client = grpc_client(sidecar.grpc_url)
    stub = grpc_stub(sidecar.grpc_url)
    rng = np.random.default_rng(1)
    for i in range(60):
        x = rng.normal(size=(1 + i % 5, N_FEATURES)).astype(np.float32)
        np.testing.assert_allclose(grpc_infer(client, x)[:, 0], x.sum(axis=1), rtol=1e-5)
        _, call = stub.ModelInfer.with_call(_request(x), timeout=30)
        assert dict(call.initial_metadata())["x-modelops-epoch"] == "g1"
    doc = _settle(sidecar, lambda d: d["requests"] == 120)
    assert doc["errors"] == doc["clientErrors"] == 0


def test_sigterm_drains_grpc_calls_in_flight(triton, reference_path):
    """SIGTERM with gRPC calls in flight on two connections: every call is answered,
    new connections are refused, the process exits 0 (GOAWAY, then close)."""
    port, admin, grpc_port = free_ports(3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", "drift-monitor", "--reference", str(reference_path),
         "--upstream", triton.http_url, "--host", "127.0.0.1", "--port", str(port),
         "--admin-port", str(admin), "--grpc-upstream", triton.grpc_url,
         "--grpc-port", str(grpc_port), "--drain-seconds", "20"],
        cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{admin}", proc)
        address = f"127.0.0.1:{grpc_port}"
        stubs = [grpc_stub(address), grpc_stub(address)]  # two channels: two connections
        for stub in stubs:  # connected before the signal
            stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10)
        results: list[object] = []

        def call(stub) -> None:
            try:
                resp = stub.ModelInfer(_request(np.ones((1,), np.float32), SLOW_MODEL), timeout=60)
                results.append(np.frombuffer(resp.raw_output_contents[0], "<f4").tolist())
            except grpc.RpcError as exc:
                results.append(exc.code())

        threads = [threading.Thread(target=call, args=(stubs[i % 2],)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # the calls are with Triton now (SLOW_SECONDS per batch)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", grpc_port), timeout=2).close()
        for t in threads:
            t.join(60)
        answered = time.monotonic()
        assert results == [[1.0]] * 4
        assert proc.wait(30) == 0
        # Each connection closed once its calls had ended, not at the drain's deadline.
        assert time.monotonic() - answered < 5
        # It waited for the answers (the slow model serves one batch at a time).
        assert time.monotonic() - t0 >= SLOW_SECONDS - 1.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""A packaged TorchScript model served by the real Triton through the python backend."""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from modelops.triton.config import RuntimeSettings
from modelops.triton.packaging import package_torchscript
from tests.support.models import LINEAR_SIGNATURE, script_linear, torch_reference
from tests.support.triton_server import TritonServer

pytestmark = [pytest.mark.triton, pytest.mark.torch]

BATCHED = "linear"
UNBATCHED = "linear_nobatch"


@pytest.fixture(scope="module")
def module_and_server(triton_factory, tmp_path_factory):
    work = tmp_path_factory.mktemp("torchscript")
    module = script_linear(work / "linear.pt", seed=7)
    repo = work / "repo"
    # A long queue delay so that concurrent requests reliably meet in one batch.
    package_torchscript(
        work / "linear.pt",
        repo,
        BATCHED,
        LINEAR_SIGNATURE,
        RuntimeSettings(
            max_batch_size=16, max_queue_delay_microseconds=50_000, instance_kind="cpu"
        ),
    )
    package_torchscript(
        work / "linear.pt",
        repo,
        UNBATCHED,
        LINEAR_SIGNATURE,
        RuntimeSettings(max_batch_size=0, instance_kind="cpu"),
    )
    return module, triton_factory(repo)


@pytest.fixture(scope="module")
def server(module_and_server) -> TritonServer:
    return module_and_server[1]


@pytest.fixture(scope="module")
def module(module_and_server):
    return module_and_server[0]


def batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


def http_infer(server: TritonServer, model: str, x: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(server.http_address)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp]).as_numpy("y")


def success_count(server: TritonServer, model: str) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    pattern = rf'^nv_inference_request_success\{{[^}}]*model="{model}"[^}}]*\}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no success metric for {model}"
    return float(match.group(1))


def test_http_inference_matches_torch(server, module):
    x = batch(3)
    y = http_infer(server, BATCHED, x)
    assert y.shape == (3, 2)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, torch_reference(module, x), rtol=1e-6, atol=1e-6)


def test_grpc_inference_matches_torch(server, module):
    x = batch(5, seed=1)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    y = client.infer(BATCHED, [inp]).as_numpy("y")
    np.testing.assert_allclose(y, torch_reference(module, x), rtol=1e-6, atol=1e-6)


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(server, module):
    def stats() -> dict:
        url = f"{server.http_url}/v2/models/{BATCHED}/stats"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())["model_stats"][0]

    before = stats()
    client = httpclient.InferenceServerClient(server.http_address, concurrency=12)
    inputs = [batch(1 + i % 3, seed=100 + i) for i in range(12)]
    pending = []
    for x in inputs:
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        pending.append(client.async_infer(BATCHED, [inp]))
    for x, request in zip(inputs, pending, strict=True):
        y = request.get_result().as_numpy("y")
        np.testing.assert_allclose(y, torch_reference(module, x), rtol=1e-6, atol=1e-6)
    client.close()  # an open connection would hold up the server's shutdown
    after = stats()
    requests = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert requests == sum(len(x) for x in inputs)
    # Fewer model executions than requests: the dynamic batcher combined them
    # and model.py split the combined result back per request.
    assert executions < len(inputs)


def test_unbatched_model_takes_single_samples(server, module):
    x = batch(1)[0]
    client = httpclient.InferenceServerClient(server.http_address)
    inp = httpclient.InferInput("x", [4], "FP32")
    inp.set_data_from_numpy(x)
    y = client.infer(UNBATCHED, [inp]).as_numpy("y")
    np.testing.assert_allclose(y, torch_reference(module, x[None])[0], rtol=1e-6, atol=1e-6)


def test_success_metric_counts_requests(server):
    before = success_count(server, BATCHED)
    for i in range(3):
        http_infer(server, BATCHED, batch(2, seed=i))
    assert success_count(server, BATCHED) == before + 3


def test_metadata_reflects_the_signature(server):
    client = httpclient.InferenceServerClient(server.http_address)
    meta = client.get_model_metadata(BATCHED)
    assert meta["versions"] == ["1"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("x", "FP32", [-1, 4])
    ]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
        ("y", "FP32", [-1, 2])
    ]


def test_wrong_shape_is_refused(server):
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        http_infer(server, BATCHED, np.zeros((1, 5), dtype=np.float32))

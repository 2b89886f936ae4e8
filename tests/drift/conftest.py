"""Fixtures for the drift-monitor tests against the real tritonserver.

The served model is a python-backend model written here (numpy only, so no
torch): ``sum20`` returns the sum of its 20 FP32 features. The reference is
20 independent standard normals, so tests control drift exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from modelops.drift import cli as drift_cli
from modelops.drift.grpc_proxy import GrpcProxy
from modelops.drift.proxy import DriftProxy
from modelops.drift.reference import build_reference
from tests.support.triton import triton_factory, triton_install  # noqa: F401 - fixtures
from tests.support.triton_server import TritonServer, free_ports

MODEL = "sum20"
N_FEATURES = 20
REPO_ROOT = Path(__file__).resolve().parents[2]

CONFIG = f"""name: "{MODEL}"
backend: "python"
max_batch_size: 256
input [ {{ name: "INPUT0", data_type: TYPE_FP32, dims: [ {N_FEATURES} ] }} ]
output [ {{ name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 1 ] }} ]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
"""

MODEL_PY = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            y = x.astype(np.float32).sum(axis=-1, keepdims=True)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", y)]))
        return responses
"""


# A model that takes its time: deadlines and cancellation through the proxy.
SLOW_MODEL = "slow"
SLOW_SECONDS = 3.0
SLOW_CONFIG = f"""name: "{SLOW_MODEL}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0", data_type: TYPE_FP32, dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 1 ] }} ]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
"""
SLOW_PY = f"""
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        time.sleep({SLOW_SECONDS})
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
        return out
"""


def write_model_repository(root: Path) -> Path:
    for name, config, code in ((MODEL, CONFIG, MODEL_PY), (SLOW_MODEL, SLOW_CONFIG, SLOW_PY)):
        model = root / name
        (model / "1").mkdir(parents=True, exist_ok=True)
        (model / "config.pbtxt").write_text(config)
        (model / "1" / "model.py").write_text(code)
    return root


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def reference_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(2024)
    ref = build_reference(rng.normal(size=(20_000, N_FEATURES)), bins=20)
    path = tmp_path_factory.mktemp("ref") / "reference.json"
    ref.save(path)
    return path


@pytest.fixture(scope="module")
def triton(triton_factory, model_repository: Path) -> TritonServer:  # noqa: F811
    return triton_factory(model_repository)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post(
    url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def drift_doc(admin_url: str) -> dict:
    status, body = http_get(admin_url + "/drift")
    assert status == 200
    return json.loads(body)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text)."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
            found = True
    if not found:
        raise AssertionError(f"no sample of {name} with {labels}")
    return total


def wait_healthy(admin_url: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"drift-monitor exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if http_get(admin_url + "/healthz", timeout=1)[0] == 200:
                return
        time.sleep(0.05)
    raise TimeoutError("drift-monitor did not become healthy")


class Sidecar:
    """The drift-monitor serving in this process, on its own event loop thread."""

    def __init__(self, argv: list[str]) -> None:
        parser = argparse.ArgumentParser()
        drift_cli.add_arguments(parser)
        self.args = parser.parse_args(argv)
        self.proxy: DriftProxy | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.url = self.admin_url = self.grpc_url = ""
        self.grpc: GrpcProxy | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.proxy = drift_cli.build_proxy(self.args)
        port, admin = await self.proxy.start("127.0.0.1", 0, admin_port=0)
        self.url, self.admin_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
        self.grpc = drift_cli.build_grpc_proxy(self.args, self.proxy)
        if self.grpc is not None:
            self.grpc_url = f"127.0.0.1:{await self.grpc.start('127.0.0.1', 0)}"
        self._ready.set()
        await self._stop.wait()
        if self.grpc is not None:
            await self.grpc.stop(0)
        await self.proxy.stop()

    def __enter__(self) -> Sidecar:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("in-process sidecar did not start")
        return self

    def drain(self) -> None:
        assert self.proxy is not None
        asyncio.run_coroutine_threadsafe(self.proxy.feeder.drain(), self._loop).result(30)

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


class Started(tuple):
    """``(url, admin_url, process)`` of a started sidecar; ``grpc_url`` is its gRPC host:port."""

    grpc_url: str


@pytest.fixture
def sidecar_subprocess(triton: TritonServer, reference_path: Path) -> Iterator:
    """Start ``python -m modelops.cli drift-monitor`` as a real process: ``start(*extra_args)``.

    It proxies both Triton's HTTP (``url``) and gRPC (``.grpc_url``) endpoints.
    """
    procs: list[subprocess.Popen] = []

    def start(
        *extra: str, upstream: str | None = None, grpc_upstream: str | None = None
    ) -> Started:
        port, admin, grpc_port = free_ports(3)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["MODELOPS_DRIFT_REFERENCE"] = str(reference_path)  # the env route, on purpose
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelops.cli",
                "drift-monitor",
                "--upstream",
                upstream or triton.http_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--admin-port",
                str(admin),
                "--grpc-upstream",
                grpc_upstream or triton.grpc_url,
                "--grpc-port",
                str(grpc_port),
                *extra,
            ],
            cwd=REPO_ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        admin_url = f"http://127.0.0.1:{admin}"
        wait_healthy(admin_url, proc)
        started = Started((f"http://127.0.0.1:{port}", admin_url, proc))
        started.grpc_url = f"127.0.0.1:{grpc_port}"
        return started

    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# -- gRPC clients ----------------------------------------------------------------------


def grpc_client(address: str) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(address)


def grpc_infer(client: grpcclient.InferenceServerClient, x: np.ndarray, **kw) -> np.ndarray:
    """ModelInfer as tritonclient sends it: the tensor in raw_input_contents."""
    inp = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x.astype(np.float32))
    return client.infer(MODEL, [inp], **kw).as_numpy("OUTPUT0")


def grpc_stub(address: str) -> service_pb2_grpc.GRPCInferenceServiceStub:
    """A plain generated stub: lets a test build the request message itself."""
    return service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))


def grpc_typed_infer(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, x: np.ndarray, model: str = MODEL
) -> np.ndarray:
    """ModelInfer with the tensor in typed ``fp32_contents`` (what other clients send)."""
    req = service_pb2.ModelInferRequest(model_name=model)
    inp = req.inputs.add(name="INPUT0", datatype="FP32", shape=list(x.shape))
    inp.contents.fp32_contents.extend(x.astype(np.float32).ravel().tolist())
    resp = stub.ModelInfer(req, timeout=30)
    return np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(resp.outputs[0].shape)


class Inferer:
    """Sends one batch over ``protocol`` and returns OUTPUT0: the drift tests run over both.

    gRPC alternates raw_input_contents and typed contents, so both encodings feed the windows.
    """

    def __init__(self, protocol: str, http_url: str, grpc_address: str) -> None:
        self.protocol = protocol
        self.grpc_address = grpc_address
        self._n = 0
        if protocol == "http":
            self._http = httpclient.InferenceServerClient(
                http_url.removeprefix("http://"), concurrency=1
            )
        else:
            self._grpc = grpc_client(grpc_address)
            self._stub = grpc_stub(grpc_address)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.protocol == "http":
            inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
            inp.set_data_from_numpy(x.astype(np.float32))
            return self._http.infer(MODEL, [inp]).as_numpy("OUTPUT0")
        self._n += 1
        if self._n % 2:
            return grpc_infer(self._grpc, x)
        return grpc_typed_infer(self._stub, x)

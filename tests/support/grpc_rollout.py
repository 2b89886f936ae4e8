"""Shared pieces of the gRPC rollout tests (mirror, split, in place): a stable sidecar
that reads a traffic file, its ``/rollout`` figures, and a stand-in gRPC candidate.

The stable side is always a real sidecar in front of a real Triton; the stand-in
candidate is a small grpcio server that answers zeros, fails or hangs on demand,
what a real Triton cannot be made to do at will (what the sidecar sees of a
candidate is exactly a gRPC endpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2

INFER = "/inference.GRPCInferenceService/ModelInfer"


class StandInCandidate:
    """A gRPC candidate that answers ``wrong`` (zeros), ``unavailable``, or ``hang``s."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0
        self.mirror_marked = 0
        self._release = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(8))
        self.server.add_generic_rpc_handlers((self,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == INFER:
            return grpc.unary_unary_rpc_method_handler(self._infer)
        return None

    def _infer(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls += 1
        self.mirror_marked += dict(context.invocation_metadata()).get("x-modelops-mirror") == "1"
        if self.mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        if self.mode == "hang":
            self._release.wait(10)
        req = service_pb2.ModelInferRequest.FromString(request)
        rows = req.inputs[0].shape[0]
        resp = service_pb2.ModelInferResponse(model_name=req.model_name)
        resp.outputs.add(name="OUTPUT0", datatype="FP32", shape=[rows, 1])
        resp.raw_output_contents.append(np.zeros(rows, "<f4").tobytes())
        return resp.SerializeToString()

    def close(self) -> None:
        self._release.set()
        self.server.stop(0)


def rollout_doc(admin_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(admin_url + "/rollout", timeout=5) as resp:
        return json.loads(resp.read())


def settle(
    admin_url: str, done: Callable[[dict[str, Any]], bool], timeout: float = 15
) -> dict[str, Any]:
    """``/rollout`` once ``done`` holds (polled: the figures are counted asynchronously)."""
    deadline = time.monotonic() + timeout
    while not done(doc := rollout_doc(admin_url)):
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)
    return doc


def write_traffic(path: Path, doc: dict[str, Any]) -> None:
    """Replace the traffic file at once, as the kubelet does with a ConfigMap."""
    tmp = path.with_name(".t-" + path.name)
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


class StableSidecars:
    """Stable sidecars (``make(argv)``: a started context manager with ``admin_url``)
    in front of one Triton, each reading ``traffic``; ``start`` applies a traffic
    document and waits until the sidecar acts on its epoch."""

    def __init__(
        self,
        make: Callable[[list[str]], AbstractContextManager[Any]],
        base: list[str],
        traffic: Path,
    ) -> None:
        self.make, self.base, self.traffic = make, base, traffic
        self.started: list[AbstractContextManager[Any]] = []
        write_traffic(traffic, {})

    def start(self, doc: dict[str, Any], *extra: str, warm: Callable[[Any], object] = id) -> Any:
        """A sidecar with ``extra`` arguments; ``warm`` runs before ``doc`` is applied."""
        cm = self.make([*self.base, "--traffic-file", str(self.traffic), *extra])
        sc = cm.__enter__()
        self.started.append(cm)
        warm(sc)
        write_traffic(self.traffic, doc)
        settle(sc.admin_url, lambda d: d["epoch"] == doc["epoch"], timeout=10)
        return sc

    def close(self) -> None:
        for cm in self.started:
            cm.__exit__(None, None, None)


@contextlib.contextmanager
def stable_sidecars(
    make: Callable[[list[str]], AbstractContextManager[Any]], base: list[str], traffic: Path
) -> Iterator[StableSidecars]:
    """The factory for a fixture's ``with``; stops what it started."""
    sidecars = StableSidecars(make, base, traffic)
    try:
        yield sidecars
    finally:
        sidecars.close()


def stable_args(reference: Path, triton: Any, model: str, *extra: str) -> list[str]:
    """The stable sidecar's arguments in front of ``triton`` (a TritonServer): version 7,
    mirrors and splits given up after 1 s."""
    return [
        "--reference", str(reference), "--upstream", triton.http_url, "--model", model,
        "--grpc-upstream", triton.grpc_url, "--model-version", "7", "--mirror-timeout", "1",
        *extra,
    ]  # fmt: skip


def separate_candidate(grpc_address: str, version: str = "8") -> dict[str, str]:
    """A traffic file's separate candidate with a gRPC endpoint (its HTTP one unused)."""
    return {"version": version, "http": "http://127.0.0.1:9", "grpc": grpc_address}

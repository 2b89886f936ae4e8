"""gRPC ModelInfer mirrored to the candidate (issue 18 item 5: Shadow over gRPC).

The stable side is the real Triton behind an in-process sidecar reading a
traffic file. The agreeing candidate is the real Triton itself (the same
model answers the same); the failing ones are a small grpcio server that
answers wrongly, fails, or never answers, on demand: a real Triton cannot be
made to do these at will, and what the sidecar sees of a candidate is
exactly a gRPC endpoint. The fixtures are shared with the split tests
(tests/support/grpc_rollout.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from tests.drift.conftest import (
    MODEL,
    N_FEATURES,
    Sidecar,
    grpc_client,
    grpc_infer,
    grpc_stub,
    http_get,
)
from tests.support.grpc_rollout import (
    StandInCandidate,
    rollout_doc,
    separate_candidate,
    settle,
    stable_args,
    stable_sidecars,
)

pytestmark = [pytest.mark.triton, pytest.mark.timeout(180)]


@pytest.fixture
def stable(triton, reference_path: Path, tmp_path: Path) -> Iterator[Callable[..., Sidecar]]:
    base = stable_args(reference_path, triton, MODEL)
    with stable_sidecars(Sidecar, base, tmp_path / "traffic.json") as sidecars:

        def start(grpc_candidate: str, *extra: str) -> Sidecar:
            # The model has one output column: values, not argmax, tell answers apart.
            agreement = {"mode": "RelativeTolerance", "tolerance": 1e-4}
            doc = {
                "epoch": "m",
                "mirrorPercent": 100,
                "candidate": separate_candidate(grpc_candidate),
                "agreement": agreement,
            }
            return sidecars.start(doc, *extra)

        yield start


def _rollout(sc: Sidecar) -> dict:
    return rollout_doc(sc.admin_url)


def _settle(sc: Sidecar, done: Callable[[dict], bool], timeout: float = 15) -> dict:
    return settle(sc.admin_url, done, timeout)


def _calls(sc: Sidecar, n: int) -> None:
    """n ModelInfer calls (tritonclient, raw contents); each answered by the stable Triton."""
    client = grpc_client(sc.grpc_url)
    rng = np.random.default_rng(2)
    for _ in range(n):
        x = rng.normal(size=(3, N_FEATURES)).astype(np.float32)
        np.testing.assert_allclose(grpc_infer(client, x)[:, 0], x.sum(axis=1), rtol=1e-5)


def test_mirrored_to_an_agreeing_candidate(stable, triton):
    sc = stable(triton.grpc_url)  # the same model: it agrees every time
    _calls(sc, 10)
    stub = grpc_stub(sc.grpc_url)  # and typed contents, the other request encoding
    req = service_pb2.ModelInferRequest(model_name=MODEL)
    inp = req.inputs.add(name="INPUT0", datatype="FP32", shape=[1, N_FEATURES])
    inp.contents.fp32_contents.extend([1.0] * N_FEATURES)
    stub.ModelInfer(req, timeout=30)
    doc = _settle(sc, lambda d: d["compared"] == 11)
    assert doc["mirrored"] == doc["agreed"] == 11
    assert doc["mirrorErrors"] == doc["mirrorDropped"] == doc["notCompared"] == 0
    assert doc["requests"] == 11 and doc["errors"] == 0


@pytest.mark.parametrize("mode", ["wrong", "unavailable", "hang"])
def test_a_failing_candidate_never_reaches_clients(stable, mode):
    cand = StandInCandidate(mode)
    try:
        sc = stable(cand.address)
        _calls(sc, 6)  # every client got the stable answer (checked in _calls)
        if mode == "wrong":
            doc = _settle(sc, lambda d: d["compared"] == 6)
            assert doc["agreed"] == 0 and doc["mirrorErrors"] == 0
        else:
            doc = _settle(sc, lambda d: d["mirrorErrors"] == 6)
            assert doc["mirrorTimeouts"] == (6 if mode == "hang" else 0)
            assert doc["compared"] == 0
        assert doc["mirrored"] == 6 and doc["errors"] == 0 and doc["requests"] == 6
        assert cand.calls == 6 and cand.mirror_marked == 6  # sent once each, marked a mirror
    finally:
        cand.close()


def test_requests_above_the_cap_are_not_mirrored(stable, triton):
    sc = stable(triton.grpc_url, "--stats-max-bytes", "2048")
    client = grpc_client(sc.grpc_url)
    big = np.ones((40, N_FEATURES), np.float32)  # 3200 bytes of tensor
    np.testing.assert_allclose(grpc_infer(client, big)[:, 0], big.sum(axis=1))
    small = np.ones((2, N_FEATURES), np.float32)
    grpc_infer(client, small)
    doc = _settle(sc, lambda d: d["compared"] == 1)
    assert doc["mirrorDropped"] == 1 and doc["mirrored"] == 1 and doc["agreed"] == 1


def test_mirrors_from_a_sidecar_process_on_its_own_event_loop(sidecar_subprocess, triton, tmp_path):
    """The sidecar process runs on uvloop when installed; grpcio's aio client mirrors there too."""
    traffic = tmp_path / "traffic.json"
    candidate = {"version": "8", "http": "http://127.0.0.1:9", "grpc": triton.grpc_url}
    traffic.write_text(json.dumps({"epoch": "p", "mirrorPercent": 100, "candidate": candidate}))
    started = sidecar_subprocess("--model", MODEL, "--traffic-file", str(traffic))
    client = grpc_client(started.grpc_url)
    x = np.ones((2, N_FEATURES), np.float32)
    for _ in range(5):
        np.testing.assert_allclose(grpc_infer(client, x)[:, 0], x.sum(axis=1))
    deadline = time.monotonic() + 15
    while (doc := json.loads(http_get(started[1] + "/rollout")[1]))["compared"] < 5:
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)
    assert doc["mirrored"] == doc["agreed"] == 5 and doc["mirrorErrors"] == 0

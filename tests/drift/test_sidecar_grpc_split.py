"""gRPC ModelInfer split to the candidate (issue 18 item 5: the canary over gRPC).

The stable side is the real Triton behind an in-process sidecar reading a
traffic file with a canary weight; clients are tritonclient and generated
stubs over one HTTP/2 connection each, so every answer the relay puts together
must keep the client's HPACK table and flow-control windows in step with
Triton's. Candidates: the real Triton itself (the same model: the answers are
Triton's, byte for byte the same length), and the small grpcio stand-in of
the mirror tests, which answers zeros (shorter than Triton's answer: padded),
fails, or hangs on demand (a real Triton cannot be made to at will).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.drift.conftest import (
    MODEL,
    N_FEATURES,
    Sidecar,
    grpc_client,
    grpc_infer,
    grpc_stub,
)
from tests.support.grpc_rollout import (
    StandInCandidate,
    rollout_doc,
    separate_candidate,
    stable_args,
    stable_sidecars,
)

pytestmark = [pytest.mark.triton, pytest.mark.timeout(180)]


@pytest.fixture
def stable(triton, reference_path: Path, tmp_path: Path) -> Iterator[Callable[..., Sidecar]]:
    base = stable_args(reference_path, triton, MODEL)
    with stable_sidecars(Sidecar, base, tmp_path / "traffic.json") as sidecars:

        def start(
            grpc_candidate: str, weight: float, warm: Callable[[Sidecar], object] = id
        ) -> Sidecar:
            """A stable sidecar splitting ``weight`` % to the candidate; ``warm`` runs
            before the traffic file names the candidate."""
            doc = {
                "epoch": "c",
                "canaryWeight": weight,
                "candidate": separate_candidate(grpc_candidate),
            }
            return sidecars.start(doc, warm=warm)

        yield start


def _rollout(sc: Sidecar) -> dict:
    return rollout_doc(sc.admin_url)


def _request(x: np.ndarray) -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name=MODEL)
    req.inputs.add(name="INPUT0", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.astype("<f4").tobytes())
    return req


class Connection:
    """A generated stub on one connection, warmed by one call before the split starts
    (an open connection when the rollout begins; the counts below are of split calls)."""

    def __init__(self, *options: tuple[str, int]) -> None:
        self.stub = None
        self.options = options

    def __call__(self, sc: Sidecar) -> None:
        channel = grpc.insecure_channel(sc.grpc_url, options=list(self.options))
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        _call(self.stub, np.zeros((1, N_FEATURES), np.float32))


def _call(stub, x: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    """One ModelInfer: the output column and the answer's initial metadata."""
    resp, call = stub.ModelInfer.with_call(_request(x), timeout=30)
    out = np.frombuffer(resp.raw_output_contents[0], "<f4")
    return out, dict(call.initial_metadata())


def test_the_canary_weight_of_calls_is_answered_by_a_real_triton_candidate(stable, triton):
    sc = stable(triton.grpc_url, 100)
    client = grpc_client(sc.grpc_url)  # tritonclient, one connection
    stub = grpc_stub(sc.grpc_url)  # a generated stub, another
    rng = np.random.default_rng(1)
    versions = []
    for _ in range(20):
        x = rng.normal(size=(3, N_FEATURES)).astype(np.float32)
        got = grpc_infer(client, x)
        np.testing.assert_allclose(got[:, 0], x.sum(axis=1), rtol=1e-5)
        out, meta = _call(stub, x)
        np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)
        assert meta["x-modelops-epoch"] == "c"
        versions.append(meta["x-modelops-version"])
    # Every call is the candidate's, the first of each connection included (the relay
    # tells Triton to keep no HPACK table for the client, see drift/h2_settings.py).
    assert versions == ["8"] * 20
    doc = _rollout(sc)
    assert doc["split"] == 40
    assert doc.get("splitFallbacks", 0) == 0 and doc.get("splitErrors", 0) == 0
    # Answers the candidate gave are not the stable version's figures.
    assert doc.get("requests", 0) == 0 and doc["errors"] == 0


def test_half_the_calls_on_one_connection_go_to_the_candidate(stable):
    candidate = StandInCandidate("wrong")  # answers zeros: who answered is visible
    try:
        conn = Connection()
        sc = stable(candidate.address, 50, conn)
        stub = conn.stub
        rng = np.random.default_rng(2)
        xs = [rng.normal(size=(4, N_FEATURES)).astype(np.float32) for _ in range(40)]
        # Concurrent calls on one HTTP/2 connection: held answers and passing ones interleave.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda x: _call(stub, x), xs))
        by_candidate = 0
        for x, (out, meta) in zip(xs, answers, strict=True):
            if meta["x-modelops-version"] == "8":
                by_candidate += 1
                assert not out.any()  # the candidate's zeros, padded to Triton's length
            else:
                assert meta["x-modelops-version"] == "7"
                np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)
        assert by_candidate == 20
        assert candidate.calls == 20
        doc = _rollout(sc)
        assert doc["split"] == 20 and doc["requests"] == 20
        # The split call is marked: the candidate's own sidecar never passes it on again.
        assert candidate.mirror_marked == 0
    finally:
        candidate.close()


def test_a_failing_candidate_falls_back_to_stable_and_trips_the_breaker(stable):
    candidate = StandInCandidate("unavailable")
    try:
        conn = Connection()
        sc = stable(candidate.address, 100, conn)
        stub = conn.stub
        rng = np.random.default_rng(3)
        for _ in range(12):
            x = rng.normal(size=(2, N_FEATURES)).astype(np.float32)
            out, meta = _call(stub, x)  # never an error for the client
            np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)
            assert meta["x-modelops-version"] == "7"
        doc = _rollout(sc)
        # 5 failures in a row open the breaker: the other 7 calls never reach the candidate.
        assert candidate.calls == 5
        assert doc["splitErrors"] == 5 and doc["breakerTrips"] == 1
        assert doc["splitFallbacks"] == 12
        assert doc.get("split", 0) == 0
        assert doc["requests"] == 12 and doc["errors"] == 0
    finally:
        candidate.close()


def test_a_candidate_that_does_not_answer_in_time_is_a_timeout_and_stable_answers(stable):
    candidate = StandInCandidate("hang")
    try:
        conn = Connection()
        sc = stable(candidate.address, 100, conn)
        stub = conn.stub
        x = np.ones((2, N_FEATURES), np.float32)
        start = time.monotonic()
        out, meta = _call(stub, x)
        assert 0.9 <= time.monotonic() - start < 5  # --mirror-timeout 1
        np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)
        assert meta["x-modelops-version"] == "7"
        doc = _rollout(sc)
        assert doc["splitTimeouts"] == 1 and doc["splitErrors"] == 1
    finally:
        candidate.close()


CALLS = 400


class ShortCandidate(StandInCandidate):
    """Answers one row of zeros whatever the request: far shorter than Triton's answer."""

    def _infer(self, request: bytes, context) -> bytes:
        self.calls += 1
        resp = service_pb2.ModelInferResponse(model_name=MODEL)
        resp.outputs.add(name="OUTPUT0", datatype="FP32", shape=[1, 1])
        resp.raw_output_contents.append(np.zeros(1, "<f4").tobytes())
        return resp.SerializeToString()


def test_shorter_candidate_answers_keep_the_connection_window_in_step(stable):
    """Each candidate answer here is ~1 KiB shorter than Triton's, which Triton counted
    against the client's connection window: unless the difference is given back to
    Triton, Triton's view of the window shrinks by that much per call until the
    connection stalls."""
    candidate = ShortCandidate("short")
    try:
        # The client's windows stay at their initial 64 KiB (no BDP probing to grow them).
        conn = Connection(("grpc.http2.bdp_probe", 0))
        sc = stable(candidate.address, 50, conn)
        x = np.ones((256, N_FEATURES), np.float32)  # Triton answers 256 floats
        answered = {"7": 0, "8": 0}
        for _ in range(CALLS):
            out, meta = _call(conn.stub, x)
            answered[meta["x-modelops-version"]] += 1
            assert out.shape == ((1,) if meta["x-modelops-version"] == "8" else (256,))
        assert answered == {"7": CALLS // 2, "8": CALLS // 2}
        assert _rollout(sc)["split"] == CALLS // 2
    finally:
        candidate.close()


FRESH = 40
OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)


def test_the_first_call_of_every_connection_is_split_at_the_weight(stable, triton):
    """Clients that open a connection per call (many short-lived clients, a load
    balancer's fresh connections) are split too: each connection's only call is its
    first, whose answer used to fill the client's HPACK table and pass unsplit."""
    sc = stable(triton.grpc_url, 25)  # the real Triton as the candidate
    rng = np.random.default_rng(5)
    versions = []
    for _ in range(FRESH):
        # A local subchannel pool: a connection of its own, not one shared in the process.
        channel = grpc.insecure_channel(sc.grpc_url, options=[OWN_CONNECTION])
        try:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            x = rng.normal(size=(2, N_FEATURES)).astype(np.float32)
            out, meta = _call(stub, x)
        finally:
            channel.close()
        np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)
        versions.append(meta["x-modelops-version"])
    # The weight is a counter (evenly spread, not drawn): exactly a quarter of the calls.
    assert versions.count("8") == FRESH // 4 and versions.count("7") == FRESH * 3 // 4
    doc = _rollout(sc)
    assert doc["split"] == FRESH // 4 and doc.get("splitFallbacks", 0) == 0
    assert doc["requests"] == FRESH * 3 // 4 and doc["errors"] == 0


def test_the_first_call_of_every_connection_is_split_to_a_stand_in(stable):
    """The same with a candidate whose answers (zeros) are visibly not Triton's, and
    tritonclient as the client: every connection's one call is counted."""
    candidate = StandInCandidate("wrong")
    try:
        sc = stable(candidate.address, 50)
        by_candidate = 0
        for i in range(FRESH // 2):
            x = np.full((3, N_FEATURES), i + 1, np.float32)
            client = grpcclient.InferenceServerClient(sc.grpc_url, channel_args=[OWN_CONNECTION])
            try:
                got = grpc_infer(client, x)[:, 0]
            finally:
                client.close()
            if not got.any():
                by_candidate += 1
            else:
                np.testing.assert_allclose(got, x.sum(axis=1), rtol=1e-5)
        assert by_candidate == candidate.calls == FRESH // 4
        doc = _rollout(sc)
        assert doc["split"] == FRESH // 4 and doc["requests"] == FRESH // 4
    finally:
        candidate.close()

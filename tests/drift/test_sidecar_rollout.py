"""Gated rollouts in the data plane, against two real tritonservers.

Stable: a Triton serving ``clf`` version 7 (scores = the first three features),
behind a stable sidecar. Candidate: a second Triton serving ``clf`` version 8,
behind its own sidecar (``--model-version 8``: role candidate). The
candidate's model reads its behaviour from a file next to it on each call, so
one real process plays every candidate the tests need:

- ``agree``: scores * 1.5 + 0.01 (other numbers, same classes);
- ``differ``: -scores (another class in every row);
- ``error``: a Triton error (HTTP 400);
- ``slow``: sleeps, then agrees.

The stable sidecar reads a traffic file the tests rewrite, as the kubelet
would (atomic rename); both sidecars run in this process so the tests can
look at their in-flight state.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.drift.conftest import (
    REPO_ROOT,
    Sidecar,
    http_get,
    http_post,
    metric_value,
    wait_healthy,
)
from tests.support.rollout_models import CANDIDATE_PY, MODEL, N_FEATURES, STABLE_PY, write_repo
from tests.support.triton import triton_factory, triton_install  # noqa: F401 - fixtures
from tests.support.triton_server import TritonServer, free_ports


@pytest.fixture(scope="module")
def stable_triton(triton_factory, tmp_path_factory) -> TritonServer:  # noqa: F811
    return triton_factory(write_repo(tmp_path_factory.mktemp("stable"), "7", STABLE_PY))


@pytest.fixture(scope="module")
def candidate_triton(triton_factory, tmp_path_factory) -> TritonServer:  # noqa: F811
    return triton_factory(write_repo(tmp_path_factory.mktemp("candidate"), "8", CANDIDATE_PY))


@pytest.fixture
def candidate_mode(candidate_triton: TritonServer) -> Iterator[Callable[[str], None]]:
    path = candidate_triton.model_repository / MODEL / "mode"

    def set_mode(mode: str) -> None:
        path.write_text(mode)

    yield set_mode
    path.write_text("agree")


class Traffic:
    """The traffic file, rewritten the way the kubelet swaps a ConfigMap (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._n = 0

    def write(self, doc: dict) -> None:
        self._n += 1
        tmp = self.path.with_name(f".tmp{self._n}")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)


@pytest.fixture
def traffic(tmp_path: Path) -> Traffic:
    t = Traffic(tmp_path / "traffic.json")
    t.write({})
    return t


def sidecar_args(upstream: str, grpc_upstream: str, reference: Path, traffic: Path, version: str,
                 *extra: str) -> list[str]:  # fmt: skip
    return [
        "--reference", str(reference),
        "--upstream", upstream,
        "--grpc-upstream", grpc_upstream,
        "--traffic-file", str(traffic),
        "--model-version", version,
        "--window", "100000",
        *extra,
    ]  # fmt: skip


@pytest.fixture
def pair(
    stable_triton: TritonServer,
    candidate_triton: TritonServer,
    reference_path: Path,
    traffic: Traffic,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Sidecar, Sidecar]]:
    """(stable sidecar, candidate sidecar), both reading the same traffic file."""
    # Room for every mirror of a test's few requests: on a loaded machine the candidate
    # (in this process, sharing its GIL) can fall behind, and a drop would change the counts.
    extra = getattr(request, "param", ("--mirror-max-in-flight", "64"))
    cand = Sidecar(
        sidecar_args(
            candidate_triton.http_url, candidate_triton.grpc_url, reference_path, traffic.path, "8"
        )
    )
    stable = Sidecar(
        sidecar_args(
            stable_triton.http_url,
            stable_triton.grpc_url,
            reference_path,
            traffic.path,
            "7",
            *extra,
        )
    )
    with cand, stable:
        yield stable, cand


def rollout_doc(sidecar: Sidecar) -> dict:
    status, body = http_get(sidecar.admin_url + "/rollout")
    assert status == 200
    return json.loads(body)


def settle(sidecar: Sidecar, check: Callable[[dict], bool], timeout: float = 30.0) -> dict:
    """Poll /rollout until ``check`` holds (figures land after the answers)."""
    deadline = time.monotonic() + timeout
    doc = rollout_doc(sidecar)
    while not check(doc):
        if time.monotonic() > deadline:
            raise AssertionError(f"figures did not settle: {doc}")
        time.sleep(0.05)
        doc = rollout_doc(sidecar)
    return doc


def use(traffic: Traffic, sidecars: tuple[Sidecar, ...], **doc: object) -> None:
    """Write the traffic file and wait until every sidecar runs the new epoch."""
    traffic.write(doc)
    epoch = str(doc.get("epoch", ""))
    for s in sidecars:
        settle(s, lambda d: d["epoch"] == epoch, timeout=10)


def settings(cand: Sidecar | str, epoch: str, **kw: object) -> dict:
    url = cand if isinstance(cand, str) else cand.url
    return {
        "epoch": epoch,
        "candidate": {"version": "8", "http": url},
        "mirrorPercent": 0,
        "canaryWeight": 0,
        "agreement": {"mode": "Argmax"},
        **kw,
    }


def batches(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(2, N_FEATURES)).astype(np.float32) for _ in range(n)]


def infer(client: httpclient.InferenceServerClient, x: np.ndarray) -> np.ndarray:
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(MODEL, [inp]).as_numpy("SCORES")


def http_client(sidecar: Sidecar) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(sidecar.url.removeprefix("http://"))


def test_mirror_half_counts_and_clients_get_stable_answers(pair, traffic) -> None:
    stable, cand = pair
    use(traffic, pair, **settings(cand, "8", mirrorPercent=50))
    client = http_client(stable)
    xs = batches(40)
    for x in xs:
        np.testing.assert_array_equal(infer(client, x), x[:, :3])  # the stable answer, always
    doc = settle(stable, lambda d: d["compared"] == 20)
    assert doc["role"] == "stable" and doc["version"] == "7"
    assert doc["requests"] == 40 and doc["errors"] == 0
    assert doc["mirrored"] == 20 and doc["agreed"] == 20
    assert doc["mirrorDropped"] == doc["mirrorErrors"] == doc["split"] == 0
    assert doc["latencyBuckets"]["+Inf"] == 40
    assert doc["loaded"] == {MODEL: ["7"]}
    # The candidate's sidecar counted the mirrored arrivals as its own requests.
    cdoc = settle(cand, lambda d: d["requests"] == 20)
    assert cdoc["role"] == "candidate" and cdoc["errors"] == 0 and cdoc["mirrored"] == 0
    assert cdoc["loaded"] == {MODEL: ["8"]}
    metrics = http_get(stable.admin_url + "/metrics")[1].decode()
    assert metric_value(metrics, "modelops_rollout_sidecar_agreed_total", role="stable") == 20
    assert (
        metric_value(metrics, "modelops_rollout_sidecar_latency_seconds_count", version="7") == 40
    )


def test_disagreeing_candidate_lowers_agreement_and_epoch_resets(
    pair, traffic, candidate_mode
) -> None:
    stable, cand = pair
    use(traffic, pair, **settings(cand, "8", mirrorPercent=100))
    client = http_client(stable)
    for x in batches(10):
        infer(client, x)
    settle(stable, lambda d: d["compared"] == 10 and d["agreed"] == 10)
    candidate_mode("differ")
    for x in batches(10, seed=2):
        np.testing.assert_array_equal(infer(client, x), x[:, :3])
    doc = settle(stable, lambda d: d["compared"] == 20)
    assert doc["agreed"] == 10 and doc["mirrored"] == 20
    # A new epoch starts from zero on both sides.
    use(traffic, pair, **settings(cand, "8-again", mirrorPercent=100))
    for side in (stable, cand):
        fresh = rollout_doc(side)
        assert fresh["requests"] == fresh["mirrored"] == fresh["compared"] == 0
        assert fresh["latencyBuckets"]["+Inf"] == 0


def test_split_sends_the_weight_to_the_candidate(pair, traffic) -> None:
    stable, cand = pair
    use(traffic, pair, **settings(cand, "8", canaryWeight=30))
    client = http_client(stable)
    from_candidate = 0
    for x in batches(100):
        y = infer(client, x)
        if np.array_equal(y, x[:, :3]):
            continue
        np.testing.assert_allclose(y, x[:, :3] * 1.5 + 0.01, rtol=1e-6)
        from_candidate += 1
    assert 25 <= from_candidate <= 35
    doc = settle(stable, lambda d: d["split"] == from_candidate)
    assert doc["requests"] == 100 - from_candidate and doc["mirrored"] == 0
    assert doc["splitFallbacks"] == 0
    settle(cand, lambda d: d["requests"] == from_candidate)


def test_candidate_down_mirrors_count_errors_and_split_falls_back(pair, traffic) -> None:
    stable, _ = pair
    (dead,) = free_ports(1)
    nobody = f"http://127.0.0.1:{dead}"
    use(traffic, (stable,), **settings(nobody, "8", mirrorPercent=100))
    client = http_client(stable)
    for x in batches(10):
        np.testing.assert_array_equal(infer(client, x), x[:, :3])
    doc = settle(stable, lambda d: d["mirrorErrors"] == 10)
    assert doc["mirrored"] == 10 and doc["compared"] == 0 and doc["errors"] == 0
    use(traffic, (stable,), **settings(nobody, "8-split", canaryWeight=100))
    for x in batches(10):
        np.testing.assert_array_equal(infer(client, x), x[:, :3])
    doc = settle(stable, lambda d: d["splitFallbacks"] == 10)
    assert doc["split"] == 0 and doc["requests"] == 10 and doc["errors"] == 0


def test_candidate_errors_are_errors_not_disagreement(pair, traffic, candidate_mode) -> None:
    stable, cand = pair
    candidate_mode("error")
    use(traffic, pair, **settings(cand, "8", mirrorPercent=100))
    client = http_client(stable)
    for x in batches(8):
        np.testing.assert_array_equal(infer(client, x), x[:, :3])
    doc = settle(stable, lambda d: d["mirrorErrors"] == 8)
    assert doc["compared"] == doc["agreed"] == 0 and doc["errors"] == 0
    cdoc = settle(cand, lambda d: d["requests"] == 8)
    # The model fails the call (Triton answers 500): an error users feel.
    assert cdoc["errors"] == 8 and cdoc["clientErrors"] == 0


@pytest.mark.parametrize(
    "pair", [("--mirror-max-in-flight", "4", "--mirror-timeout", "2")], indirect=True
)
def test_slow_candidate_is_bounded_by_the_mirror_cap(pair, traffic, candidate_mode) -> None:
    stable, cand = pair
    candidate_mode("slow 6")
    use(traffic, pair, **settings(cand, "8", mirrorPercent=100))
    assert stable.proxy is not None
    rollout = stable.proxy.rollout
    client = http_client(stable)
    most = 0
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(infer, http_client(stable), x) for x in batches(40)]
        while not all(f.done() for f in futures):
            most = max(most, rollout.mirrors_in_flight, len(stable.proxy._mirrors))
            time.sleep(0.005)
        for f, x in zip(futures, batches(40), strict=True):
            np.testing.assert_array_equal(f.result(), x[:, :3])
    assert most <= 4
    doc = rollout_doc(stable)
    assert doc["mirrorDropped"] >= 1 and doc["mirrored"] + doc["mirrorDropped"] == 40
    # Past --mirror-timeout the mirrors in flight end as errors and free their slots.
    doc = settle(stable, lambda d: d["mirrorErrors"] == d["mirrored"], timeout=20)
    assert rollout.mirrors_in_flight == 0 and not stable.proxy._mirrors
    np.testing.assert_array_equal(infer(client, batches(1)[0]), batches(1)[0][:, :3])


def test_grpc_calls_are_counted(pair, traffic) -> None:
    stable, cand = pair
    use(traffic, pair, **settings(cand, "8", mirrorPercent=0))
    client = grpcclient.InferenceServerClient(stable.grpc_url)
    for x in batches(5):
        inp = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_array_equal(client.infer(MODEL, [inp]).as_numpy("SCORES"), x[:, :3])
    bad = grpcclient.InferInput("INPUT0", [2, 3], "FP32")  # wrong shape: Triton refuses
    bad.set_data_from_numpy(np.zeros((2, 3), np.float32))
    with pytest.raises(Exception):  # noqa: B017 - tritonclient's own exception type
        client.infer(MODEL, [bad])
    doc = settle(stable, lambda d: d["requests"] == 6)
    # INVALID_ARGUMENT: the caller's fault, reported apart and not gating (issue 18).
    assert doc["errors"] == 0 and doc["clientErrors"] == 1
    # ModelStreamInfer: each request message is one call.
    results: list = []
    client.start_stream(callback=lambda result, error: results.append((result, error)))
    for x in batches(3, seed=3):
        inp = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        client.async_stream_infer(MODEL, [inp])
    deadline = time.monotonic() + 30
    while len(results) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    client.stop_stream()
    assert [error for _, error in results] == [None, None, None]
    doc = settle(stable, lambda d: d["requests"] == 9)
    assert doc["errors"] == 0 and doc["clientErrors"] == 1
    assert doc["latencyBuckets"]["+Inf"] == 9
    client.close()


def test_loop_headers_are_never_acted_on(pair, traffic) -> None:
    stable, cand = pair
    use(traffic, pair, **settings(cand, "8", mirrorPercent=100, canaryWeight=100))
    x = batches(1)[0]
    for header in ("X-Modelops-Mirror", "X-Modelops-Split"):
        inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        client = http_client(stable)
        y = client.infer(MODEL, [inp], headers={header: "1"}).as_numpy("SCORES")
        np.testing.assert_array_equal(y, x[:, :3])  # answered here, not split
    doc = settle(stable, lambda d: d["requests"] == 2)
    assert doc["split"] == doc["mirrored"] == 0


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def test_slow_candidate_memory_stays_bounded_in_a_real_process(
    stable_triton, candidate_triton, reference_path, traffic, candidate_mode
) -> None:
    """900 KB bodies, every one chosen for mirroring, to a candidate that takes 3 s each:
    without the cap the sidecar would hold every body (180 MB here); with it, 16."""
    candidate_mode("slow 3")
    port, admin_port = free_ports(2)
    traffic.write(
        settings(candidate_triton.http_url, "8", mirrorPercent=100)
    )  # the candidate's Triton directly: its slowness is what matters here
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "modelops.cli", "drift-monitor",
            *sidecar_args(stable_triton.http_url, "", reference_path, traffic.path, "7"),
            "--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port),
            "--mirror-timeout", "30", "--log-level", "WARNING",
        ],
        cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        admin = f"http://127.0.0.1:{admin_port}"
        wait_healthy(admin, proc)
        deadline = time.monotonic() + 10
        while json.loads(http_get(admin + "/rollout")[1])["epoch"] != "8":
            assert time.monotonic() < deadline, "traffic file not picked up"
            time.sleep(0.05)
        x = batches(1)[0]
        doc = {
            "inputs": [
                {"name": "INPUT0", "shape": [2, N_FEATURES], "datatype": "FP32",
                 "data": x.ravel().tolist()}
            ]
        }  # fmt: skip
        # JSON allows any amount of whitespace: a large body the model still accepts.
        body = json.dumps(doc).encode() + b" " * 900_000
        url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
        for _ in range(20):  # warm up: allocator arenas, the first mirrors
            assert http_post(url, body)[0] == 200
        before = _vm(proc.pid, "VmRSS")
        for _ in range(200):
            status, answer, _ = http_post(url, body)
            assert status == 200 and json.loads(answer)["outputs"][0]["name"] == "SCORES"
        grown = _vm(proc.pid, "VmRSS") - before
        figures = json.loads(http_get(admin + "/rollout")[1])
        assert figures["mirrorDropped"] >= 150, figures  # the cap, not memory, took them
        assert figures["mirrored"] + figures["mirrorDropped"] == 220
        # 16 mirrors x (900 KB body + answers) ~ 15 MB, plus allocator noise.
        assert grown < 40 * 1024 * 1024, grown
    finally:
        candidate_mode("agree")
        proc.terminate()
        proc.wait(10)


def test_large_bodies_are_split_streamed_and_never_mirrored(pair, traffic) -> None:
    """A body above --stats-max-bytes is streamed, not held: it can still go to the
    candidate (and back to this Triton when the candidate is down), never be mirrored."""
    stable, cand = pair
    x = batches(1)[0]
    doc = {
        "inputs": [
            {"name": "INPUT0", "shape": [2, N_FEATURES], "datatype": "FP32",
             "data": x.ravel().tolist()}
        ]
    }  # fmt: skip
    body = json.dumps(doc).encode() + b" " * (2 * 1024 * 1024)  # above the 1 MiB default
    url = stable.url + f"/v2/models/{MODEL}/infer"

    def scores() -> np.ndarray:
        status, answer, _ = http_post(url, body)
        assert status == 200, answer
        out = json.loads(answer)["outputs"][0]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

    use(traffic, pair, **settings(cand, "8", canaryWeight=100))
    np.testing.assert_allclose(scores(), x[:, :3] * 1.5 + 0.01, rtol=1e-6)
    settle(stable, lambda d: d["split"] == 1)
    (dead,) = free_ports(1)
    use(traffic, (stable,), **settings(f"http://127.0.0.1:{dead}", "8-down", canaryWeight=100))
    np.testing.assert_array_equal(scores(), x[:, :3])
    settle(stable, lambda d: d["splitFallbacks"] == 1 and d["requests"] == 1)
    use(traffic, pair, **settings(cand, "8-mirror", mirrorPercent=100))
    np.testing.assert_array_equal(scores(), x[:, :3])
    doc = settle(stable, lambda d: d["requests"] == 1)
    assert doc["mirrorDropped"] == 1 and doc["mirrored"] == 0

"""In-place rollouts over gRPC against a real tritonserver and a real sidecar process.

The same set-up as tests/drift/test_inplace_rollout.py (one Triton serving ``clf``
7, the candidate pulled and loaded beside it as ``clf.candidate``), with the
clients on the sidecar's gRPC port: ModelInfer calls are mirrored (shadow) or
split (canary) to the candidate in the same Triton, re-targeted in the message,
copies at Triton's lower priority (which Triton accepts: a copy it refused would
be a mirror error), and counted in the in-place figures that the operator reads
as the candidate's. The verdicts are the same analysis as for HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from modelops.commands import inplace
from modelops.render.gating import Result
from tests.drift.test_inplace_rollout import (  # noqa: F401 - fixtures
    Traffic,
    batches,
    running_sidecar,
    served,
    settle,
    shadow_settings,
    store,
    success_count,
    verdict,
)
from tests.support.rollout_models import MODEL
from tests.support.triton import triton_factory, triton_install  # noqa: F401 - fixtures
from tests.support.triton_server import TritonServer, free_ports

pytestmark = [pytest.mark.triton, pytest.mark.timeout(300)]

CALLS = 60


@pytest.fixture
def grpc_sidecar(
    served: TritonServer,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[str, str, Traffic]]:
    """(the sidecar's gRPC address, admin url, traffic file)."""
    (port,) = free_ports(1)
    extra = ("--grpc-upstream", served.grpc_url, "--grpc-port", str(port))
    with running_sidecar(served, tmp_path, *extra) as (_, admin, traffic):
        yield f"127.0.0.1:{port}", admin, traffic


def infer(client: grpcclient.InferenceServerClient, x: np.ndarray) -> grpcclient.InferResult:
    inp = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(MODEL, [inp], client_timeout=30)


def load(served: TritonServer, store: str, version: int) -> None:  # noqa: F811
    inplace.pull_candidate(store, served.model_repository, MODEL, version)
    inplace.load_candidate(served.http_url, MODEL)


def grpc_shadow(served: TritonServer, sidecar, store: str, version: int) -> dict:  # noqa: F811
    """Shadow ``version`` in place at 100% over gRPC: half the calls each on a fresh
    connection (its first call), half on one long-lived connection."""
    address, admin, traffic = sidecar
    load(served, store, version)
    traffic.write(shadow_settings(str(version)))
    settle(admin, lambda d: d["epoch"] == f"{version}.1")
    xs = batches(CALLS)
    long_lived = grpcclient.InferenceServerClient(address)
    for i, x in enumerate(xs):
        client = long_lived if i % 2 else grpcclient.InferenceServerClient(address)
        np.testing.assert_array_equal(infer(client, x).as_numpy("SCORES"), x[:, :3])
    return settle(admin, lambda d: d["compared"] == CALLS)


def test_good_candidate_shadowed_in_place_over_grpc_and_promoted(
    served: TritonServer,  # noqa: F811
    grpc_sidecar,
    store: str,  # noqa: F811
) -> None:
    pid = served.pid
    doc = grpc_shadow(served, grpc_sidecar, store, 8)
    assert doc["requests"] == doc["mirrored"] == doc["agreed"] == CALLS
    assert doc["mirrorErrors"] == doc["mirrorDropped"] == 0  # copies at priority 2 accepted
    assert doc["inPlace"]["requests"] == CALLS and doc["inPlace"]["errors"] == 0
    assert doc["inPlace"]["version"] == "8"
    assert success_count(served, MODEL, "7") == CALLS
    assert success_count(served, inplace.candidate_model(MODEL), "8") == CALLS
    assert verdict(doc) is Result.PASS

    address, _, traffic = grpc_sidecar
    traffic.write({})
    inplace.promote(served.http_url, served.model_repository, MODEL, 8)
    assert served.pid == pid and served.is_running()
    x = batches(1, seed=9)[0]
    got = infer(grpcclient.InferenceServerClient(address), x).as_numpy("SCORES")
    np.testing.assert_allclose(got, x[:, :3] * 1.5 + 0.01, rtol=1e-6)


def test_bad_candidate_over_grpc_fails_analysis_and_is_unloaded(
    served: TritonServer,  # noqa: F811
    grpc_sidecar,
    store: str,  # noqa: F811
) -> None:
    pid = served.pid
    doc = grpc_shadow(served, grpc_sidecar, store, 9)
    assert doc["mirrored"] == CALLS and doc["agreed"] == 0
    assert doc["inPlace"]["requests"] == CALLS  # it answered: wrongly
    assert verdict(doc) is Result.FAIL
    _, _, traffic = grpc_sidecar
    traffic.write({})
    inplace.roll_back(served.http_url, served.model_repository, MODEL)
    assert served.pid == pid and served.is_running()
    assert inplace.ready_versions(served.http_url) == {MODEL: ["7"]}


def test_grpc_canary_in_place_splits_between_the_two_models_of_one_triton(
    served: TritonServer,  # noqa: F811
    grpc_sidecar,
    store: str,  # noqa: F811
) -> None:
    address, admin, traffic = grpc_sidecar
    load(served, store, 8)
    traffic.write({**shadow_settings("8"), "mirrorPercent": 0, "canaryWeight": 50})
    settle(admin, lambda d: d["epoch"] == "8.1")
    long_lived = grpcclient.InferenceServerClient(address)
    by_candidate = 0
    for i, x in enumerate(batches(40)):
        client = long_lived if i % 2 else grpcclient.InferenceServerClient(address)
        result = infer(client, x)
        y = result.as_numpy("SCORES")
        # The client sees the model it called, whichever version answered.
        assert result.get_response().model_name == MODEL
        if np.allclose(y, x[:, :3] * 1.5 + 0.01, rtol=1e-6):
            by_candidate += 1
            assert result.get_response().model_version == "8"
        else:
            np.testing.assert_array_equal(y, x[:, :3])
    assert by_candidate == 20  # the weight is a counter: exactly half, first calls included
    doc = settle(admin, lambda d: d["inPlace"]["requests"] == 20)
    assert doc["split"] == 20 and doc.get("splitErrors", 0) == 0
    assert doc.get("splitFallbacks", 0) == 0 and doc["requests"] == 20
    assert success_count(served, inplace.candidate_model(MODEL), "8") == 20


def test_grpc_copies_are_shed_first_under_the_live_limit(
    served: TritonServer,  # noqa: F811
    grpc_sidecar,
    store: str,  # noqa: F811
) -> None:
    """liveLimit 1: a copy starts only while no other live call is in flight to this
    Triton. Concurrent callers keep calls in flight, so some copies are shed; every
    client still gets the stable answer, and every call is either mirrored or shed."""
    address, admin, traffic = grpc_sidecar
    load(served, store, 8)
    doc = shadow_settings("8")
    doc["candidate"]["inPlace"]["liveLimit"] = 1
    traffic.write(doc)
    settle(admin, lambda d: d["epoch"] == "8.1")
    client = grpcclient.InferenceServerClient(address)
    xs = batches(200, seed=4)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda x: infer(client, x).as_numpy("SCORES"), xs))
    for x, y in zip(xs, answers, strict=True):
        np.testing.assert_array_equal(y, x[:, :3])
    doc = settle(admin, lambda d: d["compared"] == d["mirrored"])
    assert doc["mirrored"] + doc["mirrorDropped"] == len(xs)
    assert doc["mirrorDropped"] > 0 and doc["mirrorErrors"] == 0
    assert doc["inPlace"]["requests"] == doc["mirrored"]

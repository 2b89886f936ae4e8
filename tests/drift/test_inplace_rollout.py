"""In-place rollouts against a real tritonserver and a real sidecar process.

One Triton (explicit model control, ``--load-model=clf``) serves the stable
``clf`` version 7 (scores = the first three features). A candidate version is
published to a file:// model store, fetched by the init container's puller under
the sibling name ``clf.candidate`` (modelops.commands.inplace), loaded into the same
Triton, and shadowed at 100% by the sidecar (``python -m modelops.cli
drift-monitor``, its own process) through the traffic file, as the operator
writes it. The figures the sidecar reports are judged by the same analysis as a
separate candidate's (render/gating: merge_figures + evaluate). The good candidate
is promoted and the bad one rolled back by the in-pod agent's functions, and the
Triton process is the same one throughout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from modelops.api.rollout import Analysis
from modelops.commands import inplace
from modelops.modeldir.repository import copy_into, write_version
from modelops.render.gating import Result, evaluate, merge_figures
from modelops.render.gating.placement import PodMemory, choose_placement
from tests.drift.conftest import REPO_ROOT, http_get, wait_healthy
from tests.support.rollout_models import CONFIG, MODEL, N_FEATURES, STABLE_PY
from tests.support.triton import triton_factory, triton_install  # noqa: F401 - fixtures
from tests.support.triton_server import TritonServer, free_ports

GOOD_PY = STABLE_PY.replace("x[:, :3].copy()", "(x[:, :3] * 1.5 + 0.01).astype(np.float32)")
BAD_PY = STABLE_PY.replace("x[:, :3].copy()", "(-x[:, :3]).astype(np.float32)")
REQUESTS = 60


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file:// model store with the stable version 7, the good candidate as version 8,
    the bad one as 9."""
    model_dir = tmp_path_factory.mktemp("store") / MODEL
    for version, code in ((7, STABLE_PY), (8, GOOD_PY), (9, BAD_PY)):
        write_version(
            model_dir, copy_into({"model.py": code.encode()}), version=version, config_text=CONFIG
        )
    return model_dir.as_uri()


@pytest.fixture
def served(triton_factory, tmp_path: Path) -> TritonServer:  # noqa: F811
    """A fresh Triton serving clf version 7, in explicit model control as InPlace pods run."""
    repo = tmp_path / "repo"
    (repo / MODEL / "7").mkdir(parents=True)
    (repo / MODEL / "config.pbtxt").write_text(CONFIG)
    (repo / MODEL / "7" / "model.py").write_text(STABLE_PY)
    return triton_factory(repo, model_control="explicit", load_models=[MODEL])


class Traffic:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.write({})

    def write(self, doc: dict) -> None:
        tmp = self.path.with_name(".tmp-traffic")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)


@contextlib.contextmanager
def running_sidecar(
    served: TritonServer, tmp_path: Path, *extra: str
) -> Iterator[tuple[str, str, Traffic]]:
    """(url, admin url, traffic file) of a real sidecar process in front of ``served``."""
    traffic = Traffic(tmp_path / "traffic.json")
    port, admin = free_ports(2)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelops.cli",
            "drift-monitor",
            "--upstream",
            served.http_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--admin-port",
            str(admin),
            "--traffic-file",
            str(traffic.path),
            "--model-version",
            "7",
            "--mirror-max-in-flight",
            "64",
            *extra,
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.DEVNULL,
    )
    admin_url = f"http://127.0.0.1:{admin}"
    try:
        wait_healthy(admin_url, proc)
        yield f"127.0.0.1:{port}", admin_url, traffic
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def sidecar(served: TritonServer, tmp_path: Path) -> Iterator[tuple[str, str, Traffic]]:
    with running_sidecar(served, tmp_path) as started:
        yield started


@pytest.fixture
def agent_sidecar(
    served: TritonServer, tmp_path: Path, store: str
) -> Iterator[tuple[str, str, Traffic]]:
    """The sidecar with the in-place agent, as an InPlace pod runs it."""
    args = (
        "--model-repository", str(served.model_repository), "--model-name", MODEL,
        "--model-uri", store, "--triton-metrics", served.metrics_url,
    )  # fmt: skip
    with running_sidecar(served, tmp_path, *args) as started:
        yield started


def rollout_doc(admin_url: str) -> dict:
    status, body = http_get(admin_url + "/rollout")
    assert status == 200
    return json.loads(body)


def settle(admin_url: str, check: Callable[[dict], bool], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    doc = rollout_doc(admin_url)
    while not check(doc):
        if time.monotonic() > deadline:
            raise AssertionError(f"figures did not settle: {doc}")
        time.sleep(0.05)
        doc = rollout_doc(admin_url)
    return doc


def shadow_settings(version: str) -> dict:
    return {
        "epoch": f"{version}.1",
        "candidate": {"version": version, "inPlace": {"priority": True}},
        "mirrorPercent": 100,
        "canaryWeight": 0,
        "agreement": {"mode": "Argmax"},
    }


def infer(client: httpclient.InferenceServerClient, x: np.ndarray) -> np.ndarray:
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(MODEL, [inp]).as_numpy("SCORES")


def batches(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(2, N_FEATURES)).astype(np.float32) for _ in range(n)]


def success_count(triton: TritonServer, name: str, version: str) -> int:
    status, body = http_get(f"{triton.http_url}/v2/models/{name}/versions/{version}/stats")
    assert status == 200, body
    return int(json.loads(body)["model_stats"][0]["inference_stats"]["success"]["count"])


def shadow(
    triton: TritonServer, sidecar: tuple[str, str, Traffic], store: str, version: int
) -> dict:
    """Pull, load and shadow ``version`` in place at 100%; returns the sidecar's figures."""
    url, admin, traffic = sidecar
    repo = triton.model_repository
    _, size = inplace.pull_candidate(store, repo, MODEL, version)
    assert size > 0
    inplace.load_candidate(triton.http_url, MODEL)
    assert inplace.ready_versions(triton.http_url) == {
        MODEL: ["7"],
        inplace.candidate_model(MODEL): [str(version)],
    }
    traffic.write(shadow_settings(str(version)))
    settle(admin, lambda d: d["epoch"] == f"{version}.1")
    client = httpclient.InferenceServerClient(url)
    for x in batches(REQUESTS):
        np.testing.assert_array_equal(infer(client, x), x[:, :3])  # clients get stable's
    return settle(admin, lambda d: d["compared"] == REQUESTS)


def verdict(doc: dict) -> Result:
    """The same analysis as for a separate candidate, on the in-place figures."""
    figures = merge_figures({"pod-0": doc}, {"pod-0": doc["inPlace"]})
    # Gates loose enough for 60 requests to decide at 95% (the sequential tests need
    # more evidence for tighter ones; the rules are the same as for Separate).
    analysis = Analysis(min_requests=50, min_agreement=0.8, max_error_rate_increase=0.2)
    return evaluate(analysis, figures, mirroring=True).result


def test_good_candidate_shadowed_in_place_and_promoted_in_the_same_triton(
    served: TritonServer, sidecar, store: str
) -> None:
    pid = served.pid
    doc = shadow(served, sidecar, store, 8)
    # Both versions served during the shadow, by one Triton.
    assert doc["requests"] == doc["mirrored"] == doc["agreed"] == REQUESTS
    assert doc["mirrorErrors"] == doc["mirrorDropped"] == 0
    assert doc["inPlace"]["requests"] == REQUESTS and doc["inPlace"]["errors"] == 0
    assert success_count(served, MODEL, "7") == REQUESTS
    assert success_count(served, inplace.candidate_model(MODEL), "8") == REQUESTS
    assert verdict(doc) is Result.PASS

    url, _, traffic = sidecar
    traffic.write({})
    inplace.promote(served.http_url, served.model_repository, MODEL, 8)
    assert served.pid == pid and served.is_running()  # no restart
    assert inplace.ready_versions(served.http_url) == {MODEL: ["8"]}
    x = batches(1, seed=9)[0]
    client = httpclient.InferenceServerClient(url)
    np.testing.assert_allclose(infer(client, x), x[:, :3] * 1.5 + 0.01, rtol=1e-6)
    assert http_get(f"http://{url}/v2/models/{MODEL}/ready")[0] == 200  # the pod's readiness
    repo = served.model_repository
    assert sorted(p.name for p in (repo / MODEL).iterdir() if p.name.isdigit()) == ["8"]
    assert not (repo / inplace.candidate_model(MODEL)).exists()


def test_bad_candidate_fails_analysis_and_is_unloaded(
    served: TritonServer, sidecar, store: str
) -> None:
    pid = served.pid
    doc = shadow(served, sidecar, store, 9)
    assert doc["mirrored"] == REQUESTS and doc["agreed"] == 0
    assert verdict(doc) is Result.FAIL

    _, _, traffic = sidecar
    traffic.write({})
    inplace.roll_back(served.http_url, served.model_repository, MODEL)
    assert served.pid == pid and served.is_running()
    assert inplace.ready_versions(served.http_url) == {MODEL: ["7"]}
    assert not (served.model_repository / inplace.candidate_model(MODEL)).exists()
    status, _ = http_get(f"{served.http_url}/v2/models/{MODEL}/versions/7/ready")
    assert status == 200


def test_candidate_that_does_not_fit_goes_separate_with_the_reason(
    served: TritonServer, store: str, tmp_path: Path
) -> None:
    """The fit check on what the pod reports: this Triton's metrics (a CPU server: no GPU
    figures) and a container memory limit. The test machine's own cgroup has no limit to
    speak of, so the limit is a cgroup v2 pair of files written here (the kernel's format)
    with room left for less than the candidate."""
    model_dir, size = inplace.pull_candidate(store, served.model_repository, MODEL, 8)
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{1 << 30}\n")
    (cgroup / "memory.current").write_text(f"{(1 << 30) - size}\n")  # free == size
    report = inplace.memory_report(served.metrics_url, cgroup_root=cgroup)
    assert report.gpu_total is None and report.host_limit == 1 << 30
    choice = choose_placement(
        "InPlace",
        candidate_bytes=size,
        reports=[PodMemory.from_report("clf-7f9c-0", report.to_json())],
    )
    assert choice.placement == "Separate"
    assert "pod clf-7f9c-0" in choice.reason and "10% headroom" in choice.reason
    # With the headroom off, the same candidate fits exactly.
    assert (
        choose_placement(
            "InPlace",
            headroom_percent=0,
            candidate_bytes=size,
            reports=[PodMemory.from_report("clf-7f9c-0", report.to_json())],
        ).placement
        == "InPlace"
    )
    assert inplace.ready_versions(served.http_url) == {MODEL: ["7"]}  # nothing loaded
    assert model_dir.is_dir()


def agent_doc(admin: str, check: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    return settle(admin, lambda d: d.get("agent") is not None and check(d["agent"]), timeout)


def test_the_traffic_file_alone_drives_stage_load_shadow_and_promotion(
    served: TritonServer, agent_sidecar
) -> None:
    """What the operator writes is all the pod needs: the agent in the sidecar stages
    the candidate and reports its size, loads it, and promotes it in the same Triton."""
    url, admin, traffic = agent_sidecar
    pid = served.pid
    traffic.write({"stage": "8"})
    doc = agent_doc(admin, lambda a: a["staged"] is not None)
    assert doc["agent"]["staged"]["version"] == "8" and doc["agent"]["staged"]["bytes"] > 0
    assert doc["agent"]["error"] is None
    assert set(doc["agent"]["memory"]) == {
        "gpuTotalBytes", "gpuUsedBytes", "hostLimitBytes", "hostUsedBytes"
    }  # fmt: skip
    assert inplace.ready_versions(served.http_url) == {MODEL: ["7"]}  # staged, not loaded

    traffic.write(shadow_settings("8"))
    settle(admin, lambda d: d["loaded"].get(inplace.candidate_model(MODEL)) == ["8"])
    client = httpclient.InferenceServerClient(url)
    for x in batches(20):
        np.testing.assert_array_equal(infer(client, x), x[:, :3])
    doc = settle(admin, lambda d: d["agreed"] == 20)
    assert doc["inPlace"]["requests"] == 20

    traffic.write({**shadow_settings("8"), "mirrorPercent": 0, "promote": "8"})
    agent_doc(admin, lambda a: a["promoted"] == "8")
    assert served.pid == pid and served.is_running()
    assert inplace.ready_versions(served.http_url) == {MODEL: ["8"]}


def test_the_agent_follows_the_served_version_both_ways(
    served: TritonServer, agent_sidecar
) -> None:
    """After an in-place promotion the operator names the served version in the traffic
    file ("served", the pod template keeps 7); a promotion rolled back after this pod
    promoted names none again: the agent swaps the same Triton back to the template's
    version 7, and the sidecar answers as the version it serves."""
    url, admin, traffic = agent_sidecar
    pid = served.pid
    traffic.write({**shadow_settings("8"), "mirrorPercent": 0, "promote": "8"})
    agent_doc(admin, lambda a: a["promoted"] == "8")
    # Completed: status names 8, the file says so; nothing to do, the sidecar is 8's.
    traffic.write({"served": "8"})
    doc = settle(admin, lambda d: d["version"] == "8")
    assert doc["agent"]["serving"] == "8" and doc["agent"]["error"] is None
    assert inplace.ready_versions(served.http_url) == {MODEL: ["8"]}
    # Rolled back (status still names 7): back to 7, in the same process.
    traffic.write({})
    doc = agent_doc(admin, lambda a: a["serving"] == "7")
    assert doc["agent"]["error"] is None and doc["version"] == "7"
    assert inplace.ready_versions(served.http_url) == {MODEL: ["7"]}
    client = httpclient.InferenceServerClient(url)
    for x in batches(5):
        np.testing.assert_array_equal(infer(client, x), x[:, :3])  # version 7's answers
    assert served.pid == pid and served.is_running()
    repo = served.model_repository
    assert sorted(p.name for p in (repo / MODEL).iterdir()) == ["7", "config.pbtxt"]
    assert not (repo / inplace.candidate_model(MODEL)).exists()
    # And forward again when the file names 8 (a promotion this pod missed).
    traffic.write({"served": "8"})
    agent_doc(admin, lambda a: a["serving"] == "8")
    assert inplace.ready_versions(served.http_url) == {MODEL: ["8"]}


def test_a_candidate_dropped_from_the_traffic_file_is_unloaded(
    served: TritonServer, agent_sidecar
) -> None:
    _, admin, traffic = agent_sidecar
    traffic.write(shadow_settings("9"))
    settle(admin, lambda d: d["loaded"].get(inplace.candidate_model(MODEL)) == ["9"])
    traffic.write({})
    agent_doc(admin, lambda a: a["staged"] is None)
    deadline = time.monotonic() + 30
    while inplace.candidate_model(MODEL) in inplace.ready_versions(served.http_url):
        assert time.monotonic() < deadline, "candidate still loaded"
        time.sleep(0.1)
    assert not (served.model_repository / inplace.candidate_model(MODEL)).exists()
    assert inplace.ready_versions(served.http_url) == {MODEL: ["7"]}


def test_canary_in_place_splits_between_the_two_models_of_one_triton(
    served: TritonServer, sidecar, store: str
) -> None:
    url, admin, traffic = sidecar
    inplace.pull_candidate(store, served.model_repository, MODEL, 8)
    inplace.load_candidate(served.http_url, MODEL)
    traffic.write({**shadow_settings("8"), "mirrorPercent": 0, "canaryWeight": 50})
    settle(admin, lambda d: d["epoch"] == "8.1")
    client = httpclient.InferenceServerClient(url)
    by_candidate = 0
    for x in batches(20):
        y = infer(client, x)
        if np.allclose(y, x[:, :3] * 1.5 + 0.01, rtol=1e-6):
            by_candidate += 1
        else:
            np.testing.assert_array_equal(y, x[:, :3])
    assert by_candidate == 10  # the split is a counter: exactly half
    doc = settle(admin, lambda d: d["inPlace"]["requests"] == 10)
    assert doc["split"] == 10 and doc["splitErrors"] == 0 and doc["requests"] == 10
    assert success_count(served, inplace.candidate_model(MODEL), "8") == 10


def test_a_candidate_that_cannot_load_is_unloaded_and_the_pod_stays_ready(
    served: TritonServer, sidecar, tmp_path: Path
) -> None:
    """Readiness of an InPlace pod is the served model's (render/inplace_pod.py): through
    the sidecar, /v2/models/clf/ready stays 200 whatever the candidate does."""
    url, _, _ = sidecar
    repo = served.model_repository
    cand = repo / inplace.candidate_model(MODEL) / "3"
    cand.mkdir(parents=True)
    (cand / "model.py").write_text("raise RuntimeError('this model cannot start')\n")
    inplace.stage_candidate(repo, MODEL, 3, CONFIG)
    with pytest.raises(inplace.InPlaceError, match="cannot start"):
        inplace.load_candidate(served.http_url, MODEL)
    assert inplace.ready_versions(served.http_url) == {MODEL: ["7"]}
    assert http_get(f"http://{url}/v2/models/{MODEL}/ready")[0] == 200
    x = batches(1)[0]
    np.testing.assert_array_equal(infer(httpclient.InferenceServerClient(url), x), x[:, :3])
    inplace.roll_back(served.http_url, repo, MODEL)
    assert not (repo / inplace.candidate_model(MODEL)).exists()
    assert http_get(f"http://{url}/v2/models/{MODEL}/ready")[0] == 200

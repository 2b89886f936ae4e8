"""Gated rollouts end to end: the operator, the API server, real Triton, real sidecars.

Real pieces: two tritonserver processes (the stable version's model, and a
candidate whose behaviour a file next to it selects: agree, differ, error,
slow), one `modelops drift-monitor` sidecar process in front of each, the
operator deciding from the figures the sidecars report, the API server
storing status and events. Simulated: only the pods (KWOK). A small
"kubelet" thread in the test does what a node would: it maps each simulated
pod to the sidecar process of its version (MODELOPS_SIDECAR_MAP) and
projects the `<name>-traffic` ConfigMap into the sidecars' traffic file,
with the candidate Service's address replaced by the candidate sidecar's
local one (there is no cluster network here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest
import tritonclient.http as httpclient
from kubernetes.client.exceptions import ApiException
from tests.drift.conftest import wait_healthy
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.rollout_models import CANDIDATE_PY, MODEL, N_FEATURES, STABLE_PY, write_repo
from tests.support.triton_server import TritonServer, free_port

from e2e.test_drift_status import train_as_the_pod
from modelops.drift.reference import build_reference

pytestmark = [pytest.mark.cluster, pytest.mark.triton]


@pytest.fixture(scope="module")
def stable_triton(triton_factory, tmp_path_factory: pytest.TempPathFactory) -> TritonServer:
    return triton_factory(write_repo(tmp_path_factory.mktemp("stable"), "1", STABLE_PY))


@pytest.fixture(scope="module")
def candidate_triton(triton_factory, tmp_path_factory: pytest.TempPathFactory) -> TritonServer:
    return triton_factory(write_repo(tmp_path_factory.mktemp("candidate"), "2", CANDIDATE_PY))


def set_mode(triton: TritonServer, mode: str) -> None:
    (triton.model_repository / MODEL / "mode").write_text(mode)


@dataclass
class SidecarProcess:
    version: str
    upstream: str
    traffic_file: Path
    log: Path
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)  # e.g. a drift reference
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> SidecarProcess:
        argv = [
            sys.executable, "-m", "modelops.cli", "drift-monitor",
            "--upstream", self.upstream, "--model", MODEL,
            "--port", str(self.port), "--admin-port", str(self.admin_port),
            "--traffic-file", str(self.traffic_file), "--model-version", self.version,
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_healthy(self.admin, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class Background:
    """Calls ``tick`` every ``interval`` seconds on a thread, inside a with-block."""

    interval = 0.25

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as err:  # the API server restarting, a pod going away
                print(f"{type(self).__name__}: {err}")
            self._stop.wait(self.interval)

    def tick(self) -> None:
        raise NotImplementedError


class Node(Background):
    """What the kubelet and the cluster network would do for the simulated pods."""

    interval = 0.3

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        name: str,
        sidecars: dict[str, SidecarProcess],
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.sidecars = sidecars
        # "namespace/pod" -> admin URL for pods that are not the versions' (hostile ones).
        self.extra = extra or {}
        self.map_file = Path(os.environ["MODELOPS_SIDECAR_MAP"])

    def tick(self) -> None:
        pods = self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=f"modelops.io/model-deployment={self.name}"
        ).items
        mapping = json.loads(self.map_file.read_text()) if self.map_file.exists() else {}
        for pod in pods:
            version = (pod.metadata.annotations or {}).get("modelops.io/model-version")
            if version in self.sidecars:
                mapping[f"{self.namespace}/{pod.metadata.name}"] = self.sidecars[version].admin
        mapping.update(self.extra)
        _write_atomically(self.map_file, json.dumps(mapping))
        try:
            cm = self.cluster.core.read_namespaced_config_map(
                f"{self.name}-traffic", self.namespace
            )
        except ApiException as err:
            if err.status == 404:
                return  # not rendered yet
            raise
        traffic = json.loads((cm.data or {}).get("traffic.json") or "{}")
        candidate = traffic.get("candidate") or {}
        if candidate.get("version") in self.sidecars:
            candidate["http"] = self.sidecars[candidate["version"]].url
        for sidecar in self.sidecars.values():
            _write_atomically(sidecar.traffic_file, json.dumps(traffic, sort_keys=True))


def _write_atomically(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class Load(Background):
    """A client sending infer requests to the stable sidecar, checking every answer is
    the stable version's."""

    interval = 0.02

    def __init__(self, url: str) -> None:
        super().__init__()
        self.client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        self.rng = np.random.default_rng(3)
        self.sent = self.wrong = 0

    def tick(self) -> None:
        x = self.rng.normal(size=(4, N_FEATURES)).astype(np.float32)
        inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        try:
            out = self.client.infer(MODEL, [inp]).as_numpy("SCORES")
        except Exception:
            out = None
        self.sent += 1
        if out is None or not np.allclose(out, x[:, :3]):
            self.wrong += 1


class ReadyWatch(Background):
    """Polls the ModelDeployment's Ready condition for the whole rollout."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        super().__init__()
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.seen: list[str] = []
        self.phases: list[str] = []
        self.elapsed = 0.0  # from the new version in the spec to the verdict

    def tick(self) -> None:
        md = get_md(self.cluster, self.namespace, self.name)
        self.seen.append(condition(md, "Ready").get("status", "Unknown"))
        phase = ((md.get("status") or {}).get("rollout") or {}).get("phase")
        if phase and (not self.phases or self.phases[-1] != phase):
            self.phases.append(phase)


@pytest.fixture
def sidecars(
    stable_triton: TritonServer, candidate_triton: TritonServer, tmp_path: Path
) -> Iterator[dict[str, SidecarProcess]]:
    set_mode(candidate_triton, "agree")
    made = {
        "1": SidecarProcess("1", stable_triton.http_url, tmp_path / "t1.json", tmp_path / "s1.log"),
        "2": SidecarProcess(
            "2", candidate_triton.http_url, tmp_path / "t2.json", tmp_path / "s2.log"
        ),
    }
    try:
        for sidecar in made.values():
            sidecar.start()
        yield made
    finally:
        for sidecar in made.values():
            sidecar.stop()
        set_mode(candidate_triton, "agree")


def gated_md(name: str, rollout: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": "s3://models/clf", "version": "1", "name": MODEL},
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "replicas": 1,
            "rollout": rollout,
        },
    }


SHADOW = {
    "strategy": "Shadow",
    "shadow": {"mirrorPercent": 50, "requests": 30},
    # Verdicts are sequential (docs/rollouts.md): a clean candidate shows an error-rate
    # increase within 0.05 after ~150 requests, within the default 0.01 only after ~800,
    # which would make this test minutes long under the test's load.
    "analysis": {"minRequests": 30, "minAgreement": 0.9, "maxErrorRateIncrease": 0.05},
}


def rollout_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return (get_md(cluster, namespace, name).get("status") or {}).get("rollout") or {}


def roll(
    cluster: Cluster,
    namespace: str,
    name: str,
    sidecars: dict[str, SidecarProcess],
    rollout: dict,
    restart: OperatorProcess | None = None,
    node_extra: dict[str, str] | None = None,
) -> tuple[dict[str, Any], ReadyWatch, Load]:
    """Serve version 1, then ask for version 2 under load; returns the final rollout.
    restart: kill this operator (SIGKILL) once analysis runs, and start it again.
    node_extra: more pods' sidecar addresses for the sidecar map (Node.extra)."""
    body = gated_md(name, rollout)
    with Node(cluster, namespace, name, sidecars, node_extra):
        cluster.apply(body, namespace)
        wait_ready(cluster, namespace, name)
        wait_for(
            lambda: rollout_of(cluster, namespace, name).get("phase") == "Idle",
            timeout=60,
            what="version 1 stable",
        )
        body["spec"]["model"]["version"] = "2"
        with ReadyWatch(cluster, namespace, name) as watch, Load(sidecars["1"].url) as load:
            published = time.monotonic()
            cluster.apply(body, namespace)

            def decided() -> dict | None:
                rollout = rollout_of(cluster, namespace, name)
                done = rollout.get("phase") in ("RolledBack", "Idle") and rollout.get("stable") in (
                    "1",
                    "2",
                )
                return rollout if done and rollout.get("candidate") is None else None

            # Wait for the candidate to start first, so Idle at version 1 is not the answer.
            wait_for(
                lambda: rollout_of(cluster, namespace, name).get("candidate") == "2",
                timeout=60,
                what="the candidate to start",
            )
            if restart is not None:
                wait_for(
                    lambda: rollout_of(cluster, namespace, name).get("phase") == "Shadow",
                    timeout=90,
                    what="analysis to run",
                )
                restart.kill()
                restart.start()
            final = wait_for(decided, timeout=180, what="a verdict on version 2")
            watch.elapsed = time.monotonic() - published
    return final, watch, load


def test_a_good_candidate_is_promoted_and_ready_never_drops(
    cluster: Cluster, operator: OperatorProcess, namespace: str, sidecars
):
    # The operator is killed mid-analysis and started again: it resumes from status.
    final, watch, load = roll(cluster, namespace, "good", sidecars, SHADOW, restart=operator)
    assert final["phase"] == "Idle" and final["stable"] == "2", final
    print(f"version published -> promoted: {watch.elapsed:.1f}s (operator restarted once)")
    assert final["stableSlot"] == "b"
    assert "Shadow" in watch.phases, watch.phases
    assert set(watch.seen) == {"True"}, "Ready dropped during the rollout"
    assert load.sent > 30 and load.wrong == 0, "clients only ever get stable answers"
    md = get_md(cluster, namespace, "good")
    entry = md["status"]["history"][0]
    assert entry["version"] == "2" and entry["outcome"] == "Promoted"
    assert "agreement" in entry["reason"]
    # The candidate's Deployment is the stable one now; the old slot is gone.
    names = {d.metadata.name for d in cluster.apps.list_namespaced_deployment(namespace).items}
    assert names == {"good-b"}
    events = {
        e.reason
        for e in cluster.core.list_namespaced_event(namespace).items
        if e.involved_object.name == "good"
    }
    # Events are posted after the status write that decides; the operator is killed
    # once mid-rollout here, and a transition it had just written loses its event
    # (status and history keep it). The outcome's own event always comes.
    assert {"CandidateStarted", "Promoted"} <= events, events
    promoted = [
        e
        for e in cluster.core.list_namespaced_event(namespace).items
        if e.involved_object.name == "good" and e.reason == "Promoted"
    ]
    assert len(promoted) == 1 and (promoted[0].count or 1) == 1, "promoted exactly once"
    assert [h["version"] for h in md["status"]["history"]].count("2") == 1
    # The operator wrote only status: the user's manifest shows no difference.
    applied = gated_md("good", SHADOW)
    applied["spec"]["model"]["version"] = "2"
    diff = cluster.kubectl(
        "diff", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(applied), check=False
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr


@pytest.mark.parametrize(
    ("mode", "rollout", "figure"),
    [
        ("differ", SHADOW, "minAgreement 0.9"),
        pytest.param(
            "error",
            {
                "strategy": "Canary",
                "canary": {"steps": [{"weight": 50, "requests": 30}]},
                "analysis": {"minRequests": 20, "maxErrorRateIncrease": 0.05},
            },
            "maxErrorRateIncrease 0.05",
        ),
        (
            "slow 0.3",
            {
                "strategy": "Shadow",
                "shadow": {"mirrorPercent": 50, "requests": 30},
                "analysis": {"minRequests": 20, "maxLatencyP99Ratio": 2},
            },
            "maxLatencyP99Ratio 2",
        ),
    ],
    ids=["different-answers", "errors", "slow"],
)
def test_a_bad_candidate_is_rolled_back_with_the_failing_figure(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    sidecars,
    candidate_triton: TritonServer,
    mode: str,
    rollout: dict,
    figure: str,
):
    set_mode(candidate_triton, mode)
    name = "bad-" + mode.split()[0]
    final, watch, _load = roll(cluster, namespace, name, sidecars, rollout)
    assert final["phase"] == "RolledBack", final
    assert final["stable"] == "1"
    assert figure in final["message"], final["message"]
    assert set(watch.seen) == {"True"}, "Ready dropped during the rollout"

    # The candidate is removed (its deletion finishes after the verdict is written).
    def deployments() -> set[str] | None:
        items = cluster.apps.list_namespaced_deployment(namespace).items
        found = {d.metadata.name for d in items}
        return found if found == {name} else None

    wait_for(deployments, timeout=60, what="only the stable Deployment left")
    warnings = [
        e
        for e in cluster.core.list_namespaced_event(namespace).items
        if e.reason == "RolledBack" and e.type == "Warning"
    ]
    assert warnings and figure in warnings[0].message
    entry = get_md(cluster, namespace, name)["status"]["history"][0]
    assert entry["version"] == "2" and entry["outcome"] == "RolledBack"


def idle_gpu_node(cluster: Cluster) -> tuple[str, int] | None:
    """(name, GPUs) of a device-plugin GPU node with no pod holding GPUs (other tests'
    pods may still be going away)."""
    busy = {
        pod.spec.node_name
        for pod in cluster.core.list_pod_for_all_namespaces().items
        if pod.spec.node_name
        and any(
            "nvidia.com/gpu" in ((c.resources.limits or {}) if c.resources else {})
            for c in pod.spec.containers
        )
    }
    for node in cluster.core.list_node().items:
        gpus = int((node.status.allocatable or {}).get("nvidia.com/gpu", "0"))
        if gpus and node.metadata.name not in busy and not node.spec.unschedulable:
            return node.metadata.labels["kubernetes.io/hostname"], gpus
    return None


def test_a_candidate_waits_for_a_full_gpu_pool_with_the_schedulers_reason(
    cluster: Cluster, operator: OperatorProcess, namespace: str
):
    """The stable pod takes every GPU of the only node it may use: the candidate waits,
    then the rollout is Stalled; the stable version is never scaled down for it."""
    node = wait_for(lambda: idle_gpu_node(cluster), timeout=120, what="a GPU node nobody uses")
    body = gated_md("full", {**SHADOW, "surgeTimeoutSeconds": 10})
    body["spec"]["resources"] = {"gpu": {"count": node[1]}, "cpu": "1", "memory": "2Gi"}
    body["spec"]["scheduling"] = {"nodeSelector": {"kubernetes.io/hostname": node[0]}}
    cluster.apply(body, namespace)
    wait_ready(cluster, namespace, "full")
    wait_for(
        lambda: rollout_of(cluster, namespace, "full").get("phase") == "Idle",
        timeout=60,
        what="version 1 stable",
    )
    body["spec"]["model"]["version"] = "2"
    cluster.apply(body, namespace)

    def waiting() -> dict | None:
        rollout = rollout_of(cluster, namespace, "full")
        return rollout if "Insufficient nvidia.com/gpu" in (rollout.get("message") or "") else None

    rollout = wait_for(waiting, timeout=60, what="the candidate to wait for a GPU")
    assert rollout["phase"] == "Waiting" and rollout["candidate"] == "2"

    def stalled() -> dict | None:
        md = get_md(cluster, namespace, "full")
        return md if condition(md, "Stalled").get("reason") == "CandidateUnschedulable" else None

    md = wait_for(stalled, timeout=90, what="the rollout to stall")
    assert condition(md, "Stalled")["status"] == "True"
    assert "Insufficient nvidia.com/gpu" in condition(md, "Stalled")["message"]
    assert condition(md, "Ready")["status"] == "True"
    stable = cluster.apps.read_namespaced_deployment("full", namespace)
    assert stable.spec.replicas == 1


def test_the_closed_loop_drift_retrains_and_the_retrained_version_is_promoted_on_evidence(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    stable_triton: TritonServer,
    candidate_triton: TritonServer,
    tmp_path: Path,
):
    """serve `latest` (resolved once to 1) -> drift -> retraining (the real trainer)
    publishes 2 -> 2 runs as a shadow candidate -> analysis passes -> promoted, with the
    TrainingJob in the lineage."""
    set_mode(candidate_triton, "agree")
    reference = tmp_path / "reference.json"
    build_reference(np.random.default_rng(1).normal(size=(20_000, N_FEATURES)), bins=20).save(
        reference
    )
    store = tmp_path / "store"
    (store / "1").mkdir(parents=True)  # version 1 exists: the retraining publishes 2
    template = {
        "entrypoint": "modelops.trainer.examples.tabular",
        "nodes": 1,
        "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
        "dataset": {"uri": "synthetic://tabular?rows=4000&seed=3"},
        "output": {"storageUri": f"file://{store}", "modelName": MODEL},
        "hyperparameters": {"epochs": "2"},
        "podMetadata": {"annotations": {"sim.modelops.io/result": "Hold"}},
    }
    body = gated_md("loop", SHADOW)
    body["spec"]["model"] = {"storageUri": f"file://{store}", "version": "latest", "name": MODEL}
    body["spec"]["driftMonitor"] = {
        "enabled": True,
        "reference": {"uri": f"file://{reference}"},
        "method": "psi",
        "window": 200,
        "retrain": {"trainingJobTemplate": template, "cooldown": "1h"},
    }
    drift_flags = ["--reference", str(reference), "--method", "psi", "--window", "200"]
    sidecars = {
        "1": SidecarProcess(
            "1",
            stable_triton.http_url,
            tmp_path / "t1.json",
            tmp_path / "s1.log",
            extra=drift_flags,  # the operator reads its drift through the sidecar map
        ),
        "2": SidecarProcess(
            "2", candidate_triton.http_url, tmp_path / "t2.json", tmp_path / "s2.log"
        ),
    }
    try:
        for sidecar in sidecars.values():
            sidecar.start()
        # The simulated pods ask for `latest`: the node maps them to version 1's sidecar.
        sidecars["latest"] = sidecars["1"]
        with Node(cluster, namespace, "loop", sidecars):
            cluster.apply(body, namespace)
            wait_ready(cluster, namespace, "loop")
            wait_for(
                lambda: rollout_of(cluster, namespace, "loop").get("stable") == "1",
                timeout=60,
                what="latest resolved once to version 1 (what the replica loaded)",
            )
            client = httpclient.InferenceServerClient(sidecars["1"].url.removeprefix("http://"))
            rng = np.random.default_rng(5)
            for _ in range(10):  # shifted inputs: drift (the model takes batches of 64)
                x = (rng.normal(size=(60, N_FEATURES)) + 2.0).astype(np.float32)
                inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                client.infer(MODEL, [inp])

            def retraining() -> str | None:
                status = get_md(cluster, namespace, "loop").get("status") or {}
                return (status.get("retrain") or {}).get("trainingJob")

            tj_name = wait_for(retraining, timeout=90, what="drift to start a TrainingJob")
            train_as_the_pod(cluster, namespace, tj_name, template, store, tmp_path)
            with Load(sidecars["1"].url):
                wait_for(
                    lambda: rollout_of(cluster, namespace, "loop").get("candidate") == "2",
                    timeout=90,
                    what="the retrained version to start as a candidate",
                )
                final = wait_for(
                    lambda: (
                        (r := rollout_of(cluster, namespace, "loop")).get("stable") == "2"
                        and r.get("phase") == "Idle"
                        and r
                    ),
                    timeout=180,
                    what="the retrained version promoted",
                )
    finally:
        for sidecar in {id(s): s for s in sidecars.values()}.values():
            sidecar.stop()
    assert final["stableSlot"] == "b"
    md = get_md(cluster, namespace, "loop")
    entry = md["status"]["history"][0]
    assert (entry["version"], entry["outcome"]) == ("2", "Promoted")
    assert entry["source"]["kind"] == "TrainingJob"
    assert entry["source"]["trainingJob"]["name"] == tj_name
    assert entry["source"]["datasetUri"] == template["dataset"]["uri"]
    assert "loss" in entry["source"]["metrics"]
    assert md["spec"]["model"]["version"] == "latest", "the operator never writes spec"


def test_zero_traffic_meets_the_progress_deadline_with_the_reason(
    cluster: Cluster, operator: OperatorProcess, namespace: str, sidecars
):
    """No client sends anything: no evidence ever arrives, and the rollout does not wait
    forever: at progressDeadline the candidate is rolled back, saying why."""
    name = "idle-traffic"
    rollout = {
        **SHADOW,
        "analysis": {**SHADOW["analysis"], "progressDeadline": "20s"},
    }
    body = gated_md(name, rollout)
    with Node(cluster, namespace, name, sidecars):
        cluster.apply(body, namespace)
        wait_ready(cluster, namespace, name)
        wait_for(
            lambda: rollout_of(cluster, namespace, name).get("phase") == "Idle",
            timeout=60,
            what="version 1 stable",
        )
        body["spec"]["model"]["version"] = "2"
        cluster.apply(body, namespace)

        def rolled_back() -> dict | None:
            r = rollout_of(cluster, namespace, name)
            return r if r.get("phase") == "RolledBack" else None

        final = wait_for(rolled_back, timeout=120, what="the progress deadline's rollback")
    assert "progress deadline exceeded: no verdict at shadow (step 1/1)" in final["message"]
    assert "0/30 requests (minRequests)" in final["message"], final["message"]
    assert final["stable"] == "1"

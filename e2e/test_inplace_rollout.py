"""In-place rollouts end to end: the operator, the API server, one real Triton, a real sidecar.

Real pieces: the operator deciding from the figures and agent reports the sidecar
serves; one tritonserver process in explicit model control, serving ``clf``
version 1, as an InPlace pod's Triton runs; one ``modelops drift-monitor``
process in front of it with the in-place agent (``--model-repository``), which
fetches candidates from a file:// model store with the init container's puller.
Simulated: only the pods (KWOK), as in e2e/test_gated_rollout.py, whose "kubelet"
thread maps the pods to the sidecar and projects the traffic ConfigMap into its
traffic file (unchanged: an in-place candidate has no address to rewrite).

The rollout of version 2 must run without a second Deployment or pod (no GPU
beyond the stable pods'), with the same pod and the same Triton process from the
new version in the spec to the promotion, clients getting the stable answers
during the shadow, and Ready never dropping.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, get_md, wait_ready
from tests.support.rollout_models import CONFIG, MODEL, N_FEATURES, STABLE_PY
from tests.support.triton_server import TritonServer

from e2e.test_gated_rollout import (
    Background,
    Load,
    Node,
    ReadyWatch,
    SidecarProcess,
    gated_md,
    rollout_of,
)
from modelops.commands import inplace
from modelops.modeldir.repository import copy_into, write_version

pytestmark = [pytest.mark.cluster, pytest.mark.triton]

GOOD_PY = STABLE_PY.replace("x[:, :3].copy()", "(x[:, :3] * 1.5 + 0.01).astype(np.float32)")
BAD_PY = STABLE_PY.replace("x[:, :3].copy()", "(-x[:, :3]).astype(np.float32)")

IN_PLACE = {
    "strategy": "Shadow",
    "shadow": {"mirrorPercent": 50, "requests": 30},
    "placement": "InPlace",
    # As in e2e/test_gated_rollout.py: gates a few hundred requests can decide.
    "analysis": {"minRequests": 30, "minAgreement": 0.9, "maxErrorRateIncrease": 0.05},
}


@pytest.fixture
def store(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A file:// store whose version 2 is the good or the bad candidate."""
    model_dir = tmp_path / "store" / MODEL
    code = BAD_PY if getattr(request, "param", "good") == "bad" else GOOD_PY
    write_version(model_dir, copy_into({"model.py": code.encode()}), version=2, config_text=CONFIG)
    return model_dir.as_uri()


@pytest.fixture
def served(triton_factory, tmp_path: Path) -> TritonServer:
    repo = tmp_path / "repo"
    (repo / MODEL / "1").mkdir(parents=True)
    (repo / MODEL / "config.pbtxt").write_text(CONFIG)
    (repo / MODEL / "1" / "model.py").write_text(STABLE_PY)
    return triton_factory(repo, model_control="explicit", load_models=[MODEL])


@pytest.fixture
def pod_sidecar(
    served: TritonServer, store: str, tmp_path: Path
) -> Iterator[dict[str, SidecarProcess]]:
    """The one pod's sidecar, with the in-place agent; both versions map to it (after
    the promotion the same pod serves version 2)."""
    sidecar = SidecarProcess(
        "1",
        served.http_url,
        tmp_path / "traffic.json",
        tmp_path / "sidecar.log",
        extra=[
            "--model-repository",
            str(served.model_repository),
            "--model-name",
            MODEL,
            "--model-uri",
            store,
            "--triton-metrics",
            served.metrics_url,
        ],
    )
    sidecar.start()
    try:
        yield {"1": sidecar, "2": sidecar}
    finally:
        sidecar.stop()


class PodWatch(Background):
    """Every pod and Deployment of the ModelDeployment seen during the rollout, until the
    rollout is decided (what happens after it is checked on its own)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        super().__init__()
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.pod_uids: set[str] = set()
        self.most_pods = 0
        self.deployments: set[str] = set()
        self.started = False

    def tick(self) -> None:
        rollout = rollout_of(self.cluster, self.namespace, self.name)
        if rollout.get("candidate") == "2":
            self.started = True
        elif self.started:
            return  # decided: what follows is not the rollout
        pods = self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=f"modelops.io/model-deployment={self.name}"
        ).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        self.pod_uids |= {p.metadata.uid for p in live}
        self.most_pods = max(self.most_pods, len(live))
        deps = self.cluster.apps.list_namespaced_deployment(self.namespace).items
        self.deployments |= {d.metadata.name for d in deps}


class VersionedLoad(Load):
    """Load whose answers must come from version 1 until the promotion and from version 2
    after it, never back (in place, the same Triton swaps what it serves)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.answers: list[str] = []  # "1" or "2" per request, in order

    def tick(self) -> None:
        x = self.rng.normal(size=(4, N_FEATURES)).astype(np.float32)
        inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        try:
            out = self.client.infer(MODEL, [inp]).as_numpy("SCORES")
        except Exception:
            out = None
        self.sent += 1
        if out is not None and np.allclose(out, x[:, :3]):
            self.answers.append("1")
        elif out is not None and np.allclose(out, x[:, :3] * 1.5 + 0.01, rtol=1e-5):
            self.answers.append("2")
        else:
            self.wrong += 1

    def switched_once(self) -> bool:
        """1...1 2...2: the served version changed once, and never back."""
        text = "".join(self.answers)
        return text == "1" * text.count("1") + "2" * text.count("2")


def roll_in_place(
    cluster: Cluster,
    namespace: str,
    name: str,
    sidecars: dict[str, SidecarProcess],
    then: Callable[[], None] | None = None,
    at_start: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], PodWatch, ReadyWatch, VersionedLoad]:
    """Roll version 2 out in place; ``at_start`` runs once version 1 is stable, ``then``
    after the verdict, the simulated node still running (its pods still mapped to the
    sidecar, the traffic file projected)."""
    body = gated_md(name, IN_PLACE)
    with Node(cluster, namespace, name, sidecars):
        cluster.apply(body, namespace)
        wait_ready(cluster, namespace, name)
        wait_for(
            lambda: rollout_of(cluster, namespace, name).get("phase") == "Idle",
            timeout=60,
            what="version 1 stable",
        )
        if at_start is not None:
            at_start()
        body["spec"]["model"]["version"] = "2"
        with (
            PodWatch(cluster, namespace, name) as pods,
            ReadyWatch(cluster, namespace, name) as ready,
            VersionedLoad(sidecars["1"].url) as load,
        ):
            cluster.apply(body, namespace)
            wait_for(
                lambda: rollout_of(cluster, namespace, name).get("candidate") == "2",
                timeout=60,
                what="the candidate to start",
            )

            seen: list[dict[str, Any]] = [{}]

            def decided() -> dict | None:
                r = seen[0] = rollout_of(cluster, namespace, name)
                done = r.get("phase") in ("RolledBack", "Idle") and r.get("candidate") is None
                return r if done else None

            try:
                final = wait_for(decided, timeout=240, what="a verdict on version 2")
            except AssertionError as err:
                raise AssertionError(f"{err}; status.rollout: {seen[0]}") from None
            time.sleep(1)  # one more look by the watchers
        if then is not None:
            then()
    return final, pods, ready, load


class Serving:
    """What the Deployment and its pods look like (what a rolling update would change)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        dep = cluster.apps.read_namespaced_deployment(name, namespace)
        template = dep.spec.template.metadata
        self.generation = dep.metadata.generation
        self.template_version = (template.annotations or {}).get("modelops.io/model-version")
        pods = [
            p
            for p in cluster.core.list_namespaced_pod(
                namespace, label_selector=f"modelops.io/model-deployment={name}"
            ).items
            if p.metadata.deletion_timestamp is None
        ]
        self.pods = {p.metadata.uid: p for p in pods}
        self.hashes = {(p.metadata.labels or {}).get("pod-template-hash") for p in pods}
        self.restarts = {
            p.metadata.uid: sum(s.restart_count for s in (p.status.container_statuses or []))
            for p in pods
        }
        sets = cluster.apps.list_namespaced_replica_set(
            namespace, label_selector=f"modelops.io/model-deployment={name}"
        ).items
        self.replica_sets = {r.metadata.name for r in sets}


def traffic_doc(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cm = cluster.core.read_namespaced_config_map(f"{name}-traffic", namespace)
    return json.loads((cm.data or {}).get("traffic.json") or "{}")


def run_pull_container(pod: Any, store: str, repository: Path, traffic_file: Path) -> None:
    """Run the pod's own init container command (``modelops pull-model`` with the pod's
    arguments) here, as the kubelet would run it: only the addresses change (the store
    the spec names is an s3:// bucket this test has no access to; the pod's volumes are
    the test's directories, the traffic file the one the simulated node projects)."""
    pull = next(c for c in pod.spec.init_containers if c.name == "pull-model")
    args = list(pull.args)
    swap = {
        "--uri": store,
        "--repository": str(repository),
        "--served-version-file": str(traffic_file),
    }
    for flag, value in swap.items():
        if flag in args:
            args[args.index(flag) + 1] = value
    termination = args.index("--termination-log")
    del args[termination : termination + 2]
    done = subprocess.run(
        [sys.executable, "-m", "modelops.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_a_good_candidate_shadowed_in_place_is_promoted_without_a_new_pod_or_restart(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    served: TritonServer,
    pod_sidecar,
    store: str,
    tmp_path: Path,
) -> None:
    pid = served.pid
    name = "inplace-good"
    before: list[Serving] = []

    def after_promotion() -> None:
        """The Deployment is as it was with version 1 stable, also after later
        reconciles; a pod that starts serves 2."""
        first = before[0]
        assert Serving(cluster, namespace, name).generation == first.generation
        # Reconciles: two edits of the ModelDeployment's annotations (each one a watch
        # event and a reconcile), with time for each.
        for poke in ("1", "2"):
            cluster.custom.patch_namespaced_custom_object(
                "modelops.io", "v1alpha1", namespace, "modeldeployments", name,
                {"metadata": {"annotations": {"e2e.modelops.io/poke": poke}}},
            )  # fmt: skip
            time.sleep(3)
        later = Serving(cluster, namespace, name)
        assert later.generation == first.generation, "the Deployment's spec changed"
        assert later.template_version == first.template_version == "1"
        assert later.hashes == first.hashes and len(first.hashes) == 1
        assert later.replica_sets == first.replica_sets
        assert set(later.pods) == set(first.pods) and later.restarts == first.restarts
        wait_for(
            lambda: traffic_doc(cluster, namespace, name).get("served") == "2",
            timeout=10,
            what="the traffic file to name 2 as served",
        )
        assert traffic_doc(cluster, namespace, name) == {"served": "2"}
        # The sidecar answers as the version its Triton serves.
        with urllib.request.urlopen(pod_sidecar["1"].admin + "/rollout", timeout=5) as resp:
            assert json.loads(resp.read())["version"] == "2"
        # A pod that starts now (one deleted: the ReplicaSet makes another, from the
        # same template) pulls the served version 2.
        (uid,) = first.pods
        cluster.core.delete_namespaced_pod(
            first.pods[uid].metadata.name, namespace, grace_period_seconds=0
        )

        def replaced() -> Any:
            now = Serving(cluster, namespace, name)
            fresh = [p for u, p in now.pods.items() if u != uid]
            return (now, fresh[0]) if fresh else None

        now, pod = wait_for(replaced, timeout=60, what="a new pod")
        assert now.generation == first.generation and now.hashes == first.hashes
        assert now.replica_sets == first.replica_sets
        repo = tmp_path / "new-pod-models"
        run_pull_container(pod, store, repo, pod_sidecar["1"].traffic_file)
        assert sorted(p.name for p in (repo / MODEL).iterdir() if p.is_dir()) == ["2"]
        wait_ready(cluster, namespace, name)
        assert rollout_of(cluster, namespace, name).get("stable") == "2"

    done: list[bool] = []
    final, pods, ready, load = roll_in_place(
        cluster,
        namespace,
        name,
        pod_sidecar,
        at_start=lambda: before.append(Serving(cluster, namespace, name)),
        then=lambda: done.append(after_promotion() is None),
    )
    assert done, "the checks after the promotion did not run"
    assert final["phase"] == "Idle" and final["stable"] == "2", final
    assert "Shadow" in ready.phases and "Promoting" in ready.phases, ready.phases
    # No second Deployment, no second pod (no GPU beyond the stable pod's), the same pod
    # and the same Triton process from the new version in the spec to the promotion.
    assert pods.deployments == {"inplace-good"}, pods.deployments
    assert pods.most_pods == 1 and len(pods.pod_uids) == 1, pods.pod_uids
    assert served.pid == pid and served.is_running()
    assert inplace.ready_versions(served.http_url) == {MODEL: ["2"]}
    assert set(ready.seen) == {"True"}, "Ready dropped during the rollout"
    # During the shadow clients get version 1's answers; after the promotion version 2's,
    # from the same process; no failed request, no answer of another kind, no flapping.
    assert load.sent > 30 and load.wrong == 0, load.wrong
    assert load.switched_once() and "2" in load.answers, "".join(load.answers)
    entry = get_md(cluster, namespace, "inplace-good")["status"]["history"][0]
    assert entry["version"] == "2" and entry["outcome"] == "Promoted"


@pytest.mark.parametrize("store", ["bad"], indirect=True)
def test_a_bad_candidate_in_place_is_rolled_back_and_unloaded(
    cluster: Cluster, operator: OperatorProcess, namespace: str, served: TritonServer, pod_sidecar
) -> None:
    pid = served.pid
    final, pods, ready, load = roll_in_place(cluster, namespace, "inplace-bad", pod_sidecar)
    assert final["phase"] == "RolledBack" and final["stable"] == "1", final
    assert "minAgreement" in (final.get("rejected") or {}).get("reason", ""), final
    wait_for(
        lambda: inplace.ready_versions(served.http_url) == {MODEL: ["1"]},
        timeout=30,
        what="the candidate unloaded",
    )
    assert not (served.model_repository / inplace.candidate_model(MODEL)).exists()
    assert served.pid == pid and pods.most_pods == 1 and len(pods.pod_uids) == 1
    assert pods.deployments == {"inplace-bad"}
    assert load.wrong == 0 and set(load.answers) == {"1"} and set(ready.seen) == {"True"}

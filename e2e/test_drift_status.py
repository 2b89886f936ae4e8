"""Drift reaches the ModelDeployment's status through the real sidecar path.

Real pieces: tritonserver (from the nvidia-pytriton wheel) serving a 20-feature
model, the `modelops drift-monitor` sidecar as a local process in front of it,
the operator reading the sidecar's /drift summary, the API server storing the
status. Simulated: only the pod that would host them (KWOK).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tests.drift.conftest import MODEL, N_FEATURES, wait_healthy, write_model_repository
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.triton_server import TritonServer, free_port

from modelops.drift.reference import build_reference

pytestmark = [pytest.mark.cluster, pytest.mark.triton]
WINDOW = 500


@pytest.fixture(scope="module")
def triton(triton_factory, tmp_path_factory: pytest.TempPathFactory) -> TritonServer:
    return triton_factory(write_model_repository(tmp_path_factory.mktemp("repo")))


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    sample = np.random.default_rng(1).normal(size=(20_000, N_FEATURES))
    path = tmp_path / "reference.json"
    build_reference(sample, bins=20).save(path)
    return path


@pytest.fixture
def sidecar(triton: TritonServer, reference: Path, drift_admin_port: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelops.cli",
            "drift-monitor",
            "--upstream",
            triton.http_url,
            "--reference",
            str(reference),
            "--model",
            MODEL,
            "--method",
            "psi",
            "--window",
            str(WINDOW),
            "--port",
            str(port),
            "--admin-port",
            str(drift_admin_port),
        ],
    )
    try:
        wait_healthy(f"http://127.0.0.1:{drift_admin_port}", proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def send(
    client: httpclient.InferenceServerClient,
    rng: np.random.Generator,
    rows: int,
    shift: float = 0.0,
) -> None:
    for _ in range(rows // 100):
        x = rng.normal(size=(100, N_FEATURES)).astype(np.float32)
        x[:, 3] += shift
        inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer(MODEL, [inp]).as_numpy("OUTPUT0")
        assert np.allclose(result[:, 0], x.sum(axis=1), atol=1e-3)


def map_pods_to(cluster: Cluster, namespace: str, name: str, sidecar_map: Path, admin: str):
    """What the cluster network would do: the ModelDeployment's (simulated) pods' admin
    port is the one real sidecar's (merged into the map other tests share)."""
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modelops.io/model-deployment={name}"
    ).items
    mapping = json.loads(sidecar_map.read_text() or "{}")
    mapping.update({f"{namespace}/{p.metadata.name}": admin for p in pods})
    tmp = sidecar_map.with_suffix(".tmp")
    tmp.write_text(json.dumps(mapping))
    tmp.replace(sidecar_map)
    return len(pods)


def test_drift_seen_by_the_sidecar_becomes_a_drifted_condition(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    sidecar: str,
    reference: Path,
    sidecar_map: Path,
    drift_admin_port: int,
):
    body = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "watched"},
        "spec": {
            "model": {"storageUri": "file:///models/watched", "version": "1", "name": MODEL},
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "driftMonitor": {
                "enabled": True,
                "reference": {"uri": f"file://{reference}"},
                "method": "psi",
                "window": WINDOW,
            },
        },
    }
    cluster.apply(body, namespace)
    wait_ready(cluster, namespace, "watched")
    assert map_pods_to(
        cluster, namespace, "watched", sidecar_map, f"http://127.0.0.1:{drift_admin_port}"
    )
    client = httpclient.InferenceServerClient(sidecar)
    rng = np.random.default_rng(2)

    send(client, rng, 4 * WINDOW)
    calm = wait_for(
        lambda: (m := get_md(cluster, namespace, "watched")).get("status", {}).get("drift") and m,
        timeout=60,
        what="a drift score in the status",
    )
    assert condition(calm, "Drifted")["status"] == "False"
    assert calm["status"]["drift"]["score"] < 0.2
    judged = _windows_after_a_crash(cluster, operator, namespace, client, rng)
    print(f"windows judged before the crash: {judged[0]}, first after it: {judged[1]}")

    send(client, rng, 2 * WINDOW, shift=1.0)

    def drifted() -> dict | None:
        live = get_md(cluster, namespace, "watched")
        return live if condition(live, "Drifted").get("status") == "True" else None

    live = wait_for(drifted, timeout=90, what="Drifted=True on the ModelDeployment")
    message = condition(live, "Drifted")["message"]
    assert "f3" in message
    assert live["status"]["drift"]["drifted"] is True
    assert live["status"]["drift"]["score"] > 0.2
    # Drift does not take a serving model out of service.
    assert condition(live, "Ready")["status"] == "True"
    events = cluster.core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=watched,reason=DriftDetected"
    ).items
    assert events


def _windows_after_a_crash(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    client: httpclient.InferenceServerClient,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """The operator SIGKILLed and started again goes on numbering the merged windows
    from status.drift (the false-alarm budget is spent over them), and judges none of
    the rows it judged before: the first decision after the restart is window k + 1,
    where a restart that forgot would judge everything again as window 1."""

    def windows() -> int:
        return int(get_md(cluster, namespace, "watched")["status"]["drift"].get("windows") or 0)

    start = windows()
    send(client, rng, WINDOW)  # at least one more window: k >= 2, so 1 cannot pass for k + 1
    wait_for(lambda: windows() > start, timeout=60, what="one more merged window")
    operator.kill()
    drift = get_md(cluster, namespace, "watched")["status"]["drift"]
    k = int(drift["windows"])
    assert k >= 2 and drift["reference"] and drift["sidecars"], drift
    operator.start()
    deadline = time.monotonic() + 120
    while (now := windows()) == k and time.monotonic() < deadline:
        send(client, rng, WINDOW // 5)
        time.sleep(0.5)
    assert now == k + 1, f"first window after the restart numbered {now}, not {k + 1}"
    return k, now


def train_as_the_pod(
    cluster: Cluster,
    namespace: str,
    tj_name: str,
    template: dict,
    store: Path,
    tmp_path: Path,
) -> None:
    """Wait for the TrainingJob's simulated pod to run, run the step it would run (the
    real trainer, on this machine), and finish the pod with the trainer's result."""
    pod = wait_for(
        lambda: next(
            (
                p
                for p in cluster.core.list_namespaced_pod(
                    namespace, label_selector=f"modelops.io/training-job={tj_name}"
                ).items
                if p.status.phase == "Running"
            ),
            None,
        ),
        timeout=60,
        what="the training pod to run",
    )
    termination = tmp_path / "termination-log"
    trained = subprocess.run(
        [
            sys.executable, "-m", "modelops.cli", "train",
            "--entrypoint", template["entrypoint"],
            "--dataset", template["dataset"]["uri"],
            "--output", f"file://{store}",
            "--model-name", template["output"]["modelName"],
            "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--nproc-per-node", "1",
            "--hp=epochs=2",
            "--termination-log", str(termination),
            "--instance-kind", "cpu",
        ],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    _act_as_kubelet_finishing(cluster, namespace, pod, termination.read_text().strip())


def _act_as_kubelet_finishing(cluster: Cluster, namespace: str, pod, message: str) -> None:
    """Mark a simulated trainer pod Succeeded with the real trainer's result as
    its termination message, as the kubelet would after the container exits."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    container = pod.spec.containers[0]
    cluster.core.patch_namespaced_pod_status(
        pod.metadata.name,
        namespace,
        {
            "status": {
                "phase": "Succeeded",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "PodCompleted"},
                    {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"},
                ],
                "containerStatuses": [
                    {
                        "name": container.name,
                        "image": container.image,
                        "imageID": "",
                        "ready": False,
                        "started": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "message": message,
                                "startedAt": now,
                                "finishedAt": now,
                            }
                        },
                    }
                ],
            }
        },
    )


@pytest.mark.torch
def test_drift_retrains_and_rolls_out_the_new_version(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    sidecar: str,
    reference: Path,
    tmp_path: Path,
    sidecar_map: Path,
    drift_admin_port: int,
):
    """serve -> drift -> retrain (real trainer) -> the new version rolls out -> Ready."""
    store = tmp_path / "models" / "loop"
    store.mkdir(parents=True)
    template = {
        "entrypoint": "modelops.trainer.examples.tabular",
        "nodes": 1,
        "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
        "dataset": {"uri": "synthetic://tabular?rows=4000&seed=3"},
        "output": {"storageUri": f"file://{store}", "modelName": MODEL},
        "hyperparameters": {"epochs": "2"},
        # The simulated pod keeps running until this test finishes it.
        "podMetadata": {"annotations": {"sim.modelops.io/result": "Hold"}},
    }
    body = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "loop"},
        "spec": {
            "model": {"storageUri": f"file://{store}", "version": "latest", "name": MODEL},
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "driftMonitor": {
                "enabled": True,
                "reference": {"uri": f"file://{reference}"},
                "method": "psi",
                "window": WINDOW,
                "retrain": {"trainingJobTemplate": template, "cooldown": "1h"},
            },
        },
    }
    cluster.apply(body, namespace)
    wait_ready(cluster, namespace, "loop")
    assert map_pods_to(
        cluster, namespace, "loop", sidecar_map, f"http://127.0.0.1:{drift_admin_port}"
    )
    detected_at = time.monotonic()
    send(httpclient.InferenceServerClient(sidecar), np.random.default_rng(5), 2 * WINDOW, 1.0)

    def retraining() -> dict | None:
        live = get_md(cluster, namespace, "loop")
        return live if (live.get("status") or {}).get("retrain") else None

    live = wait_for(retraining, timeout=90, what="drift to start a TrainingJob")
    tj_name = live["status"]["retrain"]["trainingJob"]
    tjs = cluster.custom.list_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "trainingjobs"
    )["items"]
    assert [t["metadata"]["name"] for t in tjs] == [tj_name], "exactly one retraining"
    train_as_the_pod(cluster, namespace, tj_name, template, store, tmp_path)
    assert (store / "1" / "SHA256SUMS").exists()

    def rolled_out() -> dict | None:
        md = get_md(cluster, namespace, "loop")
        status = md.get("status") or {}
        ready = condition(md, "Ready").get("status") == "True"
        return md if ready and status.get("servedVersion") == "1" else None

    rolled = wait_for(rolled_out, timeout=120, what="version 1 served after retraining")
    print(f"drift detected -> new version Ready: {time.monotonic() - detected_at:.1f}s")

    def tj_recorded() -> dict | None:
        # The TrainingJob's own reconcile records its output; the ModelDeployment's
        # (which found version 1 in the store) may come first.
        tj = cluster.custom.get_namespaced_custom_object(
            "modelops.io", "v1alpha1", namespace, "trainingjobs", tj_name
        )
        return tj if (tj.get("status") or {}).get("outputVersion") else None

    tj = wait_for(tj_recorded, timeout=60, what="the TrainingJob's outputVersion")
    assert tj["status"]["outputVersion"] == "1"
    assert "loss" in tj["status"].get("metrics", {})
    assert rolled["spec"]["model"]["version"] == "latest", "the operator never writes spec"
    template_version = cluster.apps.read_namespaced_deployment(
        "loop", namespace
    ).spec.template.metadata.annotations["modelops.io/model-version"]
    assert template_version == "1"

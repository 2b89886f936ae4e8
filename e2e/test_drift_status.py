"""Drift reaches the ModelDeployment's status through the real sidecar path.

Real pieces: tritonserver (from the nvidia-pytriton wheel) serving a 20-feature
model, the `modelops drift-monitor` sidecar as a local process in front of it,
the operator reading the sidecar's /drift summary, the API server storing the
status. Simulated: only the pod that would host them (KWOK).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tests.drift.conftest import MODEL, N_FEATURES, wait_healthy, write_model_repository
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready

from modelops.drift.reference import build_reference
from modelops.triton.local_server import TritonServer, free_port

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


def test_drift_seen_by_the_sidecar_becomes_a_drifted_condition(
    cluster: Cluster, operator: OperatorProcess, namespace: str, sidecar: str, reference: Path
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

"""A TrainingJob with spec.command: a Kubeflow-style DDP script, unchanged, on two nodes.

The operator renders the Indexed Job and the API server's Job controller
creates the pods; the simulated nodes run nothing, so the test runs each
pod's trainer container -- its real command, args and environment, read back
from the API server -- as a local process (pod DNS -> 127.0.0.1), then
reports each pod's outcome as the kubelet would (phase and termination
message). The operator reads rank 0's result into the TrainingJob's status,
and the published version is pulled and checked.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.support import pod_process
from tests.support.cluster import REPO, Cluster, wait_for
from tests.support.operator import OperatorProcess, condition
from tests.support.triton_server import free_port

from modelops.api import constants as c
from modelops.commands.pull import pull_model

pytestmark = [pytest.mark.cluster, pytest.mark.torch, pytest.mark.slow]

SCRIPT = REPO / "tests" / "trainer" / "scripts" / "kubeflow_ddp.py"


def trainingjob(name: str, output: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "nodes": 2,
            "procsPerNode": 1,
            "command": ["torchrun", str(SCRIPT), "--steps", "150"],
            "resources": {
                "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"},
                "cpu": "1",
                "memory": "2Gi",
            },
            "dataset": {"uri": "synthetic://tabular?rows=10"},
            "output": {"storageUri": output},
            "backoffLimit": 0,
            # The simulated pods stay Running until the test reports how they ended.
            "podMetadata": {"annotations": {"sim.modelops.io/result": "Hold"}},
        },
    }


def report_terminated(cluster: Cluster, namespace: str, pod: Any, code: int, message: str) -> None:
    """Write the pod's end into its status, as the kubelet does for a real container."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    (container,) = pod.spec.containers
    status = {
        "phase": "Succeeded" if code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": container.name,
                "image": container.image,
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "message": message,
                        "startedAt": now,
                        "finishedAt": now,
                    }
                },
            }
        ],
    }
    cluster.core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": status})


def test_kubeflow_style_script_trains_on_two_nodes_and_is_published(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path
):
    output = f"file://{tmp_path}/models/kubeflow-ddp"
    cluster.apply(trainingjob("kf-ddp", output), namespace)
    pods = wait_for(
        lambda: (
            p
            if len(p := cluster.core.list_namespaced_pod(
                namespace, label_selector="batch.kubernetes.io/job-name=kf-ddp-a0"
            ).items) == 2 and all(x.status.phase == "Running" for x in p)
            else None
        ),
        timeout=90,
        what="both node pods running",
    )  # fmt: skip
    port = str(free_port())
    runs = []
    for pod in sorted(pods, key=lambda p: p.metadata.annotations[c.ANNOTATION_COMPLETION_INDEX]):
        container = cluster.api_client.sanitize_for_serialization(pod.spec.containers[0])
        work = tmp_path / pod.metadata.name
        (work / "output").mkdir(parents=True)
        term = work / "termination-log"
        term.write_text("")
        overrides = {
            # Pod DNS and volumes, mapped to this machine.
            "MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "PET_MASTER_PORT": port,
            "MODELOPS_OUTPUT_DIR": str(work / "output"),
            "HOME": str(work),
        }
        proc = pod_process.start(
            container, pod.metadata.annotations, overrides, cwd=REPO, log=work / "log",
            extra_args=["--termination-log", str(term)], labels=pod.metadata.labels,
        )  # fmt: skip
        runs.append((pod, proc, work, term))
    for pod, proc, work, term in runs:
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError((work / "log").read_text()[-3000:]) from None
        assert code == 0, (work / "log").read_text()[-3000:]
        report_terminated(cluster, namespace, pod, code, term.read_text())

    def succeeded() -> dict | None:
        live = cluster.custom.get_namespaced_custom_object(
            "modelops.io", "v1alpha1", namespace, "trainingjobs", "kf-ddp"
        )
        return live if condition(live, "Succeeded").get("status") == "True" else None

    done = wait_for(succeeded, timeout=90, what="TrainingJob kf-ddp Succeeded")
    assert done["status"]["outputVersion"] == "1"
    assert done["status"]["metrics"]["worldSize"] == 2
    assert condition(done, "Ready")["status"] == "True"
    result = json.loads(runs[0][3].read_text())
    assert result["outputUri"] == output and result["model"] == "kf-ddp"

    pulled = pull_model(output, tmp_path / "repo")
    assert pulled.verified and pulled.version == 1
    assert (Path(pulled.path) / "1" / "model.pt").is_file()

"""A GPU pod's model on a node whose GPU resource has no CUDA device behind it
(the local real node advertises nvidia.com/gpu as an extended resource only).

The pull step writes the instance kind into config.pbtxt: KIND_GPU by default,
which the real Triton refuses to load without a CUDA device (a misconfigured
GPU node fails loudly); with the operator's MODELOPS_GPU_INSTANCE_KIND=auto it
writes KIND_AUTO, and the same Triton serves the model on the CPU. The pull is
the init container's own command (`modelops pull-model`) with the arguments
render/deployment.py gives a one-GPU pod; this machine has no CUDA device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from modelops.cli import main
from modelops.modeldir.repository import copy_into, write_version
from modelops.storage.publish import publish_version
from tests.support.models import DOUBLING_CONFIG, DOUBLING_MODEL_PY
from tests.support.triton_server import TritonStartError

pytestmark = [pytest.mark.triton]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("gpu-kind")
    staging = work / "packaged" / "double"
    write_version(
        staging,
        copy_into({"model.py": DOUBLING_MODEL_PY.encode()}),
        config_text='name: "double"\n' + DOUBLING_CONFIG,
    )
    store = work / "store" / "double"
    assert publish_version(staging / "1", f"file://{store}") == 1
    return store


def _pull(store: Path, repo: Path, *kind: str) -> str:
    args = [
        "pull-model", "--uri", f"file://{store}", "--version", "latest",
        "--model-name", "double", "--format", "python", "--repository", str(repo),
        "--instances-per-gpu", "1", "--gpus", "1", *kind,
    ]  # fmt: skip
    assert main(args) == 0
    return (repo / "double" / "config.pbtxt").read_text()


def test_kind_auto_serves_a_gpu_pods_model_on_the_cpu(store, tmp_path, triton_factory):
    config = _pull(store, tmp_path / "repo", "--gpu-instance-kind", "auto")
    # KIND_AUTO is the enum's zero value, which the text format leaves out.
    assert "instance_group" in config and "KIND_" not in config
    server = triton_factory(tmp_path / "repo")
    client = httpclient.InferenceServerClient(server.http_address)
    data = httpclient.InferInput("INPUT", [1, 3], "FP32")
    data.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32))
    answer = client.infer("double", [data]).as_numpy("OUTPUT")
    assert answer.tolist() == [[2.0, 4.0, 6.0]]


def test_kind_gpu_without_a_cuda_device_is_refused(store, tmp_path, triton_factory):
    """Why the setting exists, and why it is not the default: KIND_GPU fails here."""
    config = _pull(store, tmp_path / "repo")
    assert "KIND_GPU" in config
    with pytest.raises(TritonStartError):
        triton_factory(tmp_path / "repo", startup_timeout=120)

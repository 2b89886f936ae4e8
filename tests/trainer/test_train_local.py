"""`modelops train` end to end on the CPU: torchrun with 2 gloo workers, file:// output.

One module-wide run trains the tabular example and publishes version 1; the
tests read what it left behind, serve it in the real Triton, and a second
run -- killed after its first checkpoint and restarted -- publishes version 2.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from modelops.commands.pull import pull_model
from modelops.drift.reference import Reference
from modelops.modeldir.repository import verify_version_dir
from modelops.triton.config_patch import RuntimeOverrides
from tests.trainer.runs import kill_hard, run_train, start_train, train_argv

pytestmark = [pytest.mark.torch, pytest.mark.slow]

MODEL = "tabular"
DATASET = "synthetic://tabular?rows=4000&seed=1"
HPARAMS = {"epochs": "4", "batch_size": "64", "seed": "7"}


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    return tmp_path_factory.mktemp("store") / MODEL


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, output):
    work = tmp_path_factory.mktemp("first")
    argv = train_argv(
        work,
        dataset=DATASET,
        output=f"file://{output}",
        checkpoint_dir=work / "ckpt",
        hparams=HPARAMS,
    )
    run = run_train(work, argv)
    assert run.returncode == 0, run.stderr[-4000:]
    return work, run


def test_first_run_publishes_version_1_and_reports_it(first_run, output):
    _, run = first_run
    result = run.result()
    assert result["outputVersion"] == 1
    assert result["model"] == MODEL and result["resumedFromEpoch"] == 0
    metrics = result["metrics"]
    assert metrics["worldSize"] == 2 and metrics["epochs"] == 4
    assert metrics["samplesPerSecond"] > 0
    assert 0.75 < metrics["valAccuracy"] <= 1.0
    # The operator reads the same line from the pod's termination message.
    assert json.loads(run.termination_log.read_text()) == result
    assert "backend=gloo device=cpu world_size=2" in run.stderr
    assert json.loads((output / "index.json").read_text()) == {"versions": [1]}


def test_version_is_sealed_with_metrics_and_drift_reference(first_run, output):
    version = output / "1"
    manifest = verify_version_dir(version)  # metrics and reference are under the checksums
    assert {"model.pt", "model.py", "config.pbtxt", "metrics.json", "reference.json"} <= set(
        manifest
    )
    reference = Reference.load(version / "reference.json")
    assert reference.names == [f"f{i}" for i in range(20)]
    # 90% of 4000 rows trained on; standard normal features.
    assert reference.n_samples == 3600
    assert all(abs(f.mean) < 0.1 and abs(f.var - 1) < 0.15 for f in reference.features)
    config = (version / "config.pbtxt").read_text()
    assert 'name: "INPUT__0"' in config and "KIND_CPU" in config


def test_loss_decreases_over_the_epochs(first_run, output):
    doc = json.loads((output / "1" / "metrics.json").read_text())
    losses = [epoch["loss"] for epoch in doc["history"]]
    assert len(losses) == 4
    assert losses[-1] < 0.8 * losses[0], losses
    assert doc["metrics"]["loss"] == pytest.approx(losses[-1], rel=1e-5)
    assert doc["backend"] == "gloo" and doc["hyperparameters"] == HPARAMS


def final_torch_model(checkpoint_dir):
    """The eager model as trained: rebuilt by the example and loaded from the last checkpoint."""
    import torch

    from modelops.trainer.checkpoint import load_latest
    from modelops.trainer.examples import tabular
    from modelops.trainer.hparams import HParams

    state = load_latest(checkpoint_dir)
    assert state is not None and state["epoch"] == 4
    spec = tabular.build(HParams(HPARAMS))
    spec.model.load_state_dict(state["model"])
    serving = spec.serving(spec.model).eval()
    return lambda x: serving(torch.from_numpy(x)).detach().numpy()


@pytest.mark.triton
def test_triton_serves_the_published_version_like_torch(
    first_run, output, triton_factory, tmp_path
):
    import tritonclient.http as httpclient

    work, _ = first_run
    repo = tmp_path / "repo"
    pulled = pull_model(f"file://{output}", repo, "1", overrides=RuntimeOverrides(gpus=0))
    assert pulled.verified and pulled.version == 1
    server = triton_factory(repo)
    x = np.random.default_rng(11).normal(size=(16, 20)).astype(np.float32)
    client = httpclient.InferenceServerClient(server.http_address)
    inp = httpclient.InferInput("INPUT__0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    served = client.infer(MODEL, [inp]).as_numpy("OUTPUT__0")
    client.close()
    expected = final_torch_model(work / "ckpt")(x)
    assert served.shape == (16, 2)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(served.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)  # probabilities


def test_killed_run_resumes_from_its_checkpoint_and_publishes_version_2(
    first_run, output, tmp_path
):
    ckpt = tmp_path / "ckpt"
    epochs = 8
    argv = train_argv(
        tmp_path,
        dataset="synthetic://tabular?rows=4000&seed=2",
        output=f"file://{output}",
        checkpoint_dir=ckpt,
        hparams={"epochs": str(epochs), "seed": "3"},
    )
    process = start_train(tmp_path, argv, tmp_path / "killed.log")
    deadline = time.monotonic() + 90
    try:
        while not list(ckpt.glob("epoch-*.pt")):
            assert process.poll() is None, (tmp_path / "killed.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "no checkpoint within 90 s"
            time.sleep(0.05)
    finally:
        kill_hard(process)
    killed_at = max(int(p.stem.split("-")[1]) for p in ckpt.glob("epoch-*.pt"))
    assert killed_at < epochs, "the run finished before it could be killed"
    assert json.loads((output / "index.json").read_text()) == {"versions": [1]}

    run = run_train(tmp_path, argv)
    assert run.returncode == 0, run.stderr[-4000:]
    result = run.result()
    assert 1 <= result["resumedFromEpoch"] < epochs
    assert result["resumedFromEpoch"] >= killed_at
    assert f"resuming from the checkpoint after epoch {result['resumedFromEpoch']}" in run.stderr
    assert result["outputVersion"] == 2
    history = json.loads((output / "2" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    assert json.loads((output / "index.json").read_text()) == {"versions": [1, 2]}
    assert not list(ckpt.glob(".tmp-*"))

"""`modelops train` reading its dataset from and publishing to gs:// (fake-gcs-server)."""

from __future__ import annotations

import json

import pytest

from modelops.commands.pull import pull_model
from modelops.trainer.examples.tabular_data import SyntheticTable, make_table, write_npz
from tests.trainer.runs import run_train, train_argv

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def test_gcs_dataset_in_gcs_model_out(gcs_server, gcs_env, tmp_path):
    client = gcs_server.client()
    client.create_bucket("data")
    client.create_bucket("models")
    features, labels = make_table(SyntheticTable(rows=2000, seed=5))
    client.bucket("data").blob("tabular/train.npz").upload_from_filename(
        str(write_npz(tmp_path / "train.npz", features, labels))
    )
    argv = train_argv(
        tmp_path,
        dataset="gs://data/tabular/train.npz",
        output="gs://models/fraud",
        checkpoint_dir=tmp_path / "ckpt",
        nproc=1,
        hparams={"epochs": "2"},
    )
    run = run_train(tmp_path, argv, env=gcs_server.env())
    assert run.returncode == 0, run.stderr[-4000:]
    result = run.result()
    assert (result["outputVersion"], result["model"]) == (1, "fraud")
    assert "dataset gs://data/tabular/train.npz: 1800 training rows" in run.stderr
    index = client.bucket("models").blob("fraud/index.json").download_as_bytes()
    assert json.loads(index) == {"versions": [1]}

    pulled = pull_model("gs://models/fraud", tmp_path / "repo")
    assert pulled.verified and pulled.version == 1
    version = tmp_path / "repo" / "fraud" / "1"
    assert (version / "reference.json").is_file() and (version / "metrics.json").is_file()

"""`modelops train` reading its dataset from and publishing to S3 (moto server, auth enforced)."""

from __future__ import annotations

import json

import pytest

from modelops.commands.pull import pull_model
from modelops.trainer.examples.tabular_data import SyntheticTable, make_table, write_npz
from tests.trainer.runs import run_train, train_argv

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def test_s3_dataset_in_s3_model_out(s3_server, tmp_path):
    client = s3_server.client()
    client.create_bucket(Bucket="data")
    client.create_bucket(Bucket="models")
    features, labels = make_table(SyntheticTable(rows=2000, seed=5))
    client.upload_file(
        str(write_npz(tmp_path / "train.npz", features, labels)), "data", "tabular/train.npz"
    )
    argv = train_argv(
        tmp_path,
        dataset="s3://data/tabular/train.npz",
        output="s3://models/fraud",
        checkpoint_dir=tmp_path / "ckpt",
        nproc=1,
        hparams={"epochs": "2"},
    )
    run = run_train(tmp_path, argv, env=s3_server.env())
    assert run.returncode == 0, run.stderr[-4000:]
    result = run.result()
    assert (result["outputVersion"], result["model"]) == (1, "fraud")
    assert result["metrics"]["worldSize"] == 1
    assert "dataset s3://data/tabular/train.npz: 1800 training rows" in run.stderr
    index = client.get_object(Bucket="models", Key="fraud/index.json")["Body"].read()
    assert json.loads(index) == {"versions": [1]}

    pulled = pull_model("s3://models/fraud", tmp_path / "repo", s3_client=client)
    assert pulled.verified and pulled.version == 1
    version = tmp_path / "repo" / "fraud" / "1"
    assert (version / "reference.json").is_file() and (version / "metrics.json").is_file()

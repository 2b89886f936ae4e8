"""What a restarted worker does with what an earlier run left (in-process, world size 1)."""

from __future__ import annotations

import argparse
import json

import pytest

from modelops.trainer import cli
from modelops.trainer.result import save_result, success_document
from tests.support.triton_server import free_port

torch = pytest.importorskip("torch")

from modelops.trainer.checkpoint import save_checkpoint  # noqa: E402
from modelops.trainer.worker import run_worker  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture
def single_rank(monkeypatch):
    """This process as rank 0 of 1, as torchrun would describe it."""
    for name, value in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)


def worker_args(tmp_path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([
        "--entrypoint", "modelops.trainer.examples.tabular",
        "--dataset", "synthetic://tabular?rows=100",
        "--output", f"file://{tmp_path}/store/tabular",
        "--checkpoint-dir", str(tmp_path / "ckpt"),
        "--termination-log", str(tmp_path / "termination-log"),
    ])  # fmt: skip


def test_a_run_that_already_published_reports_the_same_version(single_rank, tmp_path, capsys):
    args = worker_args(tmp_path)
    done = success_document(7, args.output, "tabular", {"loss": 0.2, "worldSize": 2}, 0)
    save_result(tmp_path / "ckpt", done)
    assert run_worker(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line) == done
    assert json.loads((tmp_path / "termination-log").read_text()) == done
    assert not (tmp_path / "store").exists()  # nothing trained, nothing published again


def test_checkpoints_of_another_training_module_are_refused(single_rank, tmp_path):
    args = worker_args(tmp_path)
    save_checkpoint(tmp_path / "ckpt", 1, {"entrypoint": "someone.else", "model": {}})
    assert run_worker(args) == 1
    error = json.loads((tmp_path / "termination-log").read_text())["error"]
    assert error["reason"] == "CheckpointMismatch"
    assert "someone.else" in error["message"]


def test_a_module_without_the_contract_is_named(single_rank, tmp_path):
    args = worker_args(tmp_path)
    args.entrypoint = "modelops.trainer.hparams"  # importable, but no build()/load_dataset()
    assert run_worker(args) == 1
    error = json.loads((tmp_path / "termination-log").read_text())["error"]
    assert error["reason"] == "InvalidTrainingModule"
    assert "must define build and load_dataset" in error["message"]


def test_a_missing_dataset_file_is_reported_as_such(single_rank, tmp_path):
    args = worker_args(tmp_path)
    args.dataset = f"file://{tmp_path}/absent.npz"
    assert run_worker(args) == 1
    error = json.loads((tmp_path / "termination-log").read_text())["error"]
    assert error == {
        "reason": "DatasetNotFound",
        "message": f"DataFileNotFoundError: file://{tmp_path}/absent.npz: no such file",
    }

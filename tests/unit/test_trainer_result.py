"""The result line / termination message and the run metrics (pure)."""

from __future__ import annotations

import json

import pytest

from modelops.storage.errors import StorageError
from modelops.trainer.contract import ContractError
from modelops.trainer.fetch import DataFileNotFoundError
from modelops.trainer.hparams import HParamError
from modelops.trainer.loop import EpochRecord
from modelops.trainer.metrics import metrics_document, summary
from modelops.trainer.result import (
    MAX_MESSAGE_BYTES,
    error_document,
    read_result,
    render_message,
    save_result,
    success_document,
    write_termination_log,
)
from modelops.trainer.worker import ResumeError, failure_reason

pytestmark = pytest.mark.torch  # loop and worker import torch


def record(epoch: int, loss: float, seconds: float = 1.0) -> EpochRecord:
    return EpochRecord(epoch, loss, 0.5 + epoch / 100, loss + 0.1, 0.5, 1000, seconds)


def test_success_message_is_one_compact_line():
    metrics = summary([record(1, 0.7), record(2, 0.3)], start_epoch=0, epochs=2, world_size=2)
    doc = success_document(4, "s3://models/fraud", "fraud", metrics, 0)
    line = render_message(doc)
    assert "\n" not in line and " " not in line
    assert json.loads(line) == {
        "outputVersion": 4,
        "outputUri": "s3://models/fraud",
        "model": "fraud",
        "resumedFromEpoch": 0,
        "metrics": {
            "loss": 0.3,
            "accuracy": 0.52,
            "valLoss": 0.4,
            "valAccuracy": 0.5,
            "samplesPerSecond": 1000.0,
            "epochs": 2,
            "worldSize": 2,
        },
    }


def test_metrics_without_validation_leave_those_keys_out():
    plain = EpochRecord(1, 0.5, None, None, None, 10, 0.5)
    doc = success_document(1, "file:///m", "m", summary([plain], 0, 1, 1), 0)
    assert set(doc["metrics"]) == {"loss", "samplesPerSecond", "epochs", "worldSize"}


def test_throughput_after_a_resume_counts_only_epochs_run_now():
    history = [record(1, 0.9, seconds=10.0), record(2, 0.5, 1.0), record(3, 0.4, 1.0)]
    metrics = summary(history, start_epoch=1, epochs=3, world_size=1)
    assert metrics["samplesPerSecond"] == 1000.0  # not 3000 / 12
    with pytest.raises(ValueError, match="no epoch"):
        summary([], 0, 1, 1)


def test_long_error_messages_are_cut_to_fit_a_termination_message():
    line = render_message(error_document("AccessDenied", "x " * 5000))
    assert len(line.encode()) <= MAX_MESSAGE_BYTES
    doc = json.loads(line)
    assert doc["error"]["reason"] == "AccessDenied"
    assert doc["error"]["message"].endswith("...")


def test_error_messages_become_one_line():
    doc = json.loads(render_message(error_document("TrainingFailed", "a\n  b\tc")))
    assert doc == {"error": {"reason": "TrainingFailed", "message": "a b c"}}


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (StorageError("BucketNotFound", "x"), "BucketNotFound"),
        (ContractError("x"), "InvalidTrainingModule"),
        (HParamError("x"), "InvalidHyperparameter"),
        (ResumeError("x"), "CheckpointMismatch"),
        (DataFileNotFoundError("x"), "DatasetNotFound"),
        (RuntimeError("x"), "TrainingFailed"),
    ],
)
def test_failure_reasons(err, reason):
    assert failure_reason(err) == reason


def test_termination_log_is_best_effort(tmp_path):
    path = tmp_path / "log"
    write_termination_log(str(path), "{}")
    assert path.read_text() == "{}"
    write_termination_log(str(tmp_path / "missing-dir" / "log"), "{}")  # logs, never raises
    write_termination_log("", "{}")


def test_result_marker_round_trip_and_garbage(tmp_path):
    assert read_result(tmp_path) is None
    doc = success_document(2, "file:///m", "m", {"loss": 0.1}, 0)
    save_result(tmp_path, doc)
    assert read_result(tmp_path) == doc
    (tmp_path / "result.json").write_text("{not json")
    assert read_result(tmp_path) is None
    (tmp_path / "result.json").write_text('{"outputVersion": "2"}')
    assert read_result(tmp_path) is None


def test_metrics_document_keeps_the_history():
    history = [record(1, 0.7), record(2, 0.3)]
    text = metrics_document(
        summary(history, 0, 2, 2),
        history,
        entrypoint="m",
        dataset="synthetic://tabular",
        hyperparameters={"epochs": "2"},
        backend="gloo",
        resumed_from_epoch=0,
    )
    doc = json.loads(text)
    assert doc["format"] == "modelops.trainer.metrics"
    assert [h["loss"] for h in doc["history"]] == [0.7, 0.3]
    assert doc["history"][0]["valLoss"] == pytest.approx(0.8)
    assert EpochRecord.from_dict(doc["history"][1]) == history[1]

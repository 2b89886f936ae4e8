"""The closed loop's pure decisions: which version "latest" means, and when drift retrains."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from modelops.api.base import GO_DURATION
from modelops.api.modeldeployment import ModelDeployment
from modelops.render.retrain import (
    LABEL_RETRAIN_OF,
    parse_go_duration,
    plan_retrain,
    resolve_model_version,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TEMPLATE = {
    "entrypoint": "modelops.trainer.examples.tabular",
    "output": {"storageUri": "s3://models/fraud"},
}


def md(version: str = "latest", retrain: bool = True, cooldown: str = "6h") -> ModelDeployment:
    monitor: dict = {"enabled": True, "reference": {"uri": "s3://models/fraud/ref.json"}}
    if retrain:
        monitor["retrain"] = {"trainingJobTemplate": TEMPLATE, "cooldown": cooldown}
    return ModelDeployment.from_body(
        {
            "metadata": {"name": "fraud", "namespace": "ml", "uid": "u-1", "generation": 3},
            "spec": {
                "model": {"storageUri": "s3://models/fraud/", "version": version},
                "driftMonitor": monitor,
            },
        }
    )


def tj(
    name: str,
    phase: str | None,
    version: str | None = None,
    output: str = "s3://models/fraud",
    retrain_of: str | None = "fraud",
) -> dict:
    labels = {LABEL_RETRAIN_OF: retrain_of} if retrain_of else {}
    status = {k: v for k, v in (("phase", phase), ("outputVersion", version)) if v}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"output": {"storageUri": output}},
        "status": status,
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6h", 21600),
        ("30m", 1800),
        ("1h30m", 5400),
        ("45s", 45),
        ("1.5h", 5400),
        ("250ms", 0.25),
    ],
)
def test_parse_go_duration(text, seconds):
    assert parse_go_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["1500us", "90000000000ns", "1h0m0.5s", "2m30s10ms"])
def test_every_duration_the_crd_admits_parses(text):
    # The CRD's pattern is the API server's promise; the parser must keep it.
    assert re.fullmatch(GO_DURATION, text)
    assert parse_go_duration(text).total_seconds() > 0


@pytest.mark.parametrize("text", ["6 hours", "", "h", "1d", "1µs"])
def test_parse_go_duration_refuses_other_text(text):
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_pinned_version_wins_over_training_results():
    assert resolve_model_version(md("3"), [tj("a", "Succeeded", "9")]) == "3"


def test_latest_follows_the_newest_successful_training_on_the_same_storage():
    trainings = [
        tj("a", "Succeeded", "4"),
        tj("b", "Succeeded", "7"),
        tj("c", "Failed", "9"),
        tj("d", "Running"),
        tj("e", "Succeeded", "12", output="s3://other/place"),
    ]
    assert resolve_model_version(md(), trainings) == "7"


def test_latest_without_results_is_left_to_the_pull():
    assert resolve_model_version(md(), []) == "latest"


def test_no_retrain_without_drift_or_template():
    assert plan_retrain(md(), drifted=False, previous=None, trainings=[], now=NOW) is None
    assert (
        plan_retrain(md(retrain=False), drifted=True, previous=None, trainings=[], now=NOW) is None
    )


def test_drift_starts_a_training_job_named_after_the_model():
    plan = plan_retrain(md(), drifted=True, previous=None, trainings=[], now=NOW)
    assert plan is not None
    assert plan["kind"] == "TrainingJob"
    assert plan["metadata"]["name"] == "fraud-retrain-1"
    assert plan["metadata"]["namespace"] == "ml"
    assert plan["metadata"]["labels"][LABEL_RETRAIN_OF] == "fraud"
    assert plan["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert plan["spec"]["modelDeploymentRef"] == {"name": "fraud"}
    assert plan["spec"]["entrypoint"] == TEMPLATE["entrypoint"]


def test_at_most_one_retraining_in_flight():
    running = [tj("fraud-retrain-1", "Running")]
    assert plan_retrain(md(), drifted=True, previous=None, trainings=running, now=NOW) is None
    pending = [tj("fraud-retrain-1", None)]
    assert plan_retrain(md(), drifted=True, previous=None, trainings=pending, now=NOW) is None


def test_cooldown_counts_from_the_last_trigger():
    done = [tj("fraud-retrain-1", "Succeeded", "2")]
    recent = {
        "lastTriggeredTime": (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "count": 1,
    }
    assert plan_retrain(md(), drifted=True, previous=recent, trainings=done, now=NOW) is None
    old = {
        "lastTriggeredTime": (NOW - timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "count": 1,
    }
    plan = plan_retrain(md(), drifted=True, previous=old, trainings=done, now=NOW)
    assert plan is not None and plan["metadata"]["name"] == "fraud-retrain-2"


def test_long_names_are_cut_to_fit_training_job_names():
    long = md()
    long.metadata.name = "m" * 63
    plan = plan_retrain(long, drifted=True, previous=None, trainings=[], now=NOW)
    assert plan is not None and len(plan["metadata"]["name"]) <= 55

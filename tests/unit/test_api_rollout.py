"""spec.rollout (gated strategies) and status.rollout / status.history in the API models."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from modelops.api.crd import MODEL_DEPLOYMENT, root_schema
from modelops.api.modeldeployment import ModelDeployment, ModelDeploymentSpec
from modelops.api.rollout import MAX_HISTORY
from modelops.render.gating import plan_steps
from tests.unit.test_api_models import SPEC_SCHEMA, apply_defaults

ROOT = Path(__file__).resolve().parents[2]
GATED_SAMPLE = ROOT / "manifests" / "samples" / "modeldeployment-gated.yaml"
SCHEMA = root_schema(MODEL_DEPLOYMENT)


@pytest.mark.parametrize(
    "rollout",
    [
        {},
        {"strategy": "Shadow", "shadow": {}},
        {"strategy": "Canary", "canary": {"steps": [{"weight": 10}]}, "analysis": {}},
        {
            "strategy": "Shadow",
            "shadow": {"duration": "1h"},
            "analysis": {"agreement": {"mode": "RelativeTolerance"}, "minAgreement": 0.9},
            "control": {},
        },
    ],
    ids=["direct", "shadow", "canary", "shadow-tolerance"],
)
def test_pydantic_defaults_equal_the_crd_defaults(rollout):
    spec = {"model": {"storageUri": "s3://m"}, "rollout": rollout}
    assert ModelDeploymentSpec.model_validate(spec).to_dict() == apply_defaults(spec, SPEC_SCHEMA)


def test_defaults_keep_todays_behaviour():
    rollout = ModelDeploymentSpec.model_validate({"model": {"storageUri": "s3://m"}}).rollout
    assert rollout.strategy == "Direct" and rollout.shadow is None and rollout.canary is None
    assert rollout.control is None and plan_steps(rollout) == ()
    assert rollout.analysis.min_requests == 100
    assert rollout.analysis.max_error_rate_increase == 0.01
    assert rollout.analysis.max_latency_p99_ratio is None
    assert rollout.analysis.min_agreement is None
    assert rollout.analysis.agreement.mode == "Argmax"


def test_gated_sample_is_valid_and_chains_shadow_then_canary():
    body = yaml.safe_load(GATED_SAMPLE.read_text())
    assert not list(jsonschema.Draft4Validator(SCHEMA).iter_errors(body))
    body["metadata"]["namespace"] = "demo"
    md = ModelDeployment.from_body(body)
    steps = plan_steps(md.spec.rollout)
    assert [(s.kind, s.percent) for s in steps] == [("Shadow", 10), ("Canary", 10), ("Canary", 50)]
    assert md.spec.rollout.analysis.eval_metric is not None


def test_status_fields_are_in_the_crd():
    status = SCHEMA["properties"]["status"]["properties"]
    rollout = status["rollout"]["properties"]
    for field in ("phase", "stable", "candidate", "step", "analysis", "rejected", "message"):
        assert field in rollout, field
    assert set(rollout["phase"]["enum"]) >= {
        "Idle",
        "Waiting",
        "Shadow",
        "Canary",
        "Paused",
        "Promoting",
        "RolledBack",
    }
    history = status["history"]
    assert history["maxItems"] == MAX_HISTORY
    entry = history["items"]["properties"]
    assert {"version", "source", "checksum", "servingSince", "outcome", "reason"} <= set(entry)
    source = entry["source"]["properties"]
    assert {"kind", "trainingJob", "datasetUri", "hyperparametersDigest", "metrics"} <= set(source)

"""The pydantic API models: parsing, defaults (identical to the CRD's), value types."""

from __future__ import annotations

import copy
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelops.api.base import ApiModel, IntOrPercent, Quantity
from modelops.api.crd import MODEL_DEPLOYMENT, root_schema
from modelops.api.modeldeployment import ModelDeployment, ModelDeploymentSpec

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "manifests" / "samples" / "modeldeployment.yaml"
SPEC_SCHEMA = root_schema(MODEL_DEPLOYMENT)["properties"]["spec"]


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: absent fields with a default
    get it (then defaulted recursively), present objects and list items are walked."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(out[name], sub)
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


@pytest.mark.parametrize(
    "spec",
    [
        {"model": {"storageUri": "s3://models/fraud"}},
        {
            "model": {"storageUri": "gs://m/x"},
            "resources": {"gpu": {}},
            "rollout": {"maxSurge": "25%"},
        },
        {
            "model": {"storageUri": "s3://m"},
            "autoscaling": {"maxReplicas": 3, "metric": {"type": "cpu", "target": 60}},
            "driftMonitor": {
                "enabled": True,
                "reference": {"uri": "s3://m/ref.npz"},
                "retrain": {"trainingJobTemplate": {"nodes": 2}},
            },
            "runtime": {"dynamicBatching": {}, "env": [{"name": "A"}]},
        },
    ],
    ids=["minimal", "partial-blocks", "everything"],
)
def test_pydantic_defaults_equal_the_crd_defaults(spec):
    """What the operator assumes for an absent field is what the API server stores."""
    from_crd = apply_defaults(spec, SPEC_SCHEMA)
    from_pydantic = ModelDeploymentSpec.model_validate(spec).to_dict()
    assert from_pydantic == from_crd


def test_minimal_spec_defaults():
    spec = ModelDeploymentSpec.model_validate({"model": {"storageUri": "s3://models/fraud"}})
    assert spec.model.format == "triton" and spec.model.version == "latest"
    assert spec.resources.gpu.count == 1 and spec.resources.gpu.product is None
    assert spec.resources.cpu == "2" and spec.resources.memory == "8Gi"
    assert spec.replicas == 1 and spec.autoscaling is None
    assert (spec.rollout.max_surge, spec.rollout.max_unavailable) == (1, 0)
    assert spec.rollout.surge_timeout_seconds == 60
    # No schema default: the operator's setting applies at render time (api/images.py).
    assert spec.runtime.image is None


def test_sample_parses():
    body = yaml.safe_load(SAMPLE.read_text())
    assert "namespace" not in body["metadata"]
    body["metadata"]["namespace"] = "demo"
    md = ModelDeployment.from_body(body)
    assert md.spec.resources.gpu.product == "NVIDIA-H100-80GB-HBM3"
    assert md.spec.autoscaling is not None
    assert md.spec.autoscaling.engine == "hpa"
    assert md.spec.autoscaling.metric.type == "queue-time"
    assert md.spec.model.storage_uri.startswith(("s3://", "file://"))


def test_from_body_reads_kopf_like_mappings_and_ignores_the_rest():
    body = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "fraud",
            "namespace": "ml",
            "uid": "u-1",
            "generation": 7,
            "labels": {},
        },
        "spec": {"model": {"storageUri": "s3://m", "futureField": 1}},
        "status": {"kopf": {"progress": {}}},
    }
    md = ModelDeployment.from_body(MappingProxyType(body))
    assert (md.name, md.namespace, md.metadata.uid, md.metadata.generation) == (
        "fraud",
        "ml",
        "u-1",
        7,
    )
    assert md.model_name == "fraud"


def test_model_name_override():
    md = ModelDeployment.from_body(
        {
            "metadata": {"name": "fraud", "namespace": "ml"},
            "spec": {"model": {"storageUri": "s3://m", "name": "fraud_v2"}},
        }
    )
    assert md.model_name == "fraud_v2"


class _Q(ApiModel):
    q: Quantity
    p: IntOrPercent = 0


@pytest.mark.parametrize("value", [4, "4", "500m", "16Gi", "1.5", "1e3", ".5"])
def test_quantities_accepted(value):
    assert _Q(q=value).q == value


@pytest.mark.parametrize("value", ["16 GB", "-1", -1, "1.2.3", "Gi", True])
def test_quantities_refused(value):
    with pytest.raises(ValidationError):
        _Q(q=value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), ("25%", True), ("100%", True), ("150%", False), ("1", False), (-1, False)],
)
def test_int_or_percent(value, ok):
    if ok:
        assert _Q(q=1, p=value).p == value
    else:
        with pytest.raises(ValidationError):
            _Q(q=1, p=value)


def test_to_dict_uses_wire_names_and_drops_nulls():
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"storageUri": "s3://m", "credentialsSecretRef": {"name": "creds"}}}
    )
    out = spec.to_dict()
    assert out["model"]["credentialsSecretRef"] == {"name": "creds"}
    assert "autoscaling" not in out and "driftMonitor" not in out
    assert out["rollout"]["surgeTimeoutSeconds"] == 60

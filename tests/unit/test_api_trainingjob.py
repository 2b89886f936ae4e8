"""The TrainingJob API: parsed defaults, the generated CRD, and what kubectl shows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from modelops.api import constants as c
from modelops.api.base import ApiModel, reworded
from modelops.api.crd import KINDS, MODEL_DEPLOYMENT, TRAINING_JOB, build_crd, root_schema
from modelops.api.docs import api_reference
from modelops.api.trainingjob import TrainingJob, TrainingJobSpec
from tests.unit.test_crd_schema import FORBIDDEN, walk

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "manifests" / "samples" / "trainingjob.yaml"
CRD = build_crd(TRAINING_JOB)
SCHEMA = root_schema(TRAINING_JOB)
SPEC = SCHEMA["properties"]["spec"]


def parse(**spec: Any) -> TrainingJob:
    base = {"dataset": {"uri": "s3://d"}, "output": {"storageUri": "s3://m"}}
    return TrainingJob.from_body(
        {"metadata": {"name": "retrain", "namespace": "ml"}, "spec": {**base, **spec}}
    )


# --- the parsed spec -----------------------------------------------------------------------


def test_defaults_match_the_brief():
    spec = parse().spec
    # No schema default: the operator's trainer image setting applies (api/images.py).
    assert spec.image is None
    assert c.DEFAULT_TRAINER_IMAGE == "ghcr.io/modelops/modelops-trainer:0.2.0"
    assert spec.entrypoint == "modelops.trainer.examples.tabular"
    assert (spec.nodes, spec.procs_per_node, spec.backoff_limit) == (1, 1, 3)
    assert spec.suspend is False and spec.queue_name is None
    assert (spec.resources.gpu.count, spec.resources.cpu, spec.resources.memory) == (1, "2", "8Gi")
    assert spec.active_deadline_seconds is None and spec.ttl_seconds_after_finished is None


def test_crd_defaults_equal_the_parsed_defaults():
    # What the API server fills in is what an operator reading a sparse object assumes.
    props = SPEC["properties"]
    spec = parse().spec
    # The images are operator settings, never written into the object.
    assert "default" not in props["image"] and spec.image is None
    assert props["entrypoint"]["default"] == spec.entrypoint
    assert props["nodes"]["default"] == spec.nodes
    assert props["procsPerNode"]["default"] == spec.procs_per_node
    assert props["backoffLimit"]["default"] == spec.backoff_limit
    assert props["suspend"]["default"] is spec.suspend
    assert props["resources"]["default"] == {}


def test_model_name():
    assert parse().model_name == "retrain"
    assert parse(modelDeploymentRef={"name": "fraud"}).model_name == "fraud"
    output = {"storageUri": "s3://m", "modelName": "fraud_v2"}
    assert parse(output=output, modelDeploymentRef={"name": "fraud"}).model_name == "fraud_v2"


@pytest.mark.parametrize(
    "spec",
    [{"nodes": 0}, {"nodes": 65}, {"procsPerNode": 17}, {"backoffLimit": -1}, {"dataset": None}],
)
def test_pydantic_refuses_what_the_crd_refuses(spec):
    with pytest.raises(ValidationError):
        parse(**spec)


def test_sample_is_valid_and_parses():
    body = yaml.safe_load(SAMPLE.read_text())
    assert "namespace" not in body["metadata"]
    assert not list(jsonschema.Draft4Validator(SCHEMA).iter_errors(body))
    body["metadata"]["namespace"] = "demo"
    tj = TrainingJob.from_body(body)
    assert tj.spec.nodes == 2 and tj.spec.resources.gpu.product == "NVIDIA-H100-80GB-HBM3"
    assert tj.model_name == "fraud-detector"
    md_sample = yaml.safe_load((ROOT / "manifests/samples/modeldeployment.yaml").read_text())
    # The sample retrains the sample ModelDeployment: same storage, version latest there.
    assert tj.spec.output.storage_uri == md_sample["spec"]["model"]["storageUri"]
    assert md_sample["spec"]["model"]["version"] == "latest"
    assert tj.spec.model_deployment_ref is not None
    assert tj.spec.model_deployment_ref.name == md_sample["metadata"]["name"]


# --- the CRD -------------------------------------------------------------------------------


def test_registered_with_names_and_subresources():
    assert TRAINING_JOB in KINDS and KINDS[0] is MODEL_DEPLOYMENT
    assert CRD["metadata"]["name"] == "trainingjobs.modelops.io"
    assert CRD["spec"]["names"] == {
        "kind": "TrainingJob",
        "listKind": "TrainingJobList",
        "plural": "trainingjobs",
        "singular": "trainingjob",
        "shortNames": ["tj"],
        "categories": ["modelops"],
    }
    [version] = CRD["spec"]["versions"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns():
    columns = CRD["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(col["name"], col["jsonPath"]) for col in columns if not col.get("priority")]
    assert default == [
        ("Status", ".status.phase"),
        ("Nodes", ".spec.nodes"),
        ("GPUs", ".status.gpus"),
        ("Output", ".status.outputVersion"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    wide = [col["name"] for col in columns if col.get("priority")]
    assert wide == ["Active", "Restarts", "Reason", "Message"]
    status = SCHEMA["properties"]["status"]["properties"]
    for col in columns:
        path = col["jsonPath"]
        if path.startswith(".status.") and "[" not in path:
            assert path.removeprefix(".status.") in status, path


def test_name_rule_keeps_every_pod_hostname_within_63_characters():
    [rule] = SCHEMA["x-kubernetes-validations"]
    longest = "t" * 55
    attempt, rank = 100, 63  # the largest attempt and node rank
    assert SPEC["properties"]["backoffLimit"]["maximum"] == attempt
    assert SPEC["properties"]["nodes"]["maximum"] == rank + 1
    assert len(f"{longest}-a{attempt}-{rank}") == 63
    assert "self.metadata.name.size() <= 55" in rule["rule"]


def test_env_rule_names_every_reserved_variable():
    [rule] = SPEC["properties"]["env"]["x-kubernetes-validations"]
    for name in c.RESERVED_TRAINING_ENV_NAMES:
        assert f"e.name != '{name}'" in rule["rule"]
    for prefix in c.RESERVED_TRAINING_ENV_PREFIXES:
        assert f"!e.name.startsWith('{prefix}')" in rule["rule"]
    assert rule["message"].startswith("spec.env ")
    for brief in ("MASTER_ADDR", "RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK"):
        assert brief in c.RESERVED_TRAINING_ENV_NAMES


def test_args_rule_matches_the_operator_s_own_flags():
    [rule] = SPEC["properties"]["args"]["x-kubernetes-validations"]
    pattern = re.search(r"a\.matches\('([^']+)'\)", rule["rule"])
    assert pattern
    for flag in c.RESERVED_TRAINER_FLAGS:
        assert re.match(pattern.group(1), f"--{flag}")
        assert re.match(pattern.group(1), f"--{flag}=x")
    assert not re.match(pattern.group(1), "--target=libtorch")
    assert not re.match(pattern.group(1), "--hpx")


def test_shared_types_keep_their_rules_with_training_words():
    gpu = SPEC["properties"]["resources"]["properties"]["gpu"]
    md_gpu = root_schema(MODEL_DEPLOYMENT)["properties"]["spec"]["properties"]["resources"]
    shared = [r["message"] for r in md_gpu["properties"]["gpu"]["x-kubernetes-validations"]]
    messages = [r["message"] for r in gpu["x-kubernetes-validations"]]
    assert messages[: len(shared)] == shared
    assert shared[0] == "product needs count greater than 0"
    # Plus the trainer's own: one alternative, with a product (every node the same GPUs).
    assert [m.split(":")[0] for m in messages[len(shared) :]] == [
        "a TrainingJob takes exactly one alternative",
        "with allocation DRA a TrainingJob's alternative needs a product, so that all nodes "
        "train on the same GPU model",
    ]
    assert "per node" in gpu["properties"]["count"]["description"]
    cpu = SPEC["properties"]["resources"]["properties"]["cpu"]
    assert "trainer container" in cpu["description"] and "Triton" not in cpu["description"]
    md_cpu = root_schema(MODEL_DEPLOYMENT)["properties"]["spec"]["properties"]["resources"]
    assert "Triton" in md_cpu["properties"]["cpu"]["description"]
    assert SPEC["x-kubernetes-validations"][0]["fieldPath"] == ".scheduling.nodeSelector"


def test_reworded_refuses_a_base_it_cannot_extend():
    class Base(ApiModel):
        model_config = ConfigDict(json_schema_extra=lambda schema: None)
        x: int = 0

    with pytest.raises(TypeError):

        class Child(Base):
            model_config = ConfigDict(json_schema_extra=reworded(Base, x="X."))

        Child.model_json_schema()


def test_kopf_progress_storage_is_preserved():
    kopf = SCHEMA["properties"]["status"]["properties"]["kopf"]
    assert kopf["x-kubernetes-preserve-unknown-fields"] is True


# --- properties every kind's schema must have (the API server or kubectl depend on them) -----


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_schema_is_structural_and_documented(kind):
    schema = root_schema(kind)
    for path, node in walk(schema):
        assert not FORBIDDEN & set(node), f"{path}: {FORBIDDEN & set(node)}"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            assert "type" in node, f"{path}: no type"
        if path != "metadata":
            assert node.get("description"), f"{path}: no description for kubectl explain"


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_spec_input_is_bounded_for_the_cel_cost_estimator(kind):
    for path, node in walk(root_schema(kind)["properties"]["spec"], "spec"):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            continue
        if node.get("type") == "array":
            assert "maxItems" in node, path
        elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
            assert "maxProperties" in node, path
        elif node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, path


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_cel_rules_have_messages_and_valid_field_paths(kind):
    for path, node in walk(root_schema(kind)):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["rule"] and rule["message"], path
            target = node
            for part in (
                rule.get("fieldPath", "").strip(".").split(".") if "fieldPath" in rule else []
            ):
                assert part in target.get("properties", {}), f"{path}: {rule['fieldPath']}"
                target = target["properties"][part]
            assert "\\." not in rule["rule"], path


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_defaults_are_valid_values(kind):
    for path, node in walk(root_schema(kind)):
        if "default" in node and node["default"] != {}:
            jsonschema.Draft4Validator(node).validate(node["default"]), path


def test_api_reference_documents_both_kinds_and_their_conditions():
    text = api_reference()
    assert text.count("### status.conditions") == len(KINDS)
    md, tj = text.index("## ModelDeployment"), text.index("## TrainingJob")
    assert md < tj
    assert "--for=condition=Ready tj/<name>" in text[tj:]
    assert "tj/<name>" not in text[:tj]
    assert "| **Suspended** |" in text[tj:]
    assert "`spec.env`" in text[tj:] and "`status.failedPods[].rank`" in text[tj:]


def test_spec_model_is_the_one_the_crd_was_built_from():
    assert TRAINING_JOB.spec_model is TrainingJobSpec
    assert issubclass(TRAINING_JOB.status_model, BaseModel)

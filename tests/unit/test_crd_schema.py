"""The generated CRD: fresh on disk, structural, documented, bounded for CEL."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from modelops.api import cli
from modelops.api.crd import KINDS, MODEL_DEPLOYMENT, build_crd, crd_files, root_schema, shipped_crd
from modelops.api.docs import api_reference

ROOT = Path(__file__).resolve().parents[2]
CRD = build_crd(MODEL_DEPLOYMENT)
SCHEMA = root_schema(MODEL_DEPLOYMENT)


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its field path (list items as [], map values as {})."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


# --- freshness ------------------------------------------------------------------------


def test_checked_in_crds_are_fresh():
    for name, text in crd_files().items():
        path = ROOT / "crds" / name
        assert path.exists(), f"crds/{name} is missing: run `make crds`"
        assert path.read_text() == text, f"crds/{name} is stale: run `make crds`"


def test_checked_in_api_docs_are_fresh():
    path = ROOT / "docs" / "api.md"
    assert path.read_text() == api_reference(), "docs/api.md is stale: run `make crds`"


def test_generation_is_deterministic():
    assert crd_files() == crd_files()
    assert api_reference() == api_reference()


# --- what kubectl shows -------------------------------------------------------------


def test_every_field_has_a_description_for_kubectl_explain():
    missing = [
        path for path, node in walk(SCHEMA) if path != "metadata" and not node.get("description")
    ]
    assert missing == []


def test_names_and_subresources():
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "modeldeployments.modelops.io"
    assert spec["group"] == "modelops.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ModelDeployment",
        "listKind": "ModelDeploymentList",
        "plural": "modeldeployments",
        "singular": "modeldeployment",
        "shortNames": ["md"],
        "categories": ["modelops"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_printer_columns():
    columns = CRD["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(c["name"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert default == [
        ("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        ("Replicas", ".status.readyReplicas"),
        ("GPUs", ".status.gpus"),
        ("Version", ".status.servedVersion"),
        ("Candidate", ".status.rollout.candidate"),
        ("Rollout", ".status.rollout.phase"),
        ("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_scale_paths_exist_in_the_schema():
    props = SCHEMA["properties"]
    assert props["spec"]["properties"]["replicas"]["type"] == "integer"
    assert props["status"]["properties"]["replicas"]["type"] == "integer"
    assert props["status"]["properties"]["selector"]["type"] == "string"


def test_kopf_progress_storage_is_preserved():
    kopf = SCHEMA["properties"]["status"]["properties"]["kopf"]
    assert kopf["x-kubernetes-preserve-unknown-fields"] is True


# --- structural schema ------------------------------------------------------------------

FORBIDDEN = {"$ref", "$defs", "allOf", "oneOf", "not", "nullable", "title", "const"}


def test_schema_is_structural():
    for path, node in walk(SCHEMA):
        assert not FORBIDDEN & set(node), f"{path}: {FORBIDDEN & set(node)}"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            assert "type" in node, f"{path}: no type"
        if "properties" in node:
            assert node.get("additionalProperties") is None, path
        assert node.get("exclusiveMinimum") in (None, True), path


def test_defaults_are_valid_values():
    for path, node in walk(SCHEMA):
        if "default" in node and node["default"] != {}:
            jsonschema.Draft4Validator(node).validate(node["default"]), path


def test_list_maps_have_required_keys():
    for path, node in walk(SCHEMA):
        if node.get("x-kubernetes-list-type") == "map":
            for key in node["x-kubernetes-list-map-keys"]:
                item = node["items"]
                assert key in item.get("required", []) or "default" in item["properties"][key], path


def test_user_input_is_bounded_for_the_cel_cost_estimator():
    """Unbounded lists, maps and strings make the API server's CEL cost estimate
    explode and reject the CRD; every one in spec carries a bound."""
    for path, node in walk(SCHEMA["properties"]["spec"], "spec"):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            continue
        kind = node.get("type")
        if kind == "array":
            assert "maxItems" in node, path
        elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
            assert "maxProperties" in node, path
        elif kind == "string" and "enum" not in node:
            assert "maxLength" in node, path


def test_cel_rules_have_messages_and_valid_field_paths():
    rules = 0
    for path, node in walk(SCHEMA):
        for rule in node.get("x-kubernetes-validations", []):
            rules += 1
            assert rule["rule"] and rule["message"], path
            if "fieldPath" in rule:
                target = node
                for part in rule["fieldPath"].strip(".").split("."):
                    assert part in target.get("properties", {}), f"{path}: {rule['fieldPath']}"
                    target = target["properties"][part]
            # CEL string literals reject "\." (see base.cel_regex).
            assert "\\." not in rule["rule"], path
    assert rules >= 20


def test_crd_yaml_is_one_document_with_header():
    text = crd_files()["modelops.io_modeldeployments.yaml"]
    assert text.startswith("# Generated by `modelops crds`")
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs == [shipped_crd(MODEL_DEPLOYMENT)]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_shipped_crds_serve_both_versions_and_store_v1beta1(kind):
    crd = yaml.safe_load(crd_files()[kind.file_name].split("---\n", 1)[1])
    versions = {v["name"]: (v["served"], v["storage"]) for v in crd["spec"]["versions"]}
    assert versions == {"v1alpha1": (True, False), "v1beta1": (True, True)}
    # v1alpha1's schema is the v1alpha1 one, unchanged by the second version.
    assert crd["spec"]["versions"][0] == build_crd(kind)["spec"]["versions"][0] | {"storage": False}
    conversion = crd["spec"]["conversion"]
    assert conversion["strategy"] == "Webhook"
    assert conversion["webhook"]["conversionReviewVersions"] == ["v1"]
    # The Service of manifests/install (the chart renders its release's own), no
    # caBundle: the operator patches in the CA it makes.
    assert conversion["webhook"]["clientConfig"] == {
        "service": {
            "namespace": "modelops-system",
            "name": "modelops-webhook",
            "path": "/convert",
            "port": 443,
        }
    }
    # The last key of spec: templates/crds.yaml replaces it from that line on.
    assert list(crd["spec"])[-1] == "conversion"


# --- the `modelops crds` command ----------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_prints_the_crds():
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.run(parse()) == 0
    docs = [d for d in yaml.safe_load_all(out.getvalue()) if d]
    assert [d["kind"] for d in docs] == ["CustomResourceDefinition"] * len(crd_files())


def test_cli_writes_and_checks(tmp_path: Path):
    args = parse("--output-dir", str(tmp_path / "crds"), "--docs", str(tmp_path / "api.md"))
    assert cli.run(args) == 0
    for name, text in crd_files().items():
        assert (tmp_path / "crds" / name).read_text() == text
    check = parse(
        "--output-dir", str(tmp_path / "crds"), "--docs", str(tmp_path / "api.md"), "--check"
    )
    assert cli.run(check) == 0
    (tmp_path / "api.md").write_text("stale")
    assert cli.run(check) == 1


@pytest.mark.parametrize("column", ["Model", "Drifted", "Message"])
def test_wide_columns(column):
    columns = {c["name"]: c for c in CRD["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns[column]["priority"] == 1

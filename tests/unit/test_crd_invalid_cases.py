"""The invalid-manifest table agrees with the CRD, without an API server.

The integration suite sends every case to a real API server. Here each case
must be refused by the OpenAPI part of the schema at the expected field (as
checked by a JSON Schema validator), or be covered by a CEL rule reported at
that field, or be an unknown field (strict field validation) — so a case can
only pass the integration test for the reason it was written for.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from modelops.api.crd import MODEL_DEPLOYMENT, root_schema
from modelops.api.modeldeployment import ModelDeployment
from tests.integration.invalid_modeldeployments import (
    CASES,
    STRICT_ONLY,
    VALID,
    VALID_PATCHES,
    manifest,
)

SCHEMA = root_schema(MODEL_DEPLOYMENT)
VALIDATOR = jsonschema.Draft4Validator(SCHEMA)  # OpenAPI 3.0 schemas are Draft 4 at heart


def _cel_locations(node: dict[str, Any], path: str = "") -> set[str]:
    found: set[str] = set()
    for rule in node.get("x-kubernetes-validations", []):
        if not path:  # root rules may only look at metadata.name
            found.add("metadata.name")
        else:
            found.add(path + rule.get("fieldPath", ""))
    for name, sub in node.get("properties", {}).items():
        found |= _cel_locations(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        found |= _cel_locations(node["items"], f"{path}[]")
    return found


CEL_LOCATIONS = _cel_locations(SCHEMA)


def _normalise(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path.removesuffix(": Required value"))


def _schema_errors(
    obj: dict[str, Any], validator: jsonschema.Draft4Validator = VALIDATOR
) -> set[str]:
    paths = set()
    for error in validator.iter_errors(obj):
        parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
        path = "".join(parts).lstrip(".").replace(".[", "[")
        if error.validator == "required":
            missing = re.match(r"'([^']+)'", error.message)
            assert missing
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        paths.add(_normalise(path))
        # anyOf (int-or-string) reports at the field itself; so does everything else.
    return paths


def test_table_shape():
    ids = [case_id for case_id, _, _ in CASES]
    assert len(ids) >= 30
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert set(STRICT_ONLY) <= set(ids)
    for case_id, patch, expected in CASES:
        assert isinstance(patch, dict) and patch, case_id
        assert expected.startswith(("spec", "metadata.name")), case_id
        assert manifest(patch) != VALID, case_id


def test_valid_base_is_valid():
    assert not list(VALIDATOR.iter_errors(VALID))
    ModelDeployment.from_body({**VALID, "metadata": {**VALID["metadata"], "namespace": "ns"}})


@pytest.mark.parametrize(("case_id", "patch", "expected"), CASES, ids=[c[0] for c in CASES])
def test_case_is_refused_for_its_reason(case_id, patch, expected):
    if case_id in STRICT_ONLY:
        assert not list(VALIDATOR.iter_errors(manifest(patch))), (
            "should be valid but for the unknown field"
        )
        return
    want = _normalise(expected)
    schema_paths = _schema_errors(manifest(patch))
    if schema_paths:
        assert want in schema_paths, f"refused at {schema_paths}, expected {want}"
    else:
        assert want in CEL_LOCATIONS, f"nothing in the schema refuses {case_id} at {want}"


@pytest.mark.parametrize(("case_id", "patch"), VALID_PATCHES, ids=[c[0] for c in VALID_PATCHES])
def test_valid_variant_passes_the_schema_and_parses(case_id, patch):
    body = manifest(patch)
    assert not list(VALIDATOR.iter_errors(body)), case_id
    ModelDeployment.from_body({**body, "metadata": {**body["metadata"], "namespace": "ns"}})

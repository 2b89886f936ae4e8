"""The invalid-TrainingJob table agrees with the CRD, without an API server.

As for ModelDeployment (test_crd_invalid_cases.py, whose checks this reuses):
each case must be refused by the OpenAPI schema at the expected field, or be
covered by a CEL rule reported there, or be an unknown field, so that a case
can only pass against a real API server for the reason it was written for.
"""

from __future__ import annotations

import jsonschema
import pytest

from modelops.api.crd import TRAINING_JOB, root_schema
from modelops.api.trainingjob import TrainingJob
from tests.integration.invalid_trainingjobs import CASES, STRICT_ONLY, VALID, manifest
from tests.unit.test_crd_invalid_cases import _cel_locations, _normalise, _schema_errors

SCHEMA = root_schema(TRAINING_JOB)
VALIDATOR = jsonschema.Draft4Validator(SCHEMA)
CEL_LOCATIONS = _cel_locations(SCHEMA)


def test_table_shape():
    ids = [case_id for case_id, _, _ in CASES]
    assert len(ids) >= 16
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert set(STRICT_ONLY) <= set(ids)
    for case_id, patch, expected in CASES:
        assert isinstance(patch, dict) and patch, case_id
        assert expected.startswith(("spec", "metadata.name")), case_id
        assert manifest(patch) != VALID, case_id


def test_the_brief_s_cases_are_all_there():
    ids = {case_id for case_id, _, _ in CASES}
    assert {
        "nodes-zero",
        "nodes-65",
        "procs-per-node-zero",
        "env-master-addr",
        "env-rank",
        "env-torchelastic-prefix",
        "dataset-uri-ftp",
        "queue-name-uppercase",
        "backoff-limit-negative",
        "active-deadline-zero",
        "gpu-count-17",
        "output-missing",
        "output-uri-no-scheme",
        "cpu-not-a-quantity",
        "unknown-field-in-spec",
        "hyperparameters-too-many",
    } <= ids


def test_valid_base_is_valid():
    assert not list(VALIDATOR.iter_errors(VALID))
    TrainingJob.from_body({**VALID, "metadata": {**VALID["metadata"], "namespace": "ns"}})


@pytest.mark.parametrize(("case_id", "patch", "expected"), CASES, ids=[c[0] for c in CASES])
def test_case_is_refused_for_its_reason(case_id, patch, expected):
    if case_id in STRICT_ONLY:
        assert not list(VALIDATOR.iter_errors(manifest(patch))), (
            "should be valid but for the unknown field"
        )
        return
    want = _normalise(expected)
    schema_paths = _schema_errors(manifest(patch), VALIDATOR)
    if schema_paths:
        assert want in schema_paths, f"refused at {schema_paths}, expected {want}"
    else:
        assert want in CEL_LOCATIONS, f"nothing in the schema refuses {case_id} at {want}"

"""The real API server refuses every invalid ModelDeployment at apply time,
with a message that names the offending field (CRD schema + CEL rules)."""

from __future__ import annotations

import json

import kubernetes
import pytest

from tests.integration.invalid_modeldeployments import CASES, VALID, manifest
from tests.support.cluster import Cluster
from tests.support.operator import install

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    install(cluster)
    return cluster


def _create(cluster: Cluster, namespace: str, body: dict) -> None:
    # Dry-run still runs schema validation, defaulting and CEL; Strict field
    # validation is what kubectl apply/create ask for by default.
    cluster.custom.create_namespaced_custom_object(
        "modelops.io",
        "v1alpha1",
        namespace,
        "modeldeployments",
        body,
        dry_run="All",
        field_validation="Strict",
    )


def test_the_valid_base_manifest_is_accepted(crds: Cluster, namespace: str):
    _create(crds, namespace, manifest({}))
    assert VALID["kind"] == "ModelDeployment"


def test_there_are_enough_distinct_invalid_cases():
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize(("case_id", "patch", "field"), CASES, ids=[c[0] for c in CASES])
def test_invalid_manifest_is_refused_naming_the_field(
    crds: Cluster, namespace: str, case_id: str, patch: dict, field: str
):
    with pytest.raises(kubernetes.client.ApiException) as refused:
        _create(crds, namespace, manifest(patch))
    assert refused.value.status in (400, 422), refused.value.body
    message = json.loads(refused.value.body)["message"]
    assert field in message, f"{case_id}: {field!r} not in {message!r}"

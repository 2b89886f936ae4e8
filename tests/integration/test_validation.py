"""The real API server refuses every invalid ModelDeployment and TrainingJob at
apply time, with a message that names the offending field (CRD schema + CEL)."""

from __future__ import annotations

import json

import kubernetes
import pytest

from tests.integration import invalid_modeldeployments as md_cases
from tests.integration import invalid_trainingjobs as tj_cases
from tests.support.cluster import Cluster
from tests.support.operator import install

pytestmark = pytest.mark.cluster

PLURALS = {"ModelDeployment": "modeldeployments", "TrainingJob": "trainingjobs"}
CASES = [("md", *case) for case in md_cases.CASES] + [("tj", *case) for case in tj_cases.CASES]
BUILDERS = {"md": md_cases.manifest, "tj": tj_cases.manifest}


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
        PLURALS[body["kind"]],
        body,
        dry_run="All",
        field_validation="Strict",
    )


@pytest.mark.parametrize("kind", ["md", "tj"])
def test_the_valid_base_manifest_is_accepted(crds: Cluster, namespace: str, kind: str):
    _create(crds, namespace, BUILDERS[kind]({}))


@pytest.mark.parametrize(("case_id", "patch"), md_cases.VALID_PATCHES, ids=lambda v: str(v)[:40])
def test_valid_gated_rollouts_are_accepted(crds: Cluster, namespace: str, case_id: str, patch):
    _create(crds, namespace, md_cases.manifest(patch))


def test_there_are_enough_distinct_invalid_cases():
    assert len({c[0] for c in md_cases.CASES}) == len(md_cases.CASES) >= 25
    assert len({c[0] for c in tj_cases.CASES}) == len(tj_cases.CASES) >= 12


@pytest.mark.parametrize(
    ("kind", "case_id", "patch", "field"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_invalid_manifest_is_refused_naming_the_field(
    crds: Cluster, namespace: str, kind: str, case_id: str, patch: dict, field: str
):
    with pytest.raises(kubernetes.client.ApiException) as refused:
        _create(crds, namespace, BUILDERS[kind](patch))
    assert refused.value.status in (400, 422), refused.value.body
    message = json.loads(refused.value.body)["message"]
    assert field in message, f"{case_id}: {field!r} not in {message!r}"

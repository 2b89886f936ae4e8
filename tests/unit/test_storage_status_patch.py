"""A status patch derived from the v1alpha1 object, written to the storage version
(render/merge_patch.py, controllers/actuator.py): the same change, no webhook call."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.api.conversion import to_v1alpha1, to_v1beta1
from modelops.api.kinds import (
    MODEL_DEPLOYMENT_STORED,
    SERVICE,
    TRAINING_JOB_STORED,
)
from modelops.controllers.actuator import status_write
from modelops.render.merge_patch import apply_merge_patch, storage_status_patch


def md(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "resourceVersion": "7"},
        "spec": {"model": {"storageUri": "s3://m/fraud", "format": "onnx"}},
        "status": status,
    }


READY = {"type": "Ready", "status": "True", "reason": "Serving"}


@pytest.mark.parametrize(
    ("status", "patch", "expected"),
    [
        # The field both versions spell differently, set, changed and removed.
        ({}, {"servedVersion": "3,4"}, {"servedVersions": [{"version": "3"}, {"version": "4"}]}),
        (
            {"servedVersion": "3"},
            {"servedVersion": "4"},
            {"servedVersions": [{"version": "4"}]},
        ),
        (
            {"servedVersion": "3", "phase": "Ready"},
            {"servedVersion": None},
            {"servedVersions": None},
        ),
        # Fields spelled alike pass as they are, deletions included.
        ({"phase": "Pending"}, {"phase": "Ready", "conditions": [READY]}, None),
        ({"phase": "Ready", "message": "x"}, {"message": None}, None),
        ({"drift": {"score": 0.1, "windows": 3}}, {"drift": {"windows": 4}}, None),
    ],
)
def test_the_patch_in_the_storage_version_makes_the_same_change(status, patch, expected):
    read = md(status)
    beta_patch = storage_status_patch(read, patch)
    assert beta_patch == (patch if expected is None else expected)
    # Applied to the stored object and read back in v1alpha1, it is the v1alpha1 patch.
    stored = to_v1beta1(read)
    after = to_v1alpha1(apply_merge_patch(stored, {"status": beta_patch}))
    assert after["status"] == apply_merge_patch(read, {"status": patch})["status"]


def test_the_frameworks_status_key_is_left_alone():
    read = md({"kopf": {"progress": {}}, "phase": "Pending"})
    assert storage_status_patch(read, {"phase": "Ready"}) == {"phase": "Ready"}


def test_modelops_kinds_write_status_in_their_storage_version():
    kind, patch = status_write(md({}), {"servedVersion": "1"})
    assert kind == MODEL_DEPLOYMENT_STORED and patch == {"servedVersions": [{"version": "1"}]}
    tj = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "t", "namespace": "ml"},
        "spec": {},
        "status": {},
    }
    assert status_write(tj, {"phase": "Running"}) == (TRAINING_JOB_STORED, {"phase": "Running"})
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    assert status_write(service, {"a": 1}) == (SERVICE, {"a": 1})

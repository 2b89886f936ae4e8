"""Projections keep exactly what the pure layer reads: deriving status from a
projection gives the same answer as from the full object."""

from __future__ import annotations

import json

import pytest

from modelops.render.projections import (
    OWNS_REPLICAS,
    project_autoscaler,
    project_custom_object,
    project_deployment,
    project_job,
    project_pod,
)
from modelops.render.status import derive_status
from modelops.render.training import derive_trainingjob_status
from tests.unit.test_render_fixtures import (
    GPU_MESSAGE,
    HPA_OK,
    NOW,
    crash,
    deployment,
    hpa,
    md_body,
    pod,
    progressing,
    waiting,
)
from tests.unit.test_render_trainingjob_fixtures import job as tj_job
from tests.unit.test_render_trainingjob_fixtures import pod as tj_pod
from tests.unit.test_render_trainingjob_fixtures import tj_body

MD_CASES = {
    "serving": (deployment(), [pod()]),
    "rolling": (
        deployment(replicas=2, updated=1, version="4"),
        [pod(version="3"), pod("fraud-new-1", version="4", template_hash="new", ready=False)],
    ),
    "unschedulable": (deployment(ready=0), [pod(ready=False, unschedulable=GPU_MESSAGE)]),
    "pulling": (deployment(ready=0), [pod(ready=False, pulling=True)]),
    "crash": (
        deployment(ready=0),
        [pod(ready=False, triton=crash("OOMKilled", code=137, message="killed"))],
    ),
    "image": (deployment(ready=0), [pod(ready=False, triton=waiting("ImagePullBackOff", "x"))]),
    "deadline": (
        deployment(ready=0, conditions=[progressing("False", "ProgressDeadlineExceeded", "x")]),
        [pod(ready=False, loading=True)],
    ),
}


@pytest.mark.parametrize("case", MD_CASES)
def test_model_deployment_status_is_the_same_from_projections(case):
    dep, pods = MD_CASES[case]
    common = dict(events=[], keda_missing=False, drift=None, now=NOW, previous_conditions=None)
    full = derive_status(md_body(), deployment=dep, pods=pods, autoscaler=hpa(*HPA_OK), **common)
    projected = derive_status(
        project_custom_object(md_body()),
        deployment=project_deployment(dep),
        pods=[project_pod(p) for p in pods],
        autoscaler=project_autoscaler(hpa(*HPA_OK)),
        **common,
    )
    assert projected == full


TJ_CASES = {
    "running": (tj_job(), [tj_pod(0), tj_pod(1)]),
    "succeeded": (tj_job(state="succeeded"), [tj_pod(0, exit_code=0), tj_pod(1, exit_code=0)]),
    "failed": (tj_job(state="failed"), [tj_pod(0, exit_code=0), tj_pod(1, exit_code=1)]),
    "waiting": (tj_job(), [tj_pod(0, unschedulable=GPU_MESSAGE), tj_pod(1)]),
}


@pytest.mark.parametrize("case", TJ_CASES)
def test_training_job_status_is_the_same_from_projections(case):
    live_job, pods = TJ_CASES[case]
    kw = dict(previous_status={}, now=NOW, restarts=0)
    full = derive_trainingjob_status(tj_body(), job=live_job, pods=pods, **kw)
    projected = derive_trainingjob_status(
        tj_body(), job=project_job(live_job), pods=[project_pod(p) for p in pods], **kw
    )
    assert projected == full


def test_a_pod_projection_is_a_small_fraction_of_the_pod():
    full = pod()
    full["spec"]["containers"][0].update(
        env=[{"name": f"E{i}", "value": "x" * 40} for i in range(20)]
    )
    full["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]
    assert len(json.dumps(project_pod(full))) < len(json.dumps(full)) / 2


def test_deployment_projection_drops_the_template_but_notes_replica_ownership():
    dep = deployment()
    dep["metadata"]["managedFields"] = [
        {"manager": "modelops", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]
    projected = project_deployment(dep)
    assert projected[OWNS_REPLICAS] is True
    assert "selector" not in projected["spec"]
    assert "managedFields" not in projected["metadata"]


def test_custom_object_projection_drops_managed_fields_and_last_applied():
    body = md_body()
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    body["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "team": "fraud",
    }
    projected = project_custom_object(body)
    assert "managedFields" not in projected["metadata"]
    assert projected["metadata"]["annotations"] == {"team": "fraud"}
    assert projected["spec"] == body["spec"]

"""A TrainingJob's GPUs through DRA: one claim per node's pod from one template, the
same product for every node, Kueue suspension unchanged. Pure."""

from __future__ import annotations

from typing import Any

from modelops.render.projections import project_claim_template, project_job, project_pod
from modelops.render.training import planner, render_job
from modelops.render.training.gpu_claims import render_claim_template
from tests.unit.test_render_trainingjob_fixtures import NOW, job, pod, tj_body

H100S = {"name": "h100", "count": 2, "product": "NVIDIA H100 80GB HBM3"}


def dra_body(**spec: Any) -> dict[str, Any]:
    gpu = {"count": 1, "allocation": "DRA", "alternatives": [H100S]}
    return tj_body(resources={"gpu": gpu, "cpu": "2", "memory": "8Gi"}, procsPerNode=2, **spec)


def live_template(body: dict[str, Any], *, owner: str | None = None) -> dict[str, Any]:
    rendered = render_claim_template(planner.parse(body))
    assert rendered is not None
    meta = {**rendered["metadata"], "uid": "uid-rct", "resourceVersion": "9"}
    meta["ownerReferences"] = [{"uid": owner or body["metadata"]["uid"], "controller": True}]
    return project_claim_template({**rendered, "metadata": meta})


def plan(body: dict[str, Any], template: dict[str, Any] | None = None, **kw: Any):
    obs = planner.Observed(
        body=body,
        jobs=[project_job(j) for j in kw.get("jobs", ())],
        pods=[project_pod(p) for p in kw.get("pods", ())],
        service=None,
        now=NOW,
        claim_template=template,
    )
    return planner.plan(obs, planner.parse(body), None)


def test_every_nodes_pod_gets_a_claim_from_the_jobs_template():
    tj = planner.parse(dra_body())
    job_body = render_job(tj, attempt=1)
    pod_spec = job_body["spec"]["template"]["spec"]
    assert pod_spec["resourceClaims"] == [
        {"name": "gpu", "resourceClaimTemplateName": "fraud-retrain"}
    ]
    [trainer] = pod_spec["containers"]
    assert trainer["resources"]["claims"] == [{"name": "gpu"}]
    assert "nvidia.com/gpu" not in trainer["resources"]["limits"]
    template = render_claim_template(tj)
    assert template is not None
    [request] = template["spec"]["spec"]["devices"]["requests"]
    [only] = request["firstAvailable"]
    assert (only["name"], only["count"]) == ("h100", 2)
    assert template["spec"]["metadata"]["labels"]["modelops.io/training-job"] == "fraud-retrain"


def test_the_device_plugin_stays_the_default_for_training():
    tj = planner.parse(tj_body())
    assert render_claim_template(tj) is None
    pod_spec = render_job(tj)["spec"]["template"]["spec"]
    assert "resourceClaims" not in pod_spec
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_the_template_is_applied_before_the_first_attempts_job_is_created():
    p = plan(dra_body())
    assert [a.kind for a in p.applies] == ["ResourceClaimTemplate", "Service"]
    assert [c.obj["metadata"]["name"] for c in p.creates] == ["fraud-retrain-a0"]


def test_kueue_suspension_is_unchanged_with_dra():
    p = plan(dra_body(queueName="gpu-queue"))
    [create] = p.creates
    assert create.obj["spec"]["suspend"] is True  # Kueue admits by un-suspending
    assert create.obj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert create.obj["spec"]["template"]["spec"]["resourceClaims"]


def test_status_counts_the_alternatives_gpus_per_node():
    body = dra_body()
    p = plan(body, live_template(body), jobs=[job()], pods=[pod(0), pod(1)])
    assert p.status["gpus"] == 4  # 2 nodes x 2 H100


def test_a_changed_product_replaces_the_template():
    old = dra_body()
    new = dra_body()
    new["spec"]["resources"]["gpu"]["alternatives"] = [{**H100S, "product": "NVIDIA B200"}]
    p = plan(new, live_template(old))
    assert p.applies == []
    assert [(d.kind, d.name) for d in p.deletes] == [("ResourceClaimTemplate", "fraud-retrain")]
    # The attempt's Job waits for the new template, so its pods never use the old one.
    assert p.creates == []
    p = plan(new, None)
    assert [a.kind for a in p.applies] == ["ResourceClaimTemplate", "Service"]
    assert [c.obj["metadata"]["name"] for c in p.creates] == ["fraud-retrain-a0"]


def test_leaving_dra_deletes_the_template_but_never_someone_elses():
    p = plan(tj_body(), live_template(dra_body()))
    assert [(d.kind, d.uid) for d in p.deletes] == [("ResourceClaimTemplate", "uid-rct")]
    p = plan(tj_body(), live_template(dra_body(), owner="someone-else"))
    assert p.deletes == []

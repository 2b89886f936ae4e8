"""GPUs through DRA: the claim template, the pod's side, status.gpu, and the planner's
handling of an immutable template. Pure: no cluster (e2e/test_dra.py runs it for real)."""

from __future__ import annotations

from typing import Any

from modelops.render import dra
from modelops.render.children import render_children
from modelops.render.meta import as_md
from modelops.render.ownership import Applied
from modelops.render.projections import project_claim, project_claim_template, project_pod
from tests.unit.test_md_planner import UID, cluster, live, plan, record
from tests.unit.test_render_fixtures import md_body, pod

H100 = {"name": "h100", "product": "NVIDIA H100 80GB HBM3"}
TWO_L4 = {"name": "l4", "count": 2, "product": "NVIDIA L4", "minMemory": "20Gi"}


def dra_body(alternatives: list[dict[str, Any]] | None = None, **gpu: Any) -> dict[str, Any]:
    spec = {"allocation": "DRA", "alternatives": alternatives or [H100, TWO_L4], **gpu}
    return md_body(resources={"gpu": {"count": 1, **spec}, "cpu": "2", "memory": "8Gi"})


def children(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objs = render_children(body, operator_image="modelops:test", model_version="3")
    return {o["kind"]: o for o in objs}


def claim(name: str, *results: tuple[str, str, str]) -> dict[str, Any]:
    """A ResourceClaim as the scheduler leaves it: (request, pool, device) per result."""
    body: dict[str, Any] = {"metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}"}}
    if results:
        body["status"] = {
            "allocation": {
                "devices": {
                    "results": [
                        {"request": r, "driver": "gpu.nvidia.com", "pool": p, "device": d}
                        for r, p, d in results
                    ]
                }
            },
            "reservedFor": [{"resource": "pods", "name": "x", "uid": "y"}],
        }
    return body


def pod_with_claim(name: str, claim_name: str | None) -> dict[str, Any]:
    body = pod(name)
    if claim_name:
        body["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": claim_name}]
    return body


# -- the template ----------------------------------------------------------------------


def test_the_device_plugin_stays_the_default_and_renders_no_template():
    objs = children(md_body())
    assert "ResourceClaimTemplate" not in objs
    triton = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "claims" not in triton["resources"]
    assert "resourceClaims" not in objs["Deployment"]["spec"]["template"]["spec"]


def test_alternatives_become_a_prioritized_list_against_nvidias_device_class():
    template = children(dra_body())["ResourceClaimTemplate"]
    assert template["apiVersion"] == "resource.k8s.io/v1"
    assert template["metadata"]["name"] == "fraud"
    assert template["metadata"]["ownerReferences"][0]["uid"] == UID
    [request] = template["spec"]["spec"]["devices"]["requests"]
    assert request["name"] == "gpu"
    h100, l4 = request["firstAvailable"]
    assert h100 == {
        "name": "h100",
        "deviceClassName": "gpu.nvidia.com",
        "allocationMode": "ExactCount",
        "count": 1,  # resources.gpu.count
        "selectors": [
            {
                "cel": {
                    "expression": "device.attributes['gpu.nvidia.com'].productName "
                    "== 'NVIDIA H100 80GB HBM3'"
                }
            }
        ],
    }
    assert l4["count"] == 2
    assert [s["cel"]["expression"] for s in l4["selectors"]] == [
        "device.attributes['gpu.nvidia.com'].productName == 'NVIDIA L4'",
        "device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('20Gi')) >= 0",
    ]


def test_a_single_alternative_is_still_a_subrequest_so_status_can_name_it():
    template = dra.render_claim_template(as_md(dra_body([{"name": "any"}])))
    assert template is not None
    [request] = template["spec"]["spec"]["devices"]["requests"]
    [only] = request["firstAvailable"]
    assert only["name"] == "any" and "selectors" not in only


def test_claims_made_from_the_template_carry_the_pods_labels():
    template = children(dra_body())["ResourceClaimTemplate"]
    labels = template["spec"]["metadata"]["labels"]
    assert labels["modelops.io/model-deployment"] == "fraud"
    assert labels["app.kubernetes.io/managed-by"] == "modelops"


def test_a_device_class_of_ones_own_is_used_for_every_alternative():
    template = children(dra_body(deviceClassName="h100.example.com"))["ResourceClaimTemplate"]
    requests = template["spec"]["spec"]["devices"]["requests"][0]["firstAvailable"]
    assert {r["deviceClassName"] for r in requests} == {"h100.example.com"}


# -- the pod's side --------------------------------------------------------------------


def test_the_pod_references_the_template_instead_of_an_extended_resource():
    objs = children(dra_body())
    template = objs["Deployment"]["spec"]["template"]
    spec = template["spec"]
    assert spec["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": "fraud"}]
    triton, *others = spec["containers"]
    assert triton["resources"]["claims"] == [{"name": "gpu"}]
    assert "nvidia.com/gpu" not in triton["resources"]["limits"]
    assert triton["resources"]["limits"]["cpu"] == "2"  # Guaranteed QoS kept
    assert all("claims" not in c.get("resources", {}) for c in others + spec["initContainers"])
    # GPU nodes stay tainted for CPU pods: the toleration is kept, no product node selector.
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert "nvidia.com/gpu.product" not in spec.get("nodeSelector", {})
    digest = objs["ResourceClaimTemplate"]["metadata"]["annotations"]["modelops.io/claim-digest"]
    assert template["metadata"]["annotations"]["modelops.io/claim-digest"] == digest


def test_new_alternatives_change_the_digest_and_so_roll_the_pods():
    before = children(dra_body())
    after = children(dra_body([TWO_L4, H100]))

    def digest_of(objs: dict[str, Any]) -> str:
        return objs["Deployment"]["spec"]["template"]["metadata"]["annotations"][
            "modelops.io/claim-digest"
        ]

    assert digest_of(before) != digest_of(after)
    assert digest_of(before) == digest_of(children(dra_body()))


# -- status ----------------------------------------------------------------------------


def test_status_names_the_alternative_each_pod_was_granted():
    md = as_md(dra_body())
    pods = [
        project_pod(pod_with_claim("fraud-a", "fraud-a-gpu-1")),
        project_pod(pod_with_claim("fraud-b", "fraud-b-gpu-2")),
        project_pod(pod_with_claim("fraud-c", "fraud-c-gpu-3")),  # not allocated yet
        project_pod(pod_with_claim("fraud-d", None)),  # claim not made yet
    ]
    claims = [
        project_claim(claim("fraud-a-gpu-1", ("gpu/h100", "node-1", "gpu-0"))),
        project_claim(
            claim("fraud-b-gpu-2", ("gpu/l4", "node-2", "gpu-3"), ("gpu/l4", "node-2", "gpu-1"))
        ),
        project_claim(claim("fraud-c-gpu-3")),
    ]
    status = dra.gpu_status(md, pods, claims)
    assert status == {
        "allocation": "DRA",
        "allocated": [
            {
                "pod": "fraud-a",
                "claim": "fraud-a-gpu-1",
                "alternative": "h100",
                "devices": ["node-1/gpu-0"],
            },
            {
                "pod": "fraud-b",
                "claim": "fraud-b-gpu-2",
                "alternative": "l4",
                "devices": ["node-2/gpu-1", "node-2/gpu-3"],
            },
        ],
        "summary": "h100: 1, l4: 1",
    }
    assert dra.allocated_gpus(status) == 3


def test_no_gpu_status_for_the_device_plugin():
    assert dra.gpu_status(as_md(md_body()), [project_pod(pod())], []) is None


def test_the_planner_reports_status_gpu_and_counts_allocated_gpus():
    body = dra_body()
    kids = cluster(body)
    p = plan(
        body,
        kids,
        record(kids, body),
        pods=[pod_with_claim("fraud-7d9f8c6b5-x2x4q", "c1")],
        claims=[project_claim(claim("c1", ("gpu/l4", "n", "gpu-0"), ("gpu/l4", "n", "gpu-1")))],
    )
    assert p.status["gpu"]["summary"] == "l4: 1"
    assert p.status["gpus"] == 2


def test_an_unschedulable_claim_reaches_the_scheduled_condition():
    body = dra_body()
    kids = cluster(body)
    message = "0/9 nodes are available: 9 cannot allocate all claims."
    p = plan(body, kids, record(kids, body), pods=[pod(unschedulable=message)])
    scheduled = next(c for c in p.status["conditions"] if c["type"] == "Scheduled")
    assert scheduled["status"] == "False"
    assert "cannot allocate all claims" in scheduled["message"]


# -- the immutable template -------------------------------------------------------------


def _live_template(body: dict[str, Any]) -> dict[str, Any]:
    rendered = children(body)["ResourceClaimTemplate"]
    return project_claim_template(
        {**live(rendered), "metadata": {**live(rendered)["metadata"], **_annotations(rendered)}}
    )


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    return {"annotations": obj["metadata"]["annotations"]}


def test_an_unchanged_template_is_left_alone():
    body = dra_body()
    kids = cluster(body, ResourceClaimTemplate=_live_template(body))
    p = plan(body, kids, record(kids, body))
    assert "ResourceClaimTemplate" not in [a.kind for a in p.applies]
    assert p.deletes == []


def test_a_changed_claim_spec_deletes_the_live_template_instead_of_applying_it():
    old = dra_body()
    new = {**dra_body([TWO_L4]), "metadata": {**old["metadata"], "generation": 5}}
    kids = cluster(new, ResourceClaimTemplate=_live_template(old))
    p = plan(new, kids, record(cluster(old), old))
    # Nothing else this time: the Deployment's new pods must not get their claims
    # from the old template while its delete is under way.
    assert p.applies == []
    [delete] = p.deletes
    assert (delete.kind, delete.name, delete.uid) == (
        "ResourceClaimTemplate",
        "fraud",
        "uid-ResourceClaimTemplate",
    )
    # Nothing was applied, so nothing may count as applied.
    assert p.digest == ""
    # The next reconcile (template gone) creates the template before the Deployment.
    kids.pop("ResourceClaimTemplate")
    p = plan(new, kids, Applied(p.digest, record(cluster(old), old).fingerprints))
    assert [a.kind for a in p.applies][:2] == ["ResourceClaimTemplate", "Deployment"]


def test_a_template_missing_after_the_delete_is_created_again():
    body = dra_body([TWO_L4])
    kids = cluster(body)
    kids.pop("ResourceClaimTemplate")
    p = plan(body, kids, record(kids, body))
    [create] = [a for a in p.applies if a.kind == "ResourceClaimTemplate"]
    assert create.expect_uid is None


def test_switching_back_to_the_device_plugin_deletes_the_template():
    dra_spec = dra_body()
    plain = md_body()
    kids = {**cluster(plain), "ResourceClaimTemplate": _live_template(dra_spec)}
    p = plan(plain, kids, None)
    assert [(d.kind, d.name) for d in p.deletes] == [("ResourceClaimTemplate", "fraud")]


def test_a_template_owned_by_someone_else_is_never_deleted():
    old = dra_body()
    foreign = _live_template(old)
    foreign["metadata"]["ownerReferences"] = [{"uid": "someone-else", "controller": True}]
    new = dra_body([TWO_L4])
    kids = cluster(new, ResourceClaimTemplate=foreign)
    p = plan(new, kids, None)
    assert p.deletes == []
    assert any(f.reason == "OwnershipConflict" for f in p.problems)


def test_projections_keep_what_the_planner_reads():
    projected = project_claim(claim("c", ("gpu/h100", "p", "gpu-0")))
    assert projected["status"]["allocation"]["devices"]["results"] == [
        {"request": "gpu/h100", "driver": "gpu.nvidia.com", "pool": "p", "device": "gpu-0"}
    ]
    assert "reservedFor" not in projected["status"]
    kept = project_pod(pod_with_claim("p", "p-gpu-1"))
    assert kept["status"]["resourceClaimStatuses"] == [
        {"name": "gpu", "resourceClaimName": "p-gpu-1"}
    ]


def test_dra_on_a_cluster_without_the_api_changes_nothing_and_says_why():
    body = dra_body()
    p = plan(body, {}, None, pods=[], dra_served=False)
    assert p.applies == [] and p.deletes == []
    stalled = next(c for c in p.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "DRANotServed")
    assert "resource.k8s.io/v1" in stalled["message"]

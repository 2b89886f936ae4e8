"""render_children / child_kinds / render_pdb: the controller's view."""

from __future__ import annotations

from modelops.render.children import child_kinds, render_children
from modelops.render.pdb import render_pdb
from tests.unit.test_render_fixtures import AUTOSCALING, md_body

IMAGE = "ghcr.io/modelops/operator:0.1.0"


def kinds(objs):
    return [o["kind"] for o in objs]


def test_child_kinds_cover_everything_rendered():
    known = {(k.api_version, k.kind) for k in child_kinds()}
    bodies = [
        md_body(),
        md_body(replicas=3),
        md_body(autoscaling=AUTOSCALING),
        md_body(autoscaling={**AUTOSCALING, "engine": "keda"}),
    ]
    for body in bodies:
        for obj in render_children(body, operator_image=IMAGE, model_version="1"):
            assert (obj["apiVersion"], obj["kind"]) in known
    plurals = {k.kind: k.plural for k in child_kinds()}
    assert plurals["HorizontalPodAutoscaler"] == "horizontalpodautoscalers"
    assert plurals["ScaledObject"] == "scaledobjects"


def test_minimal_children():
    body = md_body()
    objs = render_children(body, operator_image=IMAGE, model_version="1")
    assert kinds(objs) == ["Deployment", "Service"]
    assert all(o["metadata"]["name"] == "fraud" for o in objs)


def test_autoscaled_children():
    body = md_body(autoscaling=AUTOSCALING)
    objs = render_children(body, operator_image=IMAGE, model_version="1")
    assert kinds(objs) == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]


def test_render_children_passes_rollout_arguments_through():
    body = md_body(autoscaling=AUTOSCALING)
    [dep, *_] = render_children(
        body, operator_image=IMAGE, model_version="9", replace_in_place=True, replicas=3
    )
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert dep["spec"]["template"]["metadata"]["annotations"]["modelops.io/model-version"] == "9"


def test_every_child_has_fixed_name_namespace_and_owner():
    body = md_body(autoscaling={**AUTOSCALING, "engine": "keda"})
    for obj in render_children(body, operator_image=IMAGE, model_version="1"):
        assert obj["metadata"]["name"] == "fraud"
        assert obj["metadata"]["namespace"] == "ml"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
        assert "status" not in obj


def test_pdb_only_from_two_replicas():
    assert render_pdb(md_body(replicas=1)) is None
    assert render_pdb(md_body(autoscaling={**AUTOSCALING, "minReplicas": 1})) is None
    pdb = render_pdb(md_body(replicas=2))
    assert pdb is not None
    assert pdb["apiVersion"] == "policy/v1" and pdb["kind"] == "PodDisruptionBudget"
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"modelops.io/model-deployment": "fraud"}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }
    assert render_pdb(md_body(autoscaling=AUTOSCALING)) is not None  # minReplicas 2


def test_api_and_render_stay_pure():
    """Belt and braces for the import-linter contract: importing the pure layers
    pulls in no cluster client, no kopf, no torch, no controller code."""
    import subprocess
    import sys

    code = (
        "import sys, modelops.api, modelops.render, modelops.api.cli, modelops.api.docs\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'kopf', 'kubernetes', 'torch'}"
        " or m.startswith(('modelops.kube', 'modelops.controllers')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

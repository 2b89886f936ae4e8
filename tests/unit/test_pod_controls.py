"""Pod controls (v1beta1): read by the one intake, applied to serving and training pods,
the operator's own entries winning and a collision refused naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from modelops.api import constants as c
from modelops.api.conversion import BETA_FIELDS, to_v1alpha1, to_v1beta1
from modelops.api.intake import read_model_deployment, read_training_job
from modelops.api.pod_controls import PodControls
from modelops.render import md_planner
from modelops.render.children import render_children
from modelops.render.deployment import PULL_CONTAINER, TRITON_CONTAINER
from modelops.render.drift_sidecar import DRIFT_CONTAINER
from modelops.render.pod_controls import PodControlsCollision, apply_pod_controls
from modelops.render.slots import Layout
from modelops.render.training import TRAINER_CONTAINER, render_job
from tests.unit.test_md_planner import SETTINGS, cluster, observed, record
from tests.unit.test_md_planner import plan as md_plan
from tests.unit.test_render_fixtures import md_body
from tests.unit.test_render_trainingjob_fixtures import tj_body

SECRET_ENV = {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}}
CONTROLS: dict[str, Any] = {
    "podMetadata": {
        "labels": {"team": "fraud", "cost-center": "42"},
        "annotations": {"sidecar.istio.io/inject": "false"},
    },
    "imagePullSecrets": [{"name": "registry"}],
    "volumes": [
        {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "certs", "secret": {"secretName": "ca"}},
    ],
    "scheduling": {
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"},
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
    },
}
MOUNTS = [
    {"name": "cache", "mountPath": "/cache"},
    {"name": "certs", "mountPath": "/etc/ca", "readOnly": True},
]
ENV = [{"name": "LOG_LEVEL", "value": "debug"}, SECRET_ENV]


def beta_md(**extra: Any) -> dict[str, Any]:
    """A v1beta1 ModelDeployment with every pod control (the fixture converted up)."""
    body = to_v1beta1(md_body())
    spec = body["spec"]
    spec.update(copy.deepcopy(CONTROLS))
    spec["runtime"]["volumeMounts"] = copy.deepcopy(MOUNTS)
    spec["runtime"]["env"] = copy.deepcopy(ENV)
    spec["resources"]["cpuLimit"] = "4"
    for key, value in extra.items():
        spec[key] = value
    return body


def beta_tj() -> dict[str, Any]:
    body = to_v1beta1(tj_body())
    spec = body["spec"]
    spec.update(copy.deepcopy(CONTROLS))
    spec["volumeMounts"] = copy.deepcopy(MOUNTS)
    spec["env"] = copy.deepcopy(ENV)
    spec["resources"]["cpuLimit"] = "4"
    return body


def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = template["spec"]
    return {x["name"]: x for x in [*pod.get("initContainers", []), *pod["containers"]]}


# --- the intake -----------------------------------------------------------------------


def test_intake_reads_the_same_controls_from_v1beta1_and_from_v1alpha1_with_the_annotation():
    beta = beta_md()
    alpha = to_v1alpha1(beta)
    assert BETA_FIELDS in alpha["metadata"]["annotations"]  # how the API server hands it over
    assert "volumes" not in alpha["spec"]  # v1alpha1 has no home for them
    from_beta, from_alpha = read_model_deployment(beta), read_model_deployment(alpha)
    assert from_beta.pod_controls == from_alpha.pod_controls
    assert from_beta.spec == from_alpha.spec  # the v1alpha1 model the planners read
    controls = from_alpha.pod_controls
    assert controls.labels == {"team": "fraud", "cost-center": "42"}
    assert controls.env == ENV and controls.volume_mounts == MOUNTS
    assert controls.cpu_limit == "4"
    assert controls.image_pull_secrets == [{"name": "registry"}]


def test_intake_of_a_plain_v1alpha1_body_has_no_controls_but_its_env():
    md = read_model_deployment(md_body(runtime={"env": [{"name": "A", "value": "1"}]}))
    assert md.pod_controls == PodControls(kind=c.MD_KIND, env=[{"name": "A", "value": "1"}])


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
def test_intake_refuses_a_mount_of_no_user_volume_naming_the_field(version):
    beta = beta_md()
    beta["spec"]["runtime"]["volumeMounts"].append({"name": "models", "mountPath": "/m"})
    body = beta if version == "v1beta1" else to_v1alpha1(beta)
    with pytest.raises(ValidationError) as err:
        read_model_deployment(body)
    assert err.value.errors()[0]["loc"] == ("spec", "runtime", "volumeMounts", 2, "name")
    # The planner's parse turns it into the InvalidSpec message.
    assert md_planner.parse(body).startswith("spec.runtime.volumeMounts.2.name: models names no")


# --- serving pods -----------------------------------------------------------------------


def render_slots(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Both slots of a gated rollout (the sidecar runs: strategy Shadow)."""
    body["spec"]["rollout"] = {**body["spec"]["rollout"], "strategy": "Shadow"}
    layout = Layout(stable_version="3", candidate_version="4", candidate_replicas=1)
    children = render_children(body, operator_image="op:1", model_version="3", layout=layout)
    return [ch for ch in children if ch["kind"] == "Deployment"]


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
def test_every_serving_slot_carries_the_pod_controls(version):
    body = beta_md() if version == "v1beta1" else to_v1alpha1(beta_md())
    deployments = render_slots(body)
    assert len(deployments) == 2  # stable and candidate
    for dep in deployments:
        template = dep["spec"]["template"]
        meta, pod = template["metadata"], template["spec"]
        assert meta["labels"]["team"] == "fraud" and meta["labels"]["cost-center"] == "42"
        assert meta["labels"]["modelops.io/model-deployment"] == "fraud"  # the operator's stay
        assert meta["annotations"]["sidecar.istio.io/inject"] == "false"
        assert c.ANNOTATION_MODEL_VERSION in meta["annotations"]
        assert pod["imagePullSecrets"] == [{"name": "registry"}]
        assert "serviceAccountName" not in pod  # the pod's own list: no ServiceAccount needed
        names = [v["name"] for v in pod["volumes"]]
        assert names[-2:] == ["cache", "certs"] and "models" in names
        assert pod["affinity"] == CONTROLS["scheduling"]["affinity"]
        (spread,) = pod["topologySpreadConstraints"]
        # Unset, the selector is this ModelDeployment's own pods.
        assert spread["labelSelector"] == {"matchLabels": {"modelops.io/model-deployment": "fraud"}}
        by_name = containers(template)
        triton = by_name[TRITON_CONTAINER]
        assert triton["volumeMounts"][-2:] == MOUNTS
        assert [e for e in triton["env"] if e["name"] != "HOME"] == ENV
        assert triton["resources"]["limits"]["cpu"] == "4"
        assert triton["resources"]["requests"]["cpu"] == "2"  # the request stays
        # The sidecar and the puller get neither the user's mounts nor variables.
        for name in (DRIFT_CONTAINER, PULL_CONTAINER):
            other = by_name[name]
            assert not {m["mountPath"] for m in other["volumeMounts"]} & {"/cache", "/etc/ca"}
            assert "API_TOKEN" not in {e["name"] for e in other.get("env") or []}
            assert other["resources"]["limits"]["cpu"] != "4"


def test_no_controls_renders_what_it_rendered_before():
    """A v1alpha1 object without the annotation: the pods are as before the intake."""
    plain = render_slots(md_body())
    for dep in plain:
        pod = dep["spec"]["template"]["spec"]
        assert not {"imagePullSecrets", "affinity", "topologySpreadConstraints"} & set(pod)


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (lambda s: s["podMetadata"]["labels"].update(team="risk"), "labels"),
        (lambda s: s["volumes"].append({"name": "x", "emptyDir": {}}), "volumes"),
        (lambda s: s["resources"].update(cpuLimit="8"), "cpuLimit"),
        (lambda s: s["runtime"]["env"].append({"name": "B", "value": "2"}), "env"),
    ],
)
def test_a_pod_control_change_through_the_annotation_is_applied_as_a_plain_template_change(
    edit, changed
):
    """Read as v1alpha1 the change moves no generation: the render memo and the plan still
    see it and apply the Deployment (a rolling update, not a gated candidate)."""
    before = to_v1alpha1(beta_md())
    edited = beta_md()
    edit(edited["spec"])
    after = to_v1alpha1(edited)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    children = cluster(before)
    memo: dict[Any, Any] = {}
    steady = md_planner.plan(
        observed(before, children),
        md_planner.parse(before),
        record(children, before),
        SETTINGS,
        memo,
    )
    assert not steady.applies, changed
    moved = md_planner.plan(
        observed(after, children),
        md_planner.parse(after),
        record(children, before),
        SETTINGS,
        memo,
    )
    (dep,) = [a.obj for a in moved.applies if a.kind == "Deployment"]
    rendered = [
        ch
        for ch in render_children(
            after,
            operator_image=SETTINGS.operator_image,
            model_version="latest",
            triton_image=SETTINGS.triton_image,
        )
        if ch["kind"] == "Deployment"
    ]
    assert dep["spec"]["template"] == rendered[0]["spec"]["template"], changed
    assert dep["spec"]["template"] != steady_template(before), changed
    rollout = moved.status.get("rollout") or {}
    assert "candidate" not in rollout  # no gated candidate for a pod-control change


def steady_template(body: dict[str, Any]) -> dict[str, Any]:
    children = render_children(
        body,
        operator_image=SETTINGS.operator_image,
        model_version="latest",
        triton_image=SETTINGS.triton_image,
    )
    return next(ch for ch in children if ch["kind"] == "Deployment")["spec"]["template"]


# --- the merge and collision rules ------------------------------------------------------


def template() -> dict[str, Any]:
    """A pod template as a renderer leaves it: the operator's entries only."""
    return {
        "metadata": {
            "labels": {"app.kubernetes.io/name": "triton", "modelops.io/slot": "a"},
            "annotations": {"kubectl.kubernetes.io/default-container": "main"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "env": [{"name": "HOME", "value": "/tmp"}],
                    "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                    "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
                },
                {"name": "side", "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]},
            ],
            "volumes": [{"name": "models", "emptyDir": {}}, {"name": "scratch", "emptyDir": {}}],
        },
    }


def with_user_env(tmpl: dict[str, Any], env: list[dict[str, Any]]) -> dict[str, Any]:
    """The renderers put the user's variables in the main container themselves."""
    tmpl["spec"]["containers"][0]["env"] += env
    return tmpl


VOL = {"name": "data", "emptyDir": {}}


@pytest.mark.parametrize(
    ("kind", "controls", "field"),
    [
        # Labels and annotations: the operator's keys and its domain are refused.
        (
            c.MD_KIND,
            {"labels": {"app.kubernetes.io/name": "mine"}},
            "spec.podMetadata.labels[app.kubernetes.io/name]",
        ),
        (
            c.MD_KIND,
            {"labels": {"modelops.io/slot": "b"}},
            "spec.podMetadata.labels[modelops.io/slot]",
        ),
        (
            c.MD_KIND,
            {"labels": {"modelops.io/anything": "x"}},
            "spec.podMetadata.labels[modelops.io/anything]",
        ),
        (
            c.MD_KIND,
            {"labels": {"pod-template-hash": "x"}},
            "spec.podMetadata.labels[pod-template-hash]",
        ),
        (
            c.TJ_KIND,
            {"labels": {"batch.kubernetes.io/job-completion-index": "0"}},
            "spec.podMetadata.labels[batch.kubernetes.io/job-completion-index]",
        ),
        (c.TJ_KIND, {"labels": {"job-name": "x"}}, "spec.podMetadata.labels[job-name]"),
        (
            c.MD_KIND,
            {"annotations": {"kubectl.kubernetes.io/default-container": "x"}},
            "spec.podMetadata.annotations[kubectl.kubernetes.io/default-container]",
        ),
        # Volumes: an operator's name is refused.
        (
            c.MD_KIND,
            {"volumes": [VOL, {"name": "scratch", "emptyDir": {}}]},
            "spec.volumes[1].name",
        ),
        # Mounts: the operator's path, a parent of it, or beneath it.
        (
            c.MD_KIND,
            {"volumes": [VOL], "volume_mounts": [{"name": "data", "mountPath": "/models"}]},
            "spec.runtime.volumeMounts[0].mountPath",
        ),
        (
            c.MD_KIND,
            {"volumes": [VOL], "volume_mounts": [{"name": "data", "mountPath": "/models/x/"}]},
            "spec.runtime.volumeMounts[0].mountPath",
        ),
        (
            c.TJ_KIND,
            {"volumes": [VOL], "volume_mounts": [{"name": "data", "mountPath": "/"}]},
            "spec.volumeMounts[0].mountPath",
        ),
        # Env: a name the operator sets in that container.
        (
            c.MD_KIND,
            {"env": [{"name": "A", "value": "1"}, {"name": "HOME", "value": "/h"}]},
            "spec.runtime.env[1].name",
        ),
        (c.TJ_KIND, {"env": [{"name": "HOME", "value": "/h"}]}, "spec.env[0].name"),
    ],
)
def test_a_collision_is_refused_naming_the_field(kind, controls, field):
    tmpl = with_user_env(template(), controls.get("env") or [])
    before = copy.deepcopy(tmpl)
    with pytest.raises(PodControlsCollision) as err:
        apply_pod_controls(tmpl, PodControls(kind=kind, **controls), container="main", own_pods={})
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")
    if "env" not in controls:
        assert tmpl["metadata"] == before["metadata"]  # nothing half-applied to the labels


@pytest.mark.parametrize(
    "controls",
    [
        {"labels": {"app.kubernetes.io/name": "triton"}},  # the operator's value: no clash
        {"labels": {"app.kubernetes.io/part-of": "fraud"}, "annotations": {"a/b": "c"}},
        {"annotations": {"sim.modelops.io/result": "Succeeded"}},  # a subdomain is the user's
        {"volumes": [VOL], "volume_mounts": [{"name": "data", "mountPath": "/modelsx"}]},
        # /tmp is the sidecar's mount, not the main container's.
        {"volumes": [VOL], "volume_mounts": [{"name": "data", "mountPath": "/tmp/x"}]},
        {"env": [{"name": "OTHER", "value": "1"}]},
    ],
)
def test_what_does_not_collide_is_added(controls):
    tmpl = with_user_env(template(), controls.get("env") or [])
    out = apply_pod_controls(tmpl, PodControls(**controls), container="main", own_pods={})
    meta = out["metadata"]
    assert controls.get("labels", {}).items() <= meta["labels"].items()
    assert meta["labels"]["modelops.io/slot"] == "a"
    main = out["spec"]["containers"][0]
    assert main["volumeMounts"][0] == {"name": "models", "mountPath": "/models"}
    assert main["volumeMounts"][1:] == controls.get("volume_mounts", [])
    assert out["spec"]["volumes"][2:] == controls.get("volumes", [])
    side = out["spec"]["containers"][1]
    assert side["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]


def test_cpu_limit_is_apart_from_the_request_and_spread_keeps_a_given_selector():
    spread = {
        "maxSkew": 2,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"tier": "gpu"}},
    }
    out = apply_pod_controls(
        template(),
        PodControls(cpu_limit="3500m", topology_spread_constraints=[spread]),
        container="main",
        own_pods={"modelops.io/model-deployment": "m"},
    )
    resources = out["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "1"}, "limits": {"cpu": "3500m"}}
    assert out["spec"]["topologySpreadConstraints"] == [spread]


def test_a_colliding_serving_spec_is_refused_with_a_condition_and_nothing_applied():
    beta = beta_md()
    beta["spec"]["volumes"].append({"name": "shm", "emptyDir": {}})  # the operator's /dev/shm
    body = to_v1alpha1(beta)  # through the annotation: the v1beta1 schema never saw it
    children = cluster(md_body())
    out = md_plan(body, children, record(children, md_body()))
    assert not out.applies and not out.deletes
    stalled = next(x for x in out.status["conditions"] if x["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert stalled["message"].startswith("spec.volumes[2].name: shm is a volume of the operator's")


# --- training pods ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
def test_training_pods_carry_the_pod_controls(version):
    body = beta_tj() if version == "v1beta1" else to_v1alpha1(beta_tj())
    tj = read_training_job(body)
    job = render_job(tj, attempt=0)
    template = job["spec"]["template"]
    meta, pod = template["metadata"], template["spec"]
    assert meta["labels"]["team"] == "fraud"
    assert meta["labels"]["modelops.io/training-job"] == "fraud-retrain"
    assert meta["annotations"]["sidecar.istio.io/inject"] == "false"
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert [v["name"] for v in pod["volumes"]][-2:] == ["cache", "certs"]
    assert pod["affinity"] == CONTROLS["scheduling"]["affinity"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"] == {"matchLabels": {"modelops.io/training-job": "fraud-retrain"}}
    trainer = containers(template)[TRAINER_CONTAINER]
    assert trainer["volumeMounts"][-2:] == MOUNTS
    assert trainer["env"][-2:] == ENV  # after the operator's rendezvous variables
    assert trainer["resources"]["limits"]["cpu"] == "4"
    assert trainer["resources"]["requests"]["cpu"] == "2"


def test_a_colliding_training_spec_creates_no_job_and_says_why():
    from modelops.render.training import planner
    from tests.unit.test_render_fixtures import NOW

    beta = beta_tj()
    beta["spec"]["podMetadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    body = to_v1alpha1(beta)
    obs = planner.Observed(body=body, jobs=[], pods=[], service=None, now=NOW)
    out = planner.plan(obs, planner.parse(body), None)
    assert not out.creates
    stalled = next(x for x in out.status["conditions"] if x["type"] == "Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert "spec.podMetadata.labels[app.kubernetes.io/instance]" in stalled["message"]


# --- the apply-time lists stay in step with the renderers --------------------------------

DRIFT = {"enabled": True, "reference": {"uri": "s3://models/fraud/reference.npz"}}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"driftMonitor": DRIFT},
        {"driftMonitor": {**DRIFT, "reference": {"uri": "pvc://claim/ref.npz"}}},
        {"model": {"storageUri": "pvc://claim/m", "version": "1"}},
        {"rollout": {"strategy": "Shadow", "placement": "InPlace", "maxSurge": 1}},
        {
            "model": {"storageUri": "pvc://claim/m", "version": "1"},
            "rollout": {"strategy": "Shadow", "placement": "InPlace"},
        },
    ],
)
def test_the_schema_reserves_every_volume_and_triton_mount_the_operator_renders(spec):
    from modelops.api.v1beta1 import pod

    (dep, *_) = (
        render_slots(md_body(**spec))
        if spec.get("rollout")
        else [
            next(
                ch
                for ch in render_children(md_body(**spec), operator_image="op:1", model_version="3")
                if ch["kind"] == "Deployment"
            )
        ]
    )
    template = dep["spec"]["template"]
    assert {v["name"] for v in template["spec"]["volumes"]} <= set(pod.SERVING_VOLUMES)
    triton = containers(template)[TRITON_CONTAINER]
    assert {m["mountPath"] for m in triton["volumeMounts"]} <= set(pod.SERVING_MOUNT_PATHS)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"command": ["python", "train.py"], "entrypoint": "modelops.trainer.examples.tabular"},
        {"dataset": {"uri": "pvc://data/x"}, "output": {"storageUri": "pvc://out/y"}},
    ],
)
def test_the_schema_reserves_every_volume_and_trainer_mount_the_operator_renders(spec):
    from modelops.api.v1beta1 import pod

    template = render_job(tj_body(**spec), attempt=0)["spec"]["template"]
    assert {v["name"] for v in template["spec"]["volumes"]} <= set(pod.TRAINING_VOLUMES)
    trainer = containers(template)[TRAINER_CONTAINER]
    assert {m["mountPath"] for m in trainer["volumeMounts"]} <= set(pod.TRAINING_MOUNT_PATHS)


# --- the retraining TrainingJob a ModelDeployment starts --------------------------------


def test_the_retraining_job_carries_the_templates_pod_controls():
    from modelops.render.retrain import plan_retrain
    from tests.unit.test_render_fixtures import NOW

    template = to_v1beta1(tj_body())["spec"]
    template.update(copy.deepcopy(CONTROLS))
    template["volumeMounts"] = copy.deepcopy(MOUNTS)
    beta = beta_md(
        driftMonitor={
            "enabled": True,
            "reference": {"uri": "s3://models/fraud/reference.npz"},
            "retrain": {"trainingJobTemplate": template},
        }
    )
    for body in (beta, to_v1alpha1(beta)):
        md = read_model_deployment(body)
        created = plan_retrain(md, drifted=True, previous=None, trainings=[], now=NOW)
        assert created is not None and created["apiVersion"] == "modelops.io/v1alpha1"
        assert "imagePullSecrets" not in created["spec"]  # v1alpha1 has no home for it
        controls = read_training_job(created).pod_controls
        assert controls.image_pull_secrets == [{"name": "registry"}]
        assert (
            controls.volume_mounts == MOUNTS
            and controls.labels == CONTROLS["podMetadata"]["labels"]
        )
        job = render_job(created, attempt=0)
        assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry"}]


def test_a_retraining_template_without_pod_controls_is_written_as_before():
    from modelops.render.retrain import plan_retrain
    from tests.unit.test_render_fixtures import NOW

    body = md_body(
        driftMonitor={
            "enabled": True,
            "reference": {"uri": "s3://models/fraud/reference.npz"},
            "retrain": {"trainingJobTemplate": tj_body()["spec"]},
        }
    )
    created = plan_retrain(
        read_model_deployment(body), drifted=True, previous=None, trainings=[], now=NOW
    )
    assert created is not None and "annotations" not in created["metadata"]


@pytest.mark.parametrize(
    ("edit", "loc"),
    [
        # Through the annotation the v1beta1 schema never sees hostPath; parsing would drop
        # it and leave a bare volume (an emptyDir on the API server): refused instead.
        (
            lambda s: s["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
            ("spec", "volumes", 2),
        ),
        (
            lambda s: s["volumes"].append({"name": "two", "emptyDir": {}, "secret": {}}),
            ("spec", "volumes", 2),
        ),
        (
            lambda s: s["runtime"]["env"].append({"name": "X", "valueFrom": {}}),
            ("spec", "runtime", "env", 2, "valueFrom"),
        ),
    ],
)
def test_intake_refuses_what_the_v1beta1_schema_would_have(edit, loc):
    beta = beta_md()
    edit(beta["spec"])
    with pytest.raises(ValidationError) as err:
        read_model_deployment(to_v1alpha1(beta))
    assert err.value.errors()[0]["loc"] == loc


def _corpus() -> list[dict[str, Any]]:
    from tests.unit.test_api_conversion import _alpha_corpus

    out = []
    variants = [
        md_body(runtime={"env": [{"name": "A", "value": "1"}, {"name": "B", "value": ""}]}),
        md_body(driftMonitor={**DRIFT, "retrain": {"trainingJobTemplate": tj_body()["spec"]}}),
        md_body(rollout={"strategy": "Canary", "maxSurge": 1}),
        tj_body(
            podMetadata={"labels": {"team": "a"}, "annotations": {"x/y": "z"}},
            env=[{"name": "E", "value": "1"}],
        ),
    ]
    for obj in [*_alpha_corpus(), *variants]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("name", "x")
        meta.update(namespace="ml", uid="u-1", generation=1)
        out.append(obj)
    return out


def test_a_v1alpha1_body_without_the_annotation_skips_the_conversion_and_renders_the_same():
    """The fast path (no v1beta1-only field to read) against the conversion, over every
    sample and documented object: the same pod controls and the same pods."""
    corpus = _corpus()
    assert len(corpus) >= 10
    for obj in corpus:
        forced = copy.deepcopy(obj)
        forced["metadata"]["annotations"] = {BETA_FIELDS: "[]"}  # nothing saved: the slow path
        if obj["kind"] == c.MD_KIND:
            fast, slow = read_model_deployment(obj), read_model_deployment(forced)
            assert fast.pod_controls == slow.pod_controls.model_copy(
                update={"training_job_template": None}
            ), obj["metadata"]["name"]
            kw: dict[str, Any] = {"operator_image": "op:1", "model_version": "3"}
            assert render_children(fast, **kw) == render_children(slow, **kw)
        else:
            fast_tj, slow_tj = read_training_job(obj), read_training_job(forced)
            assert fast_tj.pod_controls == slow_tj.pod_controls, obj["metadata"]["name"]
            assert render_job(fast_tj) == render_job(slow_tj)

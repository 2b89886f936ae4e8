"""The Triton and trainer images as operator settings (api/images.py): no CRD
default, the operator's default resolved at render time, former defaults read
as unset, per-object overrides kept."""

from __future__ import annotations

import argparse
import copy
from typing import Any

import pytest
import yaml

from modelops.api import constants as c
from modelops.api.conversion import to_v1alpha1, to_v1beta1
from modelops.api.images import (
    ImageDefaults,
    is_unset,
    resolve_image,
    trainer_image,
    triton_image,
)
from modelops.controllers import cli as run_cli
from modelops.render.children import render_children
from modelops.render.training import render_job
from tests.support.cluster import REPO
from tests.unit.test_render_fixtures import md_body
from tests.unit.test_render_trainingjob_fixtures import tj_body

OLD_TRITON = "nvcr.io/nvidia/tritonserver:25.01-py3"
OLD_TRAINER = "ghcr.io/modelops/modelops-train:0.1.0"
NEW_TRITON = "mirror.example/nvidia/tritonserver:25.08-py3"
NEWER_TRITON = "mirror.example/nvidia/tritonserver:25.09-py3"
NEW_TRAINER = "mirror.example/modelops/modelops-train:0.2.0"
PINNED = "registry.team.example/triton-custom:24.12"


# --- the pure rules ------------------------------------------------------------------


def test_the_known_former_defaults_are_the_values_admission_wrote():
    # These were the CRD schema defaults of v0.1.0, so every object created with it
    # carries them; they must stay in the lists for good.
    assert OLD_TRITON in c.FORMER_DEFAULT_TRITON_IMAGES
    assert OLD_TRAINER in c.FORMER_DEFAULT_TRAINER_IMAGES


@pytest.mark.parametrize("value", [None, "", "   ", OLD_TRITON])
def test_unset_blank_and_former_default_values_resolve_to_the_operator_default(value):
    assert is_unset(value, c.FORMER_DEFAULT_TRITON_IMAGES)
    assert triton_image(value, NEW_TRITON) == NEW_TRITON


@pytest.mark.parametrize(
    "value",
    [
        PINNED,
        # The same release pinned on purpose: by digest, which is not a former default.
        OLD_TRITON + "@sha256:" + "ab" * 32,
        "nvcr.io/nvidia/tritonserver:25.01-py3-sdk",
    ],
)
def test_an_override_is_kept_whatever_the_default(value):
    assert not is_unset(value, c.FORMER_DEFAULT_TRITON_IMAGES)
    assert triton_image(value, NEW_TRITON) == value
    assert triton_image(value, NEWER_TRITON) == value


def test_each_kind_has_its_own_former_defaults():
    # The old trainer default in a Triton field is an (odd) override, and vice versa.
    assert triton_image(OLD_TRAINER, NEW_TRITON) == OLD_TRAINER
    assert trainer_image(OLD_TRITON, NEW_TRAINER) == OLD_TRITON
    assert trainer_image(OLD_TRAINER, NEW_TRAINER) == NEW_TRAINER
    assert resolve_image("x", "d", ()) == "x"


def test_defaults_from_the_environment_and_their_fallbacks():
    assert ImageDefaults.from_environ({}) == ImageDefaults(
        c.DEFAULT_TRITON_IMAGE, c.DEFAULT_TRAINER_IMAGE
    )
    env = {"MODELOPS_TRITON_IMAGE": NEW_TRITON, "MODELOPS_TRAINER_IMAGE": ""}
    assert ImageDefaults.from_environ(env) == ImageDefaults(NEW_TRITON, c.DEFAULT_TRAINER_IMAGE)
    with pytest.raises(ValueError, match="default triton image must not be empty"):
        ImageDefaults(triton=" ")


def test_run_flags_default_to_the_environment(monkeypatch: pytest.MonkeyPatch):
    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        run_cli.add_arguments(parser)
        return parser.parse_args(list(argv))

    monkeypatch.delenv("MODELOPS_TRITON_IMAGE", raising=False)
    monkeypatch.delenv("MODELOPS_TRAINER_IMAGE", raising=False)
    args = parse()
    assert (args.triton_image, args.trainer_image) == (
        c.DEFAULT_TRITON_IMAGE,
        c.DEFAULT_TRAINER_IMAGE,
    )
    monkeypatch.setenv("MODELOPS_TRITON_IMAGE", NEW_TRITON)
    monkeypatch.setenv("MODELOPS_TRAINER_IMAGE", NEW_TRAINER)
    args = parse()
    assert (args.triton_image, args.trainer_image) == (NEW_TRITON, NEW_TRAINER)
    assert parse("--triton-image", PINNED).triton_image == PINNED


def test_the_crds_default_neither_image():
    for name, path in (
        ("modeldeployments", ("spec", "runtime", "image")),
        ("trainingjobs", ("spec", "image")),
    ):
        crd = yaml.safe_load((REPO / "crds" / f"modelops.io_{name}.yaml").read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for key in path:
            schema = schema["properties"][key]
        assert "default" not in schema, name
        assert schema["type"] == "string"


# --- ModelDeployment: a new default rolls every follower, never an override ------------


def triton_of(children: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    [deployment] = [ch for ch in children if ch["kind"] == "Deployment"]
    template = deployment["spec"]["template"]
    [triton] = [x for x in template["spec"]["containers"] if x["name"] == "triton"]
    return triton["image"], template


def render(body: dict[str, Any], default: str) -> tuple[str, dict[str, Any]]:
    return triton_of(
        render_children(body, operator_image="op:1", model_version="3", triton_image=default)
    )


def without_runtime_image(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    del body["spec"]["runtime"]["image"]
    return body


@pytest.mark.parametrize(
    "body",
    [md_body(), without_runtime_image(md_body())],
    ids=["carries the old schema default", "no image"],
)
def test_changing_the_default_changes_the_pod_template_of_followers(body):
    before, template_before = render(body, NEW_TRITON)
    after, template_after = render(body, NEWER_TRITON)
    assert (before, after) == (NEW_TRITON, NEWER_TRITON)
    # Only the image moves: the same rollout as any template change, nothing else.
    template_before["spec"]["containers"][0]["image"] = NEWER_TRITON
    assert template_before == template_after


def test_changing_the_default_leaves_an_override_alone():
    body = md_body(runtime={"image": PINNED, "instancesPerGpu": 1})
    one, template_one = render(body, NEW_TRITON)
    two, template_two = render(body, NEWER_TRITON)
    assert one == two == PINNED
    assert template_one == template_two


# --- TrainingJob: the default at the first attempt, kept by restarts -------------------


def trainer_of(job: dict[str, Any]) -> str:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return container["image"]


@pytest.mark.parametrize("image", [None, OLD_TRAINER])
def test_a_trainingjob_without_an_image_gets_the_operator_default(image):
    body = tj_body(image=image) if image else tj_body()
    if image is None:
        del body["spec"]["image"]
    assert trainer_of(render_job(body, image=NEW_TRAINER)) == NEW_TRAINER


def test_a_restart_keeps_the_image_of_the_earlier_attempt():
    body = tj_body()
    del body["spec"]["image"]
    first = render_job(body, attempt=0, image=NEW_TRAINER)
    # The operator was upgraded (new default) between attempt 0 and its restart.
    second = render_job(body, attempt=1, image="mirror.example/train:0.3.0", earlier_jobs=[first])
    assert trainer_of(second) == NEW_TRAINER
    # A later attempt follows the latest earlier one, never a later one's.
    third = render_job(
        body, attempt=2, image="x", earlier_jobs=[second, render_job(body, attempt=5, image="y")]
    )
    assert trainer_of(third) == NEW_TRAINER
    # Without an earlier Job in the cluster the current default applies.
    assert trainer_of(render_job(body, attempt=1, image="mirror.example/train:0.3.0")) == (
        "mirror.example/train:0.3.0"
    )


def test_an_explicit_trainer_image_beats_default_and_earlier_attempts():
    body = tj_body(image=PINNED)
    earlier = render_job(tj_body(), attempt=0, image=NEW_TRAINER)
    assert trainer_of(render_job(body, attempt=1, image=NEW_TRAINER, earlier_jobs=[earlier])) == (
        PINNED
    )


# --- v1beta1 keeps every image it holds (issue #20) ------------------------------------


def test_a_v1beta1_runtime_image_equal_to_a_former_default_is_served():
    """v1alpha1 reads its former schema default as unset; v1beta1 never had that default,
    so the same value there was written by someone and the pods get it."""
    alpha = md_body(runtime={"image": OLD_TRITON, "instancesPerGpu": 1})
    assert render(alpha, NEW_TRITON)[0] == NEW_TRITON
    beta = to_v1beta1(without_runtime_image(alpha))
    beta["spec"]["runtime"]["image"] = OLD_TRITON
    assert render(beta, NEW_TRITON)[0] == OLD_TRITON
    # The same object read through v1alpha1 (the value in the conversion's annotation).
    assert render(to_v1alpha1(beta), NEW_TRITON)[0] == OLD_TRITON
    # And without an image, v1beta1 follows the operator's default like v1alpha1.
    del beta["spec"]["runtime"]["image"]
    assert render(beta, NEW_TRITON)[0] == NEW_TRITON


def test_a_v1beta1_trainer_image_equal_to_a_former_default_is_used():
    alpha = tj_body(image=OLD_TRAINER)
    assert trainer_of(render_job(alpha, image=NEW_TRAINER)) == NEW_TRAINER
    beta = to_v1beta1(alpha)
    beta["spec"]["image"] = OLD_TRAINER
    assert trainer_of(render_job(beta, image=NEW_TRAINER)) == OLD_TRAINER
    assert trainer_of(render_job(to_v1alpha1(beta), image=NEW_TRAINER)) == OLD_TRAINER

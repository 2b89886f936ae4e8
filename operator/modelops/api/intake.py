"""Where the operator reads a ModelDeployment or TrainingJob body into what the planners read.

The planners and renderers read the v1alpha1 models. v1beta1 adds pod
controls v1alpha1 cannot hold; read as v1alpha1, an object carries them in the
annotation api/conversion.py writes (BETA_FIELDS). So every body, whichever
version it was read in, is converted to v1beta1 with api/conversion.py (which
restores the annotation's fields) and the pod controls are taken from that
form; the v1alpha1 model is parsed from the v1alpha1 form as before. The
result is the v1alpha1 model with `pod_controls` attached.

Refused here (pydantic ValidationError, with the field's location), because
nothing else would: a volume without exactly one allowed source (hostPath
included), a volumeMount naming no volume of spec.volumes, a valueFrom without
exactly one source. The CRD's schema refuses them at apply time for v1beta1
writes, but fields that travel in the annotation of a v1alpha1 write are not
validated by the v1beta1 schema.

Pure: conversion and parsing, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from . import constants as c
from .base import plain
from .conversion import BETA_FIELDS, V1ALPHA1, V1BETA1, to_v1alpha1, to_v1beta1, version_of
from .modeldeployment import ModelDeployment
from .pod_controls import PodControls
from .trainingjob import TrainingJob
from .v1beta1 import modeldeployment as beta_md
from .v1beta1 import pod as beta_pod
from .v1beta1 import trainingjob as beta_tj


def _forms(body: Mapping[str, Any], kind: str) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """(v1alpha1 form, v1beta1 form). A body without a modelops apiVersion (tests,
    templates) is read as v1alpha1, as it always was. The v1beta1 form is None for a
    v1alpha1 body without the annotation: it has no v1beta1-only field, so its pod
    controls are its own v1alpha1 fields, and the conversion (about ten times the cost
    of parsing; every object is parsed at the operator's start) is skipped."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if version_of(body) != V1BETA1 and BETA_FIELDS not in annotations:
        return body, None  # parsed as it is: from_body copies what it keeps
    data = {**plain(body), "kind": kind}
    if version_of(data) == V1BETA1:
        return to_v1alpha1(data), data
    alpha = {**data, "apiVersion": f"{c.GROUP}/{V1ALPHA1}"}
    return alpha, to_v1beta1(alpha)


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [item.to_dict() for item in items or []]


def _error(kind: str, message: str, loc: tuple[str | int, ...], value: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError(kind, message),
        loc=loc,
        input=value,
    )


def _check(controls: PodControls, title: str) -> None:
    """The v1beta1 schema's rules on the pod controls that parsing alone does not keep
    (fields from a v1alpha1 write's annotation met no v1beta1 schema): each volume has
    exactly one allowed source (an unknown one, e.g. hostPath, is dropped by parsing and
    would leave a bare volume the API server turns into an emptyDir), each mount names
    one of the user's volumes, each valueFrom names exactly one source."""
    errors = []
    for i, volume in enumerate(controls.volumes):
        if sum(1 for s in beta_pod.VOLUME_SOURCES if s in volume) != 1:
            text = "a volume needs exactly one source: " + ", ".join(beta_pod.VOLUME_SOURCES)
            errors.append(_error("volume_source", text, ("spec", "volumes", i), volume["name"]))
    names = {v["name"] for v in controls.volumes}
    mounts = tuple(controls.mounts_path.split(".")[1:])  # without "spec"
    for i, mount in enumerate(controls.volume_mounts):
        if mount["name"] not in names:
            text = f"{mount['name']} names no volume of spec.volumes"
            errors.append(_error("unknown_volume", text, ("spec", *mounts, i, "name"), mount))
    env = tuple(controls.env_path.split(".")[1:])
    for i, var in enumerate(controls.env or []):
        source = var.get("valueFrom")
        if source is not None and len(source) != 1:
            text = "valueFrom needs exactly one of secretKeyRef and configMapKeyRef"
            errors.append(_error("value_from", text, ("spec", *env, i, "valueFrom"), var))
    if errors:
        raise ValidationError.from_exception_data(title, errors)


def _scheduling(scheduling: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    if scheduling is None:
        return None, []
    affinity = scheduling.affinity.to_dict() if scheduling.affinity else None
    return affinity or None, _dicts(scheduling.topology_spread_constraints)


def _metadata(meta: Any) -> tuple[dict[str, str], dict[str, str]]:
    if meta is None:
        return {}, {}
    return dict(meta.labels or {}), dict(meta.annotations or {})


def read_model_deployment(body: Mapping[str, Any]) -> ModelDeployment:
    """The v1alpha1 model with its pod controls; raises pydantic.ValidationError."""
    alpha, beta = _forms(body, c.MD_KIND)
    md = ModelDeployment.from_body(alpha)
    if beta is None:
        # The renderers' v1alpha1 env, as they rendered it before the intake.
        own = PodControls(kind=c.MD_KIND, env=_dicts(md.spec.runtime.env))
        return md.model_copy(update={"pod_controls": own})
    spec = beta_md.ModelDeployment.from_body(beta).spec
    labels, annotations = _metadata(spec.pod_metadata)
    affinity, spread = _scheduling(spec.scheduling)
    controls = PodControls(
        kind=c.MD_KIND,
        labels=labels,
        annotations=annotations,
        image_pull_secrets=_dicts(spec.image_pull_secrets),
        volumes=_dicts(spec.volumes),
        volume_mounts=_dicts(spec.runtime.volume_mounts),
        env=_dicts(spec.runtime.env),
        affinity=affinity,
        topology_spread_constraints=spread,
        cpu_limit=None if spec.resources.cpu_limit is None else str(spec.resources.cpu_limit),
        image=spec.runtime.image,
    )
    _check(controls, c.MD_KIND)
    retrain = spec.drift_monitor.retrain if spec.drift_monitor else None
    if retrain is not None:
        template = plain(retrain.training_job_template)
        controls = controls.model_copy(update={"training_job_template": template})
    # v1beta1 split surgeTimeoutSeconds in two; the v1alpha1 model keeps surgeTimeout's
    # half, and schedulingTimeout's travels beside it.
    scheduling = spec.rollout.scheduling_timeout_seconds
    return md.model_copy(
        update={"pod_controls": controls, "scheduling_timeout_override": scheduling}
    )


def read_training_job(body: Mapping[str, Any]) -> TrainingJob:
    """The v1alpha1 model with its pod controls; raises pydantic.ValidationError."""
    alpha, beta = _forms(body, c.TJ_KIND)
    tj = TrainingJob.from_body(alpha)
    if beta is None:
        labels, annotations = _metadata(tj.spec.pod_metadata)
        own = PodControls(
            kind=c.TJ_KIND, labels=labels, annotations=annotations, env=_dicts(tj.spec.env)
        )
        return tj.model_copy(update={"pod_controls": own})
    spec = beta_tj.TrainingJob.from_body(beta).spec
    labels, annotations = _metadata(spec.pod_metadata)
    affinity, spread = _scheduling(spec.scheduling)
    cpu_limit = spec.resources.cpu_limit
    controls = PodControls(
        kind=c.TJ_KIND,
        labels=labels,
        annotations=annotations,
        image_pull_secrets=_dicts(spec.image_pull_secrets),
        volumes=_dicts(spec.volumes),
        volume_mounts=_dicts(spec.volume_mounts),
        env=_dicts(spec.env),
        affinity=affinity,
        topology_spread_constraints=spread,
        cpu_limit=None if cpu_limit is None else str(cpu_limit),
        image=spec.image,
    )
    _check(controls, c.TJ_KIND)
    return tj.model_copy(update={"pod_controls": controls})

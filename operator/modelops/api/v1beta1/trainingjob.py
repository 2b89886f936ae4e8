"""TrainingJob (modelops.io/v1beta1): v1alpha1 with one convention and the pod controls.

What changes from v1alpha1 (api/conversion.py converts both ways, losslessly):

- durations are Go duration strings: activeDeadlineSeconds -> activeDeadline,
  ttlSecondsAfterFinished -> ttlAfterFinished (at least 5m, refused below);
- resources.cpuLimit: a CPU limit apart from the request;
- pod controls: imagePullSecrets, volumes, volumeMounts, env from Secrets or
  ConfigMaps (env[].valueFrom), scheduling.affinity,
  scheduling.topologySpreadConstraints (podMetadata and
  scheduling.priorityClassName were already there);
- image is kept whatever its value (no former-default rule).
The status is v1alpha1's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from .. import constants as c
from .. import durations
from .. import trainingjob as a
from ..base import ParsedObject, Quantity, cel, map_list, plain, sub_object, validations
from . import pod
from .derive import derive
from .modeldeployment import Scheduling, _duration

MIN_JOB_TTL = durations.format_seconds(a.MIN_JOB_TTL_SECONDS)  # "5m"

_CPU_LIMIT_RULE = cel(
    "!has(self.cpuLimit) || quantity(string(self.cpuLimit))"
    ".compareTo(quantity(string(self.cpu))) >= 0",
    "cpuLimit must not be below cpu (the request)",
    field_path=".cpuLimit",
)


def _trainer_resources_schema(schema: dict[str, Any]) -> None:
    inherited = a.TrainerResources.model_config["json_schema_extra"]
    inherited(schema)  # type: ignore[operator]
    schema["properties"]["cpu"]["description"] = (
        'CPU request of the trainer container, e.g. 16 or "500m"; also its limit unless '
        "cpuLimit is set. Data-loader workers run on it."
    )
    schema.setdefault("x-kubernetes-validations", []).append(_CPU_LIMIT_RULE)


class TrainerResources(a.TrainerResources):
    """Compute resources of each node's pod (the trainer container)."""

    model_config = ConfigDict(json_schema_extra=_trainer_resources_schema)

    cpu_limit: Quantity | None = Field(
        default=None,
        description="CPU limit of the trainer container when it differs from the request "
        "(the pod is then Burstable). Unset: equal to cpu.",
    )


_ENV_FIELD = a.TrainingJobSpec.model_fields["env"]

_TrainingJobSpec = derive(
    a.TrainingJobSpec,
    "TrainingJobSpec",
    replace={
        "image": {
            "image": (
                str | None,
                Field(
                    default=None,
                    min_length=1,
                    max_length=512,
                    description="Trainer image; it runs `modelops train`, so it must contain "
                    "the modelops package with PyTorch (docs/training.md). Kept as written, "
                    "whatever its value. Unset: the operator's default trainer image, taken "
                    "when the first attempt starts and kept by its restarts.",
                ),
            )
        },
        "resources": {
            "resources": (
                TrainerResources,
                sub_object(TrainerResources, "Compute resources of each node's pod."),
            )
        },
        "active_deadline_seconds": {
            "active_deadline": (
                str | None,
                _duration(
                    None,
                    "Longest time the TrainingJob may run, all attempts together, counted from "
                    "status.startTime, as a duration (e.g. 12h); then it fails with reason "
                    "DeadlineExceeded and is not restarted. Whole seconds, at least 1s.",
                    json_schema_extra=validations(
                        cel("duration(self) >= duration('1s')", "activeDeadline is at least 1s"),
                    ),
                ),
            )
        },
        "ttl_seconds_after_finished": {
            "ttl_after_finished": (
                str | None,
                _duration(
                    None,
                    "How long after an attempt's Job finishes Kubernetes deletes it and its "
                    f"pods (logs included), as a duration; at least {MIN_JOB_TTL} (a smaller "
                    "value is refused), so that the operator always sees how an attempt "
                    "ended. Unset keeps the Jobs until the TrainingJob is deleted.",
                    json_schema_extra=validations(
                        cel(
                            f"duration(self) >= duration('{MIN_JOB_TTL}')",
                            f"ttlAfterFinished is at least {MIN_JOB_TTL}",
                        ),
                    ),
                ),
            )
        },
        "env": {
            "env": (
                list[pod.EnvVar] | None,
                Field(
                    default=None,
                    max_length=64,
                    json_schema_extra=map_list(
                        "name",
                        **validations(*_ENV_FIELD.json_schema_extra["x-kubernetes-validations"]),  # type: ignore[index]
                    ),
                    description=(_ENV_FIELD.description or "")
                    + " Values are literal or read from a Secret or ConfigMap key.",
                ),
            )
        },
        "scheduling": {
            "scheduling": (
                Scheduling | None,
                Field(
                    default=None,
                    description="Node selection, affinity, topology spread, tolerations and "
                    "priority.",
                ),
            )
        },
        "pod_metadata": {
            "pod_metadata": (
                pod.PodMetadata | None,
                Field(
                    default=None,
                    description="Extra labels and annotations for the worker pods. A key "
                    "the operator sets with another value is refused.",
                ),
            )
        },
    },
    add={
        "image_pull_secrets": (list[pod.LocalObjectReference] | None, pod.IMAGE_PULL_SECRETS_FIELD),
        "volumes": (list[pod.Volume] | None, pod.volumes_field("worker", pod.TRAINING_VOLUMES)),
        "volume_mounts": (
            list[pod.VolumeMount] | None,
            pod.volume_mounts_field("trainer", pod.TRAINING_MOUNT_PATHS),
        ),
    },
)


class TrainingJobSpec(_TrainingJobSpec):  # type: ignore[valid-type,misc]
    __doc__ = a.TrainingJobSpec.__doc__
    model_config = ConfigDict(
        json_schema_extra=pod.with_rules(
            _TrainingJobSpec.model_config.get("json_schema_extra"),
            pod.mounts_name_volumes("self.volumeMounts", ".volumeMounts"),
        )
    )

    @property
    def active_deadline_seconds(self) -> int | None:
        return (
            None if self.active_deadline is None else durations.whole_seconds(self.active_deadline)
        )

    @property
    def ttl_seconds_after_finished(self) -> int | None:
        if self.ttl_after_finished is None:
            return None
        return durations.whole_seconds(self.ttl_after_finished)


TrainingJobStatus = a.TrainingJobStatus


class TrainingJob(ParsedObject):
    """A parsed v1beta1 TrainingJob; `from_body` converts a v1alpha1 body first."""

    spec: TrainingJobSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TrainingJob:
        from ..conversion import V1BETA1, to_v1beta1, version_of

        data = plain(body)
        if version_of(data) != V1BETA1:
            data = to_v1beta1({**data, "apiVersion": f"{c.GROUP}/v1alpha1", "kind": c.TJ_KIND})
        return super().from_body(data)


ROOT_VALIDATIONS = a.ROOT_VALIDATIONS

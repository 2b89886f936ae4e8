"""The pod controls v1beta1 adds to both kinds (serving and training pods alike).

Names, shapes and enums are core/v1's, so a user copies them from a Pod spec
unchanged. Where core/v1's type is large (affinity terms, volume sources,
label selectors) the nested object is kept as given (preserve-unknown-fields)
and the API server validates it when the operator creates the pod; what this
schema fixes is the outer shape and the rules an operator must enforce itself:
only volume sources a namespace tenant may use (never hostPath), and no env or
mount that collides with the operator's own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from .. import constants as c
from ..base import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    ENV_VAR_NAME,
    PRESERVE_UNKNOWN,
    QUALIFIED_NAME,
    ApiModel,
    cel,
    map_list,
    validations,
)


def _free(description: str) -> Any:
    return Field(default=None, json_schema_extra=PRESERVE_UNKNOWN, description=description)


class LocalObjectReference(ApiModel):
    """An object in the same namespace, by name."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, description="Its name."
    )


class KeySelector(ApiModel):
    """One key of a Secret or ConfigMap in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, description="The object's name."
    )
    key: str = Field(min_length=1, max_length=253, description="The key.")
    optional: bool | None = Field(
        default=None, description="Start the pod even when the object or key is missing."
    )


class EnvVarSource(ApiModel):
    """Where a variable's value comes from."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "[has(self.secretKeyRef), has(self.configMapKeyRef)].exists_one(x, x)",
                "valueFrom needs exactly one of secretKeyRef and configMapKeyRef",
            ),
        )
    )

    secret_key_ref: KeySelector | None = Field(default=None, description="A Secret's key.")
    config_map_key_ref: KeySelector | None = Field(default=None, description="A ConfigMap's key.")


class EnvVar(ApiModel):
    """An environment variable: a literal value, or one read from a Secret or ConfigMap."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.valueFrom) || !has(self.value) || self.value == ''",
                "set value or valueFrom, not both",
                field_path=".valueFrom",
            ),
        )
    )

    name: str = Field(
        min_length=1, max_length=256, pattern=ENV_VAR_NAME, description="Name of the variable."
    )
    value: str | None = Field(
        default=None,
        max_length=32768,
        description="Literal value. Put secrets in a Secret and use valueFrom.",
    )
    value_from: EnvVarSource | None = Field(
        default=None, description="Read the value from a Secret or ConfigMap key."
    )


# The volume sources a tenant may mount: namespaced data, scratch and claims.
# hostPath and the node-level sources are left out on purpose: whoever may
# create a ModelDeployment must not get the node's file system through it.
VOLUME_SOURCES = (
    "configMap",
    "secret",
    "emptyDir",
    "persistentVolumeClaim",
    "projected",
    "downwardAPI",
    "csi",
    "ephemeral",
)


class Volume(ApiModel):
    """A pod volume (core/v1 Volume), limited to the sources a namespace tenant may use."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "[" + ", ".join(f"has(self.{s})" for s in VOLUME_SOURCES) + "].exists_one(x, x)",
                "a volume needs exactly one source: " + ", ".join(VOLUME_SOURCES),
            ),
        )
    )

    name: str = Field(
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Name of the volume, referred to by volumeMounts. Names starting with "
        f"{c.GROUP.split('.')[0]}- are the operator's.",
    )
    config_map: dict[str, Any] | None = _free("core/v1 ConfigMapVolumeSource.")
    secret: dict[str, Any] | None = _free("core/v1 SecretVolumeSource.")
    empty_dir: dict[str, Any] | None = _free("core/v1 EmptyDirVolumeSource.")
    persistent_volume_claim: dict[str, Any] | None = _free(
        "core/v1 PersistentVolumeClaimVolumeSource."
    )
    projected: dict[str, Any] | None = _free("core/v1 ProjectedVolumeSource.")
    downward_api: dict[str, Any] | None = Field(
        default=None,
        alias="downwardAPI",
        json_schema_extra=PRESERVE_UNKNOWN,
        description="core/v1 DownwardAPIVolumeSource.",
    )
    csi: dict[str, Any] | None = _free("core/v1 CSIVolumeSource (inline CSI volume).")
    ephemeral: dict[str, Any] | None = _free("core/v1 EphemeralVolumeSource.")


RESERVED_VOLUME_PREFIX = "modelops-"

# What the operator puts in its pods, refused to users at apply time (the
# renderers check the rendered template again: render/pod_controls.py; a unit test
# keeps these lists a superset of what they render).
SERVING_VOLUMES = ("models", "shm", "scratch", "model-source", "drift-reference", "traffic")
SERVING_MOUNT_PATHS = ("/models", "/dev/shm", "/tmp", "/mnt/model")
TRAINING_VOLUMES = ("checkpoints", "dataset", "output", "model-output", "shm", "scratch")
TRAINING_MOUNT_PATHS = (
    "/checkpoints",
    "/mnt/dataset",
    "/mnt/output",
    c.SCRIPT_OUTPUT_DIR,
    "/dev/shm",
    "/tmp",
)
# Pod label / annotation keys the operator or the workload controllers own.
RESERVED_KEY_PREFIXES = (f"{c.GROUP}/", "batch.kubernetes.io/")
RESERVED_KEYS = ("pod-template-hash", "job-name", "controller-uid")


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def volumes_field(what: str, reserved: tuple[str, ...]) -> Any:
    return Field(
        default=None,
        max_length=32,
        json_schema_extra=map_list(
            "name",
            **validations(
                cel(
                    f"self.all(v, !v.name.startsWith('{RESERVED_VOLUME_PREFIX}') "
                    f"&& !(v.name in {_cel_list(reserved)}))",
                    f"volume names starting with {RESERVED_VOLUME_PREFIX} and "
                    + ", ".join(reserved)
                    + f" are the operator's in the {what} pods",
                ),
            ),
        ),
        description=f"Extra volumes of the {what} pods (core/v1 Volume; sources: "
        + ", ".join(VOLUME_SOURCES)
        + "). Mount them with volumeMounts. Names starting with "
        f"{RESERVED_VOLUME_PREFIX} and " + ", ".join(reserved) + " are the operator's.",
    )


class VolumeMount(ApiModel):
    """Where a volume of spec.volumes is mounted (core/v1 VolumeMount)."""

    name: str = Field(max_length=63, pattern=DNS1123_LABEL, description="The volume's name.")
    mount_path: str = Field(
        min_length=2,
        max_length=1024,
        pattern=r"^/[^:]*$",
        description="Absolute path inside the container; not a colon.",
    )
    read_only: bool | None = Field(default=None, description="Mount read-only.")
    sub_path: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^[^/].*$",
        json_schema_extra=validations(
            cel("!self.contains('..')", "subPath may not contain '..'"),
        ),
        description="Path inside the volume to mount instead of its root (relative).",
    )


def volume_mounts_field(container: str, reserved: tuple[str, ...]) -> Any:
    # A path equal to one of the operator's, beneath one, or above one (it would hide it).
    overlap = (
        f"{_cel_list(reserved)}.exists(p, m.mountPath == p || m.mountPath.startsWith(p + '/') "
        "|| p.startsWith(m.mountPath.endsWith('/') ? m.mountPath : m.mountPath + '/'))"
    )
    return Field(
        default=None,
        max_length=32,
        json_schema_extra=map_list(
            "mountPath",
            **validations(
                cel(
                    f"self.all(m, !{overlap})",
                    f"mountPath may not be, contain or lie under the operator's mounts in the "
                    f"{container} container: " + ", ".join(reserved),
                ),
            ),
        ),
        description=f"Mounts of spec.volumes into the {container} container (only there: the "
        "operator's other containers get none). Not at, above or under the operator's own "
        "mounts: " + ", ".join(reserved) + ".",
    )


def mounts_name_volumes(mounts: str, field_path: str) -> dict[str, str]:
    """The spec-level rule: each mount names one of spec.volumes (the operator's volumes
    are not the user's to mount)."""
    return cel(
        f"!has({mounts}) || {mounts}.all(m, has(self.volumes) "
        "&& self.volumes.exists(v, v.name == m.name))",
        "each volumeMount must name a volume of spec.volumes",
        field_path=field_path,
    )


def with_rules(inherited: Any, *rules: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` of a subclass: its base's (a dict or a function), plus rules."""

    def extra(schema: dict[str, Any]) -> None:
        if callable(inherited):
            inherited(schema)
        elif inherited:
            schema.update(copy.deepcopy(inherited))
        schema.setdefault("x-kubernetes-validations", []).extend(rules)

    return extra


class Affinity(ApiModel):
    """core/v1 Affinity; the terms are passed to the pods as given."""

    node_affinity: dict[str, Any] | None = _free(
        "core/v1 NodeAffinity: combined with the node selector the GPU product implies."
    )
    pod_affinity: dict[str, Any] | None = _free("core/v1 PodAffinity.")
    pod_anti_affinity: dict[str, Any] | None = _free(
        "core/v1 PodAntiAffinity, e.g. to spread replicas over nodes."
    )


class TopologySpreadConstraint(ApiModel):
    """core/v1 TopologySpreadConstraint: how the pods spread over zones or nodes."""

    max_skew: int = Field(ge=1, le=1000, description="Largest allowed difference of pod counts.")
    topology_key: str = Field(
        max_length=317,
        pattern=QUALIFIED_NAME,
        description="Node label of the domain, e.g. topology.kubernetes.io/zone.",
    )
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description="DoNotSchedule (a hard rule) or ScheduleAnyway (a preference)."
    )
    label_selector: dict[str, Any] | None = _free(
        "core/v1 LabelSelector of the pods counted. Unset: this object's own pods."
    )
    min_domains: int | None = Field(
        default=None, ge=1, le=1000, description="Least number of eligible domains."
    )
    match_label_keys: (
        list[Annotated[str, Field(max_length=317, description="A pod label key.")]] | None
    ) = Field(
        default=None,
        max_length=16,
        description="Pod label keys whose values select the pods counted with this one "
        "(e.g. pod-template-hash to count one rollout's pods only).",
    )
    node_affinity_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None, description="Whether nodeAffinity / nodeSelector limit the domains."
    )
    node_taints_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None, description="Whether taints limit the domains."
    )


def _no_reserved_keys(field: str) -> dict[str, str]:
    prefixes = " || ".join(f"k.startsWith('{p}')" for p in RESERVED_KEY_PREFIXES)
    return cel(
        f"!has(self.{field}) || self.{field}.all(k, !({prefixes} || k in "
        f"{_cel_list(RESERVED_KEYS)}))",
        f"{field} keys starting with "
        + ", ".join(RESERVED_KEY_PREFIXES)
        + " and "
        + ", ".join(RESERVED_KEYS)
        + " are the operator's or its controllers'",
        field_path=f".{field}",
    )


class PodMetadata(ApiModel):
    """Labels and annotations copied onto every pod. A key the operator sets on the pods
    with another value is refused (condition Stalled, reason InvalidSpec, naming it)."""

    model_config = ConfigDict(
        json_schema_extra=validations(_no_reserved_keys("labels"), _no_reserved_keys("annotations"))
    )

    labels: dict[str, Annotated[str, Field(max_length=63, description="A label value.")]] | None = (
        Field(default=None, max_length=32, description="Labels added to the pods.")
    )
    annotations: (
        dict[str, Annotated[str, Field(max_length=4096, description="An annotation value.")]] | None
    ) = Field(default=None, max_length=32, description="Annotations added to the pods.")


IMAGE_PULL_SECRETS_FIELD: Any = Field(
    default=None,
    max_length=16,
    json_schema_extra=map_list("name"),
    description="Secrets (kubernetes.io/dockerconfigjson) used to pull the pods' images from "
    "private registries, added to the ServiceAccount's.",
)

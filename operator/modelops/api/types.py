"""Kubernetes-shaped types shared by the modelops kinds.

They mirror the core/v1 and meta/v1 types of the same name (field names,
enums, limits) so that users recognise them and the renderers can copy them
into child objects unchanged. Size limits exist for the apiserver's CEL cost
estimator as much as for sanity.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .base import (
    DNS1123_SUBDOMAIN,
    ENV_VAR_NAME,
    LABEL_VALUE,
    QUALIFIED_NAME_OR_EMPTY,
    ApiModel,
    cel,
    validations,
)


class SecretReference(ApiModel):
    """A Secret in the same namespace as the object that refers to it."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Name of the Secret.",
    )


class EnvVar(ApiModel):
    """An environment variable with a literal value."""

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=ENV_VAR_NAME,
        description="Name of the variable.",
    )
    value: str = Field(
        default="",
        max_length=32768,
        description="Value of the variable. Put secrets in a Secret, not here.",
    )


class Toleration(ApiModel):
    """A core/v1 Toleration: lets the pods schedule onto nodes with a matching taint."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.operator) || self.operator != 'Exists' "
                "|| !has(self.value) || self.value == ''",
                "value must be empty when operator is Exists",
                field_path=".value",
            ),
            cel(
                "has(self.key) && self.key != '' "
                "|| has(self.operator) && self.operator == 'Exists'",
                "operator must be Exists when key is empty (to tolerate every taint)",
                field_path=".operator",
            ),
            cel(
                "!has(self.tolerationSeconds) || has(self.effect) && self.effect == 'NoExecute'",
                "tolerationSeconds needs effect NoExecute",
                field_path=".tolerationSeconds",
            ),
        )
    )

    key: str | None = Field(
        default=None,
        max_length=317,
        pattern=QUALIFIED_NAME_OR_EMPTY,
        description="Taint key the toleration applies to; empty matches every key "
        "(then operator must be Exists).",
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None,
        description="Relation between key and value: Equal (the Kubernetes default when "
        "unset) or Exists (any value).",
    )
    value: str | None = Field(
        default=None,
        max_length=63,
        pattern=LABEL_VALUE,
        description="Taint value the toleration matches; empty with operator Exists.",
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None,
        description="Taint effect to match; empty matches every effect.",
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        description="With effect NoExecute: how long the pod stays bound after the taint "
        "appears. Unset means forever.",
    )


class Condition(ApiModel):
    """A meta/v1 Condition: one aspect of the object's state, as kstatus reads it."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of the condition in CamelCase, e.g. Ready, Stalled, Drifted.",
    )
    status: Literal["True", "False", "Unknown"] = Field(
        description="Status of the condition: True, False or Unknown.",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the object this condition was computed for.",
    )
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the status last changed (RFC 3339). Unchanged while the status "
        "stays the same, even when reason or message change.",
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the status.",
    )
    message: str = Field(
        max_length=32768,
        description="Human-readable explanation, e.g. the scheduler's message.",
    )


# GPU product names are node-label values (set by GPU feature discovery).
GPU_PRODUCT_PATTERN = LABEL_VALUE

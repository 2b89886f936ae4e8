"""Which image a rendered container runs: the object's own choice, else the
operator's default.

The Triton image (ModelDeployment `spec.runtime.image`) and the trainer image
(TrainingJob `spec.image`) have no CRD default. Unset means "the operator's
default", a setting of the operator process (`ImageDefaults`: flags of
`modelops run`, their environment variables, the Helm values
`defaultImages.*`), resolved each time a child is rendered. Changing the
setting therefore re-renders every object that names no image of its own, and
leaves the others alone.

Objects created while the CRD still had schema defaults carry them, written
by admission and not by a person: a value equal to one of the former defaults
(`FORMER_DEFAULT_*_IMAGES` in constants.py) counts as unset, so those objects
follow the operator's setting instead of being pinned to an old release.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from modelops.api import constants as c

TRITON_IMAGE_ENV = "MODELOPS_TRITON_IMAGE"
TRAINER_IMAGE_ENV = "MODELOPS_TRAINER_IMAGE"


@dataclass(frozen=True)
class ImageDefaults:
    """The operator's default images."""

    triton: str = c.DEFAULT_TRITON_IMAGE
    trainer: str = c.DEFAULT_TRAINER_IMAGE

    def __post_init__(self) -> None:
        for name in ("triton", "trainer"):
            if not getattr(self, name).strip():
                raise ValueError(f"the default {name} image must not be empty")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> ImageDefaults:
        """MODELOPS_TRITON_IMAGE / MODELOPS_TRAINER_IMAGE; an empty or missing
        variable keeps the built-in default."""
        return cls(
            triton=environ.get(TRITON_IMAGE_ENV) or c.DEFAULT_TRITON_IMAGE,
            trainer=environ.get(TRAINER_IMAGE_ENV) or c.DEFAULT_TRAINER_IMAGE,
        )


def is_unset(requested: str | None, former_defaults: Collection[str]) -> bool:
    """True for no value, a blank one, or a value that was once the schema default."""
    return requested is None or not requested.strip() or requested in former_defaults


def resolve_image(requested: str | None, default: str, former_defaults: Collection[str]) -> str:
    """`requested`, unless it counts as unset (`is_unset`): then `default`."""
    if requested is None or is_unset(requested, former_defaults):
        return default
    return requested


def triton_image(requested: str | None, default: str, *, version: str = c.VERSION) -> str:
    """A ModelDeployment's spec.runtime.image against the operator's default.

    v1beta1 keeps every value, the current default included (issue #20): its
    schema never had a default, so a value there was written by someone. In
    v1alpha1 a former schema default reads as unset (conversion to v1beta1
    drops it for the same reason, api/conversion.py).
    """
    former = () if version == "v1beta1" else c.FORMER_DEFAULT_TRITON_IMAGES
    return resolve_image(requested, default, former)


def trainer_image(requested: str | None, default: str) -> str:
    """A TrainingJob's spec.image against the operator's default."""
    return resolve_image(requested, default, c.FORMER_DEFAULT_TRAINER_IMAGES)

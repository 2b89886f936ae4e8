"""modelops.api: the custom resources' schema, as pydantic models.

Pure: no cluster I/O, no kopf (enforced by import-linter). The CRDs in crds/
and docs/api.md are generated from these models (`modelops crds`).
"""

from .constants import API_VERSION, GROUP, MD_KIND, MD_PLURAL, TJ_KIND, TJ_PLURAL, VERSION
from .crd import crds
from .modeldeployment import ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus
from .trainingjob import TrainingJob, TrainingJobSpec, TrainingJobStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "MD_KIND",
    "MD_PLURAL",
    "TJ_KIND",
    "TJ_PLURAL",
    "VERSION",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "crds",
]

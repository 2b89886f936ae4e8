"""A TrainingJob's GPUs through DRA: its ResourceClaimTemplate. Pure.

Every node's pod gets its own claim from the template `<name>`, as the
Deployment's pods of a ModelDeployment do (render/dra.py). The CRD allows a
TrainingJob one alternative, with a product: the scheduler allocates each
claim on its own and a matchAttribute constraint cannot span claims, so a
prioritized list could put some nodes on H100s and others on pairs of L4s,
while procsPerNode and NCCL expect the same GPUs everywhere. The product is
therefore decided once per job, in its spec.

Kueue-compatible suspension is unchanged: a suspended Job has no pods, so no
claims are made (and no devices held) until Kueue admits it.
"""

from __future__ import annotations

from typing import Any

from modelops.api.trainingjob import TrainingJob

from ..dra import claim_template
from .names import child_metadata, labels


def render_claim_template(tj: TrainingJob) -> dict[str, Any] | None:
    """The TrainingJob's ResourceClaimTemplate `<name>`, or None without DRA."""
    return claim_template(tj.spec.resources.gpu, child_metadata(tj, tj.name), labels(tj))

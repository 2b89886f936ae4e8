"""All children of a ModelDeployment at once, and the kinds the controller manages.

The planner (render/md_planner.py) applies `render_children(...)` and deletes
the owned children it finds that were not rendered this time, e.g. the HPA
after autoscaling is removed, or a candidate slot after a rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.kinds import (
    CONFIG_MAP,
    DEPLOYMENT,
    HPA,
    PDB,
    RESOURCE_CLAIM_TEMPLATE,
    SCALED_OBJECT,
    SERVICE,
    Kind,
)
from modelops.api.modeldeployment import ModelDeployment

from .autoscaler import DEFAULT_PROMETHEUS_ADDRESS, render_autoscaler
from .deployment import render_deployment
from .dra import render_claim_template
from .drift_sidecar import sidecar_enabled
from .meta import as_md
from .pdb import render_pdb
from .service import render_candidate_service, render_service
from .slots import Layout, deployment_name
from .traffic import render_traffic_config

# The kinds come from the one registry in modelops.api.kinds (kube/ takes its
# REST plurals from the same place); ChildKind is kept as a name for callers.
ChildKind = Kind


_KINDS = (RESOURCE_CLAIM_TEMPLATE, DEPLOYMENT, SERVICE, CONFIG_MAP, HPA, SCALED_OBJECT, PDB)


def child_kinds() -> tuple[Kind, ...]:
    """Every kind a ModelDeployment may own (ScaledObject only exists with KEDA)."""
    return _KINDS


def render_children(
    md: ModelDeployment | Mapping[str, Any],
    *,
    operator_image: str,
    model_version: str,
    replace_in_place: bool = False,
    replicas: int | None = None,
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS,
    triton_image: str = c.DEFAULT_TRITON_IMAGE,
    layout: Layout | None = None,
    gpu_instance_kind: str = "gpu",
    activator_url: str | None = None,
) -> list[dict[str, Any]]:
    """The desired children, in apply order (the GPU claim template before the pods that
    reference it, Deployments, the autoscaler after them).

    triton_image: the operator's default Triton image (spec.runtime.image overrides it).
    gpu_instance_kind: "gpu", or "auto" where GPU resources have no CUDA device
    behind them (the pull step then writes KIND_AUTO: Triton runs on CPU there).
    layout: which versions run in which slot (render/slots.py); by default one
    Deployment in slot a serving model_version with ``replicas``.
    activator_url: the wake activator (render/wake.py), or None without one.
    """
    md = as_md(md)
    layout = layout or Layout(stable_version=model_version, stable_replicas=replicas)

    def deployment(slot: str, version: str, count: int | None, in_place: bool) -> dict[str, Any]:
        return render_deployment(
            md,
            operator_image=operator_image,
            model_version=version,
            replace_in_place=in_place,
            replicas=count,
            triton_image=triton_image,
            slot=slot,
            gpu_instance_kind=gpu_instance_kind,
        )

    claim_template = render_claim_template(md)  # DRA: before the pods that name it
    out = [] if claim_template is None else [claim_template]
    out.append(
        deployment(
            layout.stable_slot, layout.stable_version, layout.stable_replicas, replace_in_place
        )
    )
    if layout.candidate_version is not None:
        out.append(
            deployment(
                layout.candidate_slot, layout.candidate_version, layout.candidate_replicas, False
            )
        )
    stable_deployment = deployment_name(md.name, layout.stable_slot)
    wake_deployment = stable_deployment if activator_url and layout.autoscaler else None
    out.append(render_service(md, slot=layout.service_slot, wake_deployment=wake_deployment))
    if layout.candidate_version is not None:
        out.append(render_candidate_service(md, layout.candidate_slot))
    if sidecar_enabled(md):
        out.append(render_traffic_config(md, layout.traffic))
    autoscaler = (
        render_autoscaler(
            md,
            prometheus_address=prometheus_address,
            deployment=stable_deployment,
            activator_url=activator_url,
        )
        if layout.autoscaler
        else None
    )
    for optional in (autoscaler, render_pdb(md)):
        if optional is not None:
            out.append(optional)
    return out

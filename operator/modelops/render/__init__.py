"""modelops.render: desired children and derived status, as pure functions.

Dicts (or a parsed ModelDeployment) in, dicts out; no cluster I/O, no kopf
(enforced by import-linter). The controller calls, per reconcile:

    md = read_model_deployment(body)  # modelops.api.intake: v1alpha1 + pod controls
    rollout = decide_rollout(md, deployment=..., pods=..., now=..., previous=status.rollout)
    children = render_children(md, operator_image=..., model_version=...,
                               replace_in_place=rollout["replaceInPlace"])
    ... apply children, delete the owned ones no longer rendered ...
    status = derive_status(md, deployment=..., pods=..., events=..., autoscaler=...,
                           keda_missing=..., drift=..., now=..., previous_conditions=...,
                           rollout=rollout)
    patch = status_patch(live_status, status)   # {} -> write nothing

TrainingJob: see modelops.render.training (render_job, render_headless_service,
decide_restart, derive_trainingjob_status; status_patch applies to it too).
"""

from .autoscaler import DEFAULT_PROMETHEUS_ADDRESS, render_autoscaler
from .children import ChildKind, child_kinds, render_children
from .deployment import render_deployment
from .pdb import render_pdb
from .rollout import decide_rollout
from .service import render_service
from .status import derive_status, status_patch

__all__ = [
    "DEFAULT_PROMETHEUS_ADDRESS",
    "ChildKind",
    "child_kinds",
    "decide_rollout",
    "derive_status",
    "render_autoscaler",
    "render_children",
    "render_deployment",
    "render_pdb",
    "render_service",
    "status_patch",
]

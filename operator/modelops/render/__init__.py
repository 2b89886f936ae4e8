"""modelops.render: the pure half of the operator. Snapshot in, plan out.

Dicts (or a parsed ModelDeployment / TrainingJob) in, dicts and plans out; no
cluster I/O, no kopf (import-linter, contract "pure-model"). The reconcile shells
(controllers.md_reconcile, controllers.tj_reconcile) gather a snapshot, call
one planner, and hand its Plan (render.plan) to the actuator:

    md_planner.plan(observed, md, applied, settings)     ModelDeployment
    training.planner.plan(observed, tj, ...)             TrainingJob

    (bodies are read by modelops.api.intake: the v1alpha1 model + pod controls)

Three groups of modules, kept apart by import contracts (pyproject.toml):

- ModelDeployment: md_planner and what it calls -- children (deployment, service,
  autoscaler, pdb, drift_sidecar, ...), status, surge (the GPU-safe surge
  decision), gating/ (the gated-rollout state machine, slot_plan turning it into
  slots), inplace, traffic, retrain, wake;
- TrainingJob: training/ (job, service, restart, status, planner);
- shared helpers both use and which know neither kind: plan (the Plan type),
  outcome + merge_patch (status write), ownership + keys (which child to apply,
  by key), conditions, pods, meta, containers, placement, dra, sources, events,
  projections.

The names below are the ModelDeployment pieces most often used on their own.
"""

from .autoscaler import DEFAULT_PROMETHEUS_ADDRESS, render_autoscaler
from .children import ChildKind, child_kinds, render_children
from .deployment import render_deployment
from .merge_patch import status_patch
from .pdb import render_pdb
from .service import render_service
from .status import derive_status
from .surge import decide_rollout

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

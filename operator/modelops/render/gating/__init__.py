"""Gated rollouts (spec.rollout.strategy Shadow / Canary): the pure core.

A new version runs as a *candidate* beside the *stable* one; the data plane
mirrors a share of requests to it (Shadow) or splits live traffic by weight
(Canary) and counts both versions' answers; analysis compares the figures
with spec.rollout.analysis; a pure decision promotes or rolls back, and
status.history keeps the lineage. Nothing here does I/O (import-linter keeps
render/ pure); docs/rollouts.md describes the design for users.

Modules:
    inputs        the decision's inputs: Target, CandidatePods, ObservedFigures, VersionFigures
    build_inputs  builders of those inputs: candidate_pods (from pod objects), merge_figures
                  (from the sidecars' per-pod summaries; the contract is in its docstring)
    ledger        per-sidecar baselines, so counters survive a sidecar restart
    analysis      the gates -> Verdict with each figure against its threshold
    sequential    anytime-valid sequential verdicts on rates
    decide        decide_gated_rollout -> RolloutPlan (the state machine)
    placement     InPlace or a slot of its own for the candidate (choose_placement)
    slot_plan     place(): from the planner's snapshot to the decision and the slot Layout
    agreement     answers_agree: stable vs candidate outputs (numpy), for the data plane
    lineage       status.history entries from TrainingJobs, bounded newest-first push
    metrics       Prometheus metric names and samples derived from status.rollout

Wiring, per reconcile (observe -> plan -> act):

  Observe   controllers.md_reconcile reads the pods from its stores and each
            sidecar's per-pod figures through controllers.sidecar_client (off the
            reconcile path; the last good answer is used), and passes them in the
            planner's snapshot (md_planner.Observed).

  Plan      md_planner.plan calls slot_plan.place once. place resolves the
            Target ONCE to a number (never "latest"; from the pinned version, the
            TrainingJob that published it, or the store listing), builds
            CandidatePods and ObservedFigures (build_inputs), takes
            decide_gated_rollout(...) and turns the RolloutPlan into a
            render.slots.Layout: which version each slot's Deployment runs with
            how many replicas, which pods the Service selects, and the sidecars'
            traffic settings (render.traffic, the <md>-traffic ConfigMap).

  Act       md_planner renders the Layout's children; plan.status goes into
            status.rollout and plan.history into status.history in the same
            status patch, before or with the actions' effects (status is the
            commit point a restarted operator resumes from); plan.events become
            Events; the actuator (controllers.actuator) writes it all.
            Slots are named by letter, not role (render/slots.py), so promotion
            flips which slot is stable without restarting the candidate's pods.

  Actions (the transition this reconcile; for logs and counters, not state)
    DIRECT              a Direct rolling update of the single Deployment started
    START_CANDIDATE     candidate Deployment created
    SET_TRAFFIC         mirror / weight changed: push to the data plane now
    PROMOTE             promotion decided: follow stable_replicas / candidate_replicas
    COMPLETE_PROMOTION  the candidate is stable: delete the old stable slot
    ROLL_BACK           delete the candidate; the stable version is untouched
    WAIT                nothing to change
    STALL               candidate waits for GPUs longer than surgeTimeoutSeconds

  Metrics: metrics.rollout_samples(namespace, name, plan.status) after writing.
"""

from .agreement import answers_agree, argmax_agree, within_tolerance
from .analysis import Check, Result, Verdict, evaluate, evaluate_eval_metric
from .build_inputs import candidate_pods, histogram_quantile, merge_figures
from .decide import (
    Action,
    ActionKind,
    RolloutEvent,
    RolloutPlan,
    Step,
    decide_gated_rollout,
    plan_steps,
    spec_digest,
)
from .inputs import CandidatePods, ObservedFigures, Target, VersionFigures
from .lineage import (
    history_entry,
    hyperparameters_digest,
    latest_source,
    manifest_digest,
    pinned_source,
    push,
    source_from_training_job,
)
from .metrics import rollout_samples

__all__ = [
    "Action",
    "ActionKind",
    "CandidatePods",
    "Check",
    "ObservedFigures",
    "Result",
    "RolloutEvent",
    "RolloutPlan",
    "Step",
    "Target",
    "Verdict",
    "VersionFigures",
    "answers_agree",
    "argmax_agree",
    "candidate_pods",
    "decide_gated_rollout",
    "evaluate",
    "evaluate_eval_metric",
    "histogram_quantile",
    "history_entry",
    "hyperparameters_digest",
    "latest_source",
    "manifest_digest",
    "merge_figures",
    "pinned_source",
    "plan_steps",
    "push",
    "rollout_samples",
    "source_from_training_job",
    "spec_digest",
    "within_tolerance",
]

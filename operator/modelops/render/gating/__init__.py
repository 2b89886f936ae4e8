"""Gated rollouts (spec.rollout.strategy Shadow / Canary): the pure core.

A new version runs as a *candidate* beside the *stable* one; the data plane
mirrors a share of requests to it (Shadow) or splits live traffic by weight
(Canary) and counts both versions' answers; analysis compares the figures
with spec.rollout.analysis; a pure decision promotes or rolls back, and
status.history keeps the lineage. Nothing here does I/O (import-linter keeps
render/ pure); docs/rollouts.md describes the design for users.

Modules:
    observed   the inputs: Target, CandidatePods, ObservedFigures, VersionFigures
    observe    builders of those inputs: candidate_pods (from pod objects), merge_figures
               (from the sidecars' per-pod summaries; the contract is in its docstring)
    analysis   the gates -> Verdict with each figure against its threshold
    decide     decide_gated_rollout -> RolloutPlan (the state machine)
    agreement  answers_agree: stable vs candidate outputs (numpy), for the data plane
    lineage    status.history entries from TrainingJobs, bounded newest-first push
    metrics    Prometheus metric names and samples derived from status.rollout

Wiring into the controller (observe -> plan -> act), per reconcile:

  Observe
    target      Target(version, source, checksum): the version the spec asks for,
                resolved ONCE to a number (never "latest", which raises ValueError;
                while it cannot be resolved, pass the stable version). Resolve it from
                the succeeded TrainingJobs (render.retrain.resolve_model_version) or
                the storage listing, and record it. source: from
                lineage.source_from_training_job(tj_body) when a TrainingJob
                published it, lineage.pinned_source() when spec.model.version
                pins it, lineage.latest_source() otherwise; checksum =
                lineage.manifest_digest(<the version's SHA256SUMS bytes>) when known.
    candidate   observe.candidate_pods(pods, model_version=target.version, desired=...,
                events=..., complete=...): CandidatePods for the pods running
                target.version: desired and ready counts; the scheduler's message and PodScheduled
                lastTransitionTime of an unschedulable one; `problem` = the
                container_problem() message of a pod that cannot recover
                (CrashLoopBackOff, ModelPullFailed, ImagePullBackOff);
                `complete` = DeploymentView.complete of the Deployment rendering
                target.version (strategy Direct and first versions).
    figures     observe.merge_figures(stable_summaries, candidate_summaries): the
                sidecars' per-pod figures summed (counters since the candidate
                started serving; p99 from the summed latency histograms); None
                before the candidate serves.
    replicas    spec.replicas, or the HPA's current desired count when autoscaled.
    serving     status.servedVersion (only used to adopt a stable version once).
    previous    status.rollout; history: status.history; now: the clock.

  Plan
    plan = decide_gated_rollout(md, target=..., previous=..., history=..., figures=...,
                                candidate=..., replicas=..., serving=..., now=...)

  Act (declarative parts every reconcile; they are idempotent)
    - Stable Deployment renders plan.stable_version. Its replicas are the spec's
      (or the autoscaler's) unless plan.stable_replicas is a number (a promotion
      retiring old pods): then set spec.replicas to it and keep the autoscaler
      off that Deployment until the promotion completes.
    - plan.candidate_version None: delete the candidate Deployment (if any).
      Otherwise render it with that version and plan.candidate_replicas. Name
      the two Deployments by *slot* rather than by role (e.g. <name>-a, <name>-b,
      with the version in the pod template): promotion then flips which slot is
      stable in status without touching the candidate's pods (no restart), and
      the old stable slot is deleted when COMPLETE_PROMOTION arrives.
    - Tell the data plane plan.mirror_percent and plan.canary_weight (the sidecar
      in front of the stable pods mirrors/splits to the candidate Service).
    - Write plan.status into status.rollout (merge decide_rollout's
      replaceInPlace/reason for the Direct path) and plan.history into
      status.history, in the same status patch, before or with the actions'
      effects: status is the commit point a restarted operator resumes from.
    - Emit plan.events as Events on the ModelDeployment (RolledBack and
      CandidateStalled are Warning).
    - plan.stalled not None: Stalled=True with reason CandidateUnschedulable and
      that message; Ready stays as the stable version's pods make it (a
      candidate never turns Ready False).
    - Requeue after plan.requeue_after seconds when it is not None.

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

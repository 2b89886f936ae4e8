"""spec.rollout and status.rollout / status.history of a ModelDeployment.

How a new model version replaces the serving one: Direct (today's GPU-safe
rolling update) or gated, where the new version runs as a *candidate* beside
the *stable* one and analysis of live traffic decides whether it is promoted
or rolled back (docs/rollouts.md). The decision logic is in
modelops.render.gating; these models are its input (spec) and output
(status) as the API server stores them.

Shape chosen for kubectl users: `strategy` names where a new version starts
(Direct, Shadow or Canary); `shadow` and `canary` hold the settings of those
phases, and a Shadow rollout that also has `canary.steps` continues with the
canary steps, so the chain is always shadow -> canary -> promote and can be
read top to bottom in `kubectl get -o yaml`. A free-form list of steps (as in
Argo Rollouts) was not chosen: it admits orders that mean nothing here
(canary before shadow, two shadows) which would each need a rule and an
explanation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .base import ApiModel, IntOrPercent, cel, validations

# Durations as Go writes them; the subset modelops.render.retrain.parse_go_duration reads.
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
VERSION_NUMBER = r"^[1-9][0-9]{0,8}$"
MAX_CANARY_STEPS = 10
MAX_HISTORY = 10
MAX_METRICS = 32

Strategy = Literal["Direct", "Shadow", "Canary"]
Placement = Literal["InPlace", "Separate"]
AgreementMode = Literal["Argmax", "RelativeTolerance"]
MetricDirection = Literal["HigherIsBetter", "LowerIsBetter"]

# --- spec.rollout -------------------------------------------------------------------


class ShadowPhase(ApiModel):
    """The shadow phase: the candidate sees copies of live requests; clients never see its
    answers."""

    mirror_percent: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Percentage of live requests (1-100) the data plane copies to the "
        "candidate. Clients only ever get the stable version's answer; the candidate's answer "
        "is compared with it (analysis.minAgreement) and discarded. HTTP infer requests and "
        "gRPC ModelInfer calls (ModelStreamInfer streams are counted, not mirrored).",
    )
    duration: str | None = Field(
        default=None,
        max_length=32,
        pattern=DURATION,
        description="Least time the shadow phase lasts once the candidate is ready, as a Go "
        "duration (e.g. 30m, 1h). Unset: no time floor.",
    )
    requests: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="Least number of mirrored requests before the shadow phase can pass. "
        "Unset: analysis.minRequests alone decides when there is enough evidence.",
    )


class CanaryStep(ApiModel):
    """One canary step: a share of live traffic answered by the candidate."""

    weight: int = Field(
        ge=1,
        le=99,
        description="Percentage of live requests (1-99) the candidate answers during this "
        "step; the stable version answers the rest. 100 is not a step: passing the last step "
        "promotes. HTTP requests only: gRPC calls are counted in the figures, all answered "
        "by the stable version.",
    )
    duration: str | None = Field(
        default=None,
        max_length=32,
        pattern=DURATION,
        description="Least time this step lasts, as a Go duration (e.g. 10m).",
    )
    requests: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="Least number of requests the candidate answers during this step. With "
        "neither duration nor requests, the step lasts until the candidate has answered "
        "analysis.minRequests requests in it.",
    )


class CanaryPhase(ApiModel):
    """The canary phase: steps of increasing traffic weight, then promotion."""

    steps: list[CanaryStep] = Field(
        min_length=1,
        max_length=MAX_CANARY_STEPS,
        json_schema_extra=validations(
            cel(
                # isSorted (Kubernetes CEL list library) gives non-decreasing; exists_one
                # per weight rules out equal neighbours.
                "self.map(s, s.weight).isSorted() && "
                "self.all(s, self.exists_one(t, t.weight == s.weight))",
                "canary step weights must be strictly increasing (e.g. 10, 50)",
            ),
        ),
        description="Steps in order, weights strictly increasing within 1-99, e.g. "
        "[{weight: 10, duration: 10m}, {weight: 50, requests: 5000}]. Each step ends when "
        "its duration and request count (those that are set) are reached and analysis "
        "holds; after the last step the candidate is promoted.",
    )


class Agreement(ApiModel):
    """How a mirrored request's two answers are compared."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.tolerance) || self.mode == 'RelativeTolerance'",
                "tolerance applies to mode RelativeTolerance only",
                field_path=".tolerance",
            ),
        )
    )

    mode: AgreementMode = Field(
        default="Argmax",
        description="Argmax (classifiers): the answers agree when every row's highest-scoring "
        "class is the same. RelativeTolerance (regressors): when every value is within "
        "tolerance of the stable value, relative to its magnitude.",
    )
    tolerance: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="With RelativeTolerance: largest relative difference |c - s| / max(|s|, "
        "1e-12) that still agrees. Unset means 0.01 (1%).",
    )
    output: str | None = Field(
        default=None,
        max_length=256,
        description="Name of the output tensor to compare. Unset compares every output.",
    )


class EvalMetricGate(ApiModel):
    """A gate on the evaluation metric a TrainingJob reported (status.metrics)."""

    name: str = Field(
        min_length=1,
        max_length=63,
        description="Metric name as the TrainingJob reports it in status.metrics, e.g. "
        "accuracy or val_loss.",
    )
    direction: MetricDirection = Field(
        description="HigherIsBetter (accuracy, AUC) or LowerIsBetter (loss, error).",
    )
    max_regression: float = Field(
        default=0.0,
        ge=0,
        le=1_000_000,
        description="How much worse than the stable version's figure the candidate's may be, "
        "in the metric's own unit (0: not worse at all). Checked before the candidate gets "
        "any GPU: a regression rolls back at once.",
    )


class Analysis(ApiModel):
    """Gates a candidate must pass; evaluated continuously on the data plane's figures."""

    min_requests: int = Field(
        default=100,
        ge=1,
        le=1_000_000_000,
        description="Requests the candidate must have answered (mirrored or live) before any "
        "gate can pass or fail; below it the rollout waits for evidence.",
    )
    max_error_rate_increase: float | None = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest increase of the candidate's error rate over the stable "
        "version's on the same traffic, as a fraction (0.01: one percentage point). Errors "
        "are what users feel (5xx, resets, timeouts; 4xx are reported apart). Decided "
        "sequentially at `confidence`. Always judged (default 0.01: the API server "
        "replaces a null with the default); 1 lets any increase pass.",
    )
    max_latency_p99_ratio: float | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Largest ratio of the candidate's p99 latency to the stable version's "
        "(1.5: at most 50% slower). Unset disables the gate.",
    )
    min_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Least fraction (0-1) of mirrored requests where the candidate's answer "
        "agrees with the stable one (see agreement). Only mirrored requests have two answers "
        "to compare, so this needs strategy Shadow. Unset disables the gate.",
    )
    progress_deadline: str = Field(
        default="30m",
        max_length=32,
        pattern=DURATION,
        description="How long a candidate may take to become ready (from its start), and "
        "each step to reach a verdict once its own duration has passed (zero traffic, "
        "minRequests never reached, evidence that decides nothing), as a Go duration. Past "
        "it, onProgressDeadline decides.",
    )
    on_progress_deadline: Literal["Rollback", "Stall"] = Field(
        default="Rollback",
        description="Rollback: the candidate is rolled back with the reason. Stall: it keeps "
        "its traffic and waits, the ModelDeployment turns Stalled (reason "
        "ProgressDeadlineExceeded) until evidence arrives or a person acts (control.promote "
        "/ control.abort).",
    )
    promotion_deadline: str = Field(
        default="15m",
        max_length=32,
        pattern=DURATION,
        description="How long a decided promotion may take to have every replica of the "
        "new version ready. Past it (or at once when the new pods crash-loop) the promotion "
        "is rolled back: the old stable version gets its replicas back.",
    )
    confidence: float = Field(
        default=0.95,
        ge=0.5,
        le=0.9999,
        description="How sure a verdict on a rate (error rate, agreement) must be: the "
        "gates are decided with anytime-valid confidence sequences, so a verdict comes as "
        "soon as the evidence is this sure, however often analysis looks, and false "
        "promotions plus false rollbacks happen at most 1 - confidence of the time.",
    )
    agreement: Agreement = Field(
        default_factory=Agreement,
        json_schema_extra={"default": {}},
        description="How answers are compared for minAgreement.",
    )
    eval_metric: EvalMetricGate | None = Field(
        default=None,
        description="When the candidate came from a TrainingJob: compare its reported metric "
        "with the stable version's (from status.history). A candidate without the metric "
        "fails; a stable version without it (e.g. pinned by spec) passes the gate.",
    )


class InPlaceSettings(ApiModel):
    """How an InPlace candidate is checked and protected (placement InPlace only)."""

    on_no_fit: Literal["Separate", "Wait"] = Field(
        default="Separate",
        description="When the candidate does not fit beside the stable version (GPU or "
        "host memory, a model larger than half the GPU) or needs new pods (another runtime "
        "image, resources or Triton arguments): Separate runs it in a slot of its own, as "
        "placement Separate does, with the reason in status.rollout.placementReason; Wait "
        "keeps it waiting (phase Waiting, the reason in status) until it fits or the "
        "progress deadline decides. A candidate that needs new pods always goes Separate.",
    )
    memory_headroom_percent: int = Field(
        default=10,
        ge=0,
        le=400,
        description="Memory the fit check adds to the candidate's size, in percent of it "
        "(activations, workspace, the backend's own allocations).",
    )
    shed_mirrors_at: int = Field(
        default=0,
        ge=0,
        le=65_536,
        description="Live requests in flight to a pod's Triton at which that pod's sidecar "
        "stops starting mirrored copies (they are counted as dropped), so copies are shed "
        "before live requests queue. 0: only the sidecar's mirror in-flight cap applies.",
    )
    priority: bool = Field(
        default=True,
        description="Send mirrored copies at the lower of two Triton priority levels of "
        "the candidate's config (live split requests use the higher one).",
    )


class RolloutControl(ApiModel):
    """Manual controls, as spec fields so that Git can drive them; each names a version so it
    acts once and is inert afterwards."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.promote) || !has(self.abort) || self.promote != self.abort",
                "promote and abort may not name the same version",
                field_path=".abort",
            ),
        )
    )

    paused: bool = Field(
        default=False,
        description="Hold the rollout at its current phase and step: no step advances and "
        "no promotion is decided (candidate pods still start, a promotion already under way "
        "completes). A failing gate still rolls back, so pausing never keeps a bad candidate "
        "answering clients.",
    )
    promote: str | None = Field(
        default=None,
        max_length=10,
        pattern=VERSION_NUMBER,
        description='Promote this version now, skipping the remaining analysis (e.g. "8"). '
        "Acts when it is the version being rolled out, even one rolled back before; inert "
        "once it is stable, so it can stay in Git.",
    )
    abort: str | None = Field(
        default=None,
        max_length=10,
        pattern=VERSION_NUMBER,
        description='Roll this candidate version back now (e.g. "8"). It is then not tried '
        "again until a newer version appears or the spec changes; inert for other versions.",
    )


class Rollout(ApiModel):
    """How a new version or configuration replaces the running pods."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                # has() guards: the apiserver checks the CRD default `{}` against
                # this rule before nested defaults are filled in.
                "!has(self.maxSurge) || !has(self.maxUnavailable) || "
                "!((type(self.maxSurge) == int ? self.maxSurge == 0 : self.maxSurge == '0%') && "
                "(type(self.maxUnavailable) == int ? self.maxUnavailable == 0 "
                ": self.maxUnavailable == '0%'))",
                "maxSurge and maxUnavailable may not both be 0",
                field_path=".maxUnavailable",
            ),
            cel(
                "!has(self.strategy) || self.strategy != 'Shadow' || has(self.shadow)",
                "strategy Shadow needs rollout.shadow (e.g. shadow: {mirrorPercent: 10})",
                field_path=".shadow",
            ),
            cel(
                "!has(self.shadow) || has(self.strategy) && self.strategy == 'Shadow'",
                "rollout.shadow is only used with strategy Shadow",
                field_path=".shadow",
            ),
            cel(
                "!has(self.strategy) || self.strategy != 'Canary' || has(self.canary)",
                "strategy Canary needs rollout.canary.steps",
                field_path=".canary",
            ),
            cel(
                "!has(self.canary) || has(self.strategy) && self.strategy != 'Direct'",
                "rollout.canary needs strategy Canary (or Shadow, to follow the shadow phase)",
                field_path=".canary",
            ),
            cel(
                "!has(self.placement) || self.placement == 'Separate' || "
                "has(self.strategy) && self.strategy != 'Direct'",
                "placement InPlace needs strategy Shadow or Canary (Direct replaces the pods)",
                field_path=".placement",
            ),
            cel(
                "!has(self.inPlace) || has(self.placement) && self.placement == 'InPlace'",
                "rollout.inPlace is only used with placement InPlace",
                field_path=".inPlace",
            ),
            cel(
                "!has(self.analysis) || !has(self.analysis.minAgreement) || "
                "has(self.strategy) && self.strategy == 'Shadow'",
                "analysis.minAgreement compares mirrored requests: it needs strategy Shadow",
                field_path=".analysis.minAgreement",
            ),
        )
    )

    strategy: Strategy = Field(
        default="Direct",
        description="Direct: a new version replaces the pods in a rolling update (surge "
        "first; see surgeTimeoutSeconds), as soon as it exists. Shadow: the new version runs "
        "as a candidate beside the stable one and gets a copy of shadow.mirrorPercent of the "
        "requests; its answers are compared and discarded; then canary.steps if set, then "
        "promotion. Canary: the candidate answers canary.steps' shares of live traffic, then "
        "is promoted. Shadow and Canary promote or roll back on analysis; the first version of "
        "a new ModelDeployment always goes directly (nothing to compare with).",
    )
    placement: Placement | None = Field(
        default=None,
        description="Where a Shadow or Canary candidate runs (unset: Separate, the default "
        "until in-place rollouts have run in production; unset also keeps the digest of "
        "existing specs). Separate: in pods of its own "
        "(as many extra GPUs as the candidate has replicas). InPlace: loaded beside the "
        "stable version in the Triton servers that already serve (no extra pod or GPU); the "
        "sidecars mirror or split to it inside the pod, promotion makes it the served "
        "version without restarting a pod, rollback unloads it. A candidate that does not "
        "fit, or needs new pods, follows inPlace.onNoFit; status.rollout.placement says "
        "where it runs and why. See docs/rollouts.md, In-place rollouts.",
    )
    in_place: InPlaceSettings | None = Field(
        default=None, description="Settings of placement InPlace (defaults when unset)."
    )
    shadow: ShadowPhase | None = Field(
        default=None, description="Settings of the shadow phase; required by strategy Shadow."
    )
    canary: CanaryPhase | None = Field(
        default=None,
        description="Canary steps; required by strategy Canary, optional after a shadow phase.",
    )
    analysis: Analysis = Field(
        default_factory=Analysis,
        json_schema_extra={"default": {}},
        description="Gates of strategies Shadow and Canary.",
    )
    control: RolloutControl | None = Field(
        default=None, description="Manual promote, abort and pause (GitOps-friendly)."
    )
    max_surge: IntOrPercent = Field(
        default=1,
        description='Extra pods (count or percentage like "25%") a rolling update may create '
        "above the desired replicas. Each surge pod needs free GPUs; see surgeTimeoutSeconds. "
        "Also how many candidate pods a promotion adds at a time before retiring as many "
        "stable ones.",
    )
    max_unavailable: IntOrPercent = Field(
        default=0,
        description="Pods (count or percentage) that may be unavailable during a rolling "
        "update. The default 0 keeps full serving capacity while the new version loads.",
    )
    surge_timeout_seconds: int = Field(
        default=60,
        ge=0,
        le=86_400,
        description="When a surge pod stays unschedulable (e.g. Insufficient nvidia.com/gpu) "
        "for longer than this, the operator finishes this rollout replacing pods in place "
        "(maxSurge 0, maxUnavailable 1) instead of waiting for a GPU that never frees up; "
        "status.rollout says so. 0 switches as soon as a surge pod is unschedulable. For "
        "Shadow and Canary, a candidate that waits longer than this for a node turns the "
        "rollout Stalled (it keeps waiting; the stable version is never scaled down for it).",
    )


# --- status.rollout / status.history ------------------------------------------------------

Phase = Literal[
    "Idle", "Progressing", "Waiting", "Shadow", "Canary", "Paused", "Promoting", "RolledBack"
]
Outcome = Literal["Promoted", "RolledBack", "Superseded"]
SourceKind = Literal["TrainingJob", "PinnedBySpec", "Latest"]


class VersionFigures(ApiModel):
    """Live figures of one version over the current analysis."""

    requests: int | None = Field(default=None, description="Requests answered.")
    errors: int | None = Field(default=None, description="Requests that failed.")
    error_rate: float | None = Field(default=None, description="errors / requests.")
    latency_p99_seconds: float | None = Field(default=None, description="p99 latency, seconds.")
    client_errors: int | None = Field(
        default=None, description="4xx answers: reported apart, never gating."
    )


class AnalysisFigures(ApiModel):
    """What analysis saw at the last evaluation (copied from the data plane's figures)."""

    stable: VersionFigures | None = Field(default=None, description="The stable version.")
    candidate: VersionFigures | None = Field(default=None, description="The candidate.")
    mirrored: int | None = Field(
        default=None, description="Mirrored requests whose two answers were compared."
    )
    agreement: float | None = Field(
        default=None, description="Fraction of compared requests whose answers agree."
    )
    step_requests: int | None = Field(
        default=None, description="Requests the candidate answered in the current step."
    )
    sent: int | None = Field(
        default=None,
        description="Requests the stable sidecars sent the candidate (mirrored and split).",
    )
    sent_failed: int | None = Field(
        default=None,
        description="Of those, the ones the candidate failed as seen by the stable side "
        "(5xx, resets, timeouts): the candidate is judged from both sides.",
    )
    sent_timeouts: int | None = Field(default=None, description="Of those, timeouts.")
    split_fallbacks: int | None = Field(
        default=None, description="Split requests answered by the stable version instead."
    )
    self_agreement: float | None = Field(
        default=None,
        description="The stable version's agreement with itself on mirrored requests (the "
        "noise floor), when the sidecars measure it.",
    )
    requests_needed: int | None = Field(
        default=None,
        ge=0,
        description="While no verdict is reached: about how many more candidate requests the "
        "undecided gates need at the figures so far.",
    )
    eta_seconds: int | None = Field(
        default=None,
        ge=0,
        description="While no verdict is reached: requestsNeeded at the step's request rate "
        "so far, in seconds (absent while no request reaches the candidate).",
    )
    refused: str | None = Field(
        default=None,
        max_length=1024,
        description="Figures refused because they do not add up, with the reason; never summed.",
    )
    verdict: str | None = Field(
        default=None,
        max_length=1024,
        description="Each gate's figure against its threshold, e.g. agreement 0.97 >= "
        "minAgreement 0.95.",
    )


class RejectedVersion(ApiModel):
    """The version last rolled back: not retried until a newer one appears or the spec
    changes."""

    version: str = Field(max_length=64, description="The rolled-back version.")
    spec_digest: str = Field(
        max_length=80,
        description="Digest of the spec parts that shape a candidate (model, runtime, "
        "resources, rollout policy without control) when it was rolled back.",
    )
    reason: str | None = Field(default=None, max_length=4096, description="Why.")
    epoch: str | None = Field(
        default=None, max_length=80, description="The attempt that was rolled back."
    )


class TrainingJobRef(ApiModel):
    """The TrainingJob that produced a version."""

    name: str = Field(max_length=253, description="Name of the TrainingJob.")
    uid: str | None = Field(default=None, max_length=64, description="Its metadata.uid.")


class VersionSource(ApiModel):
    """Where a served version came from."""

    kind: SourceKind = Field(
        description="TrainingJob (produced by the TrainingJob named below), PinnedBySpec "
        "(spec.model.version names it) or Latest (found under storageUri, no TrainingJob "
        "known)."
    )
    training_job: TrainingJobRef | None = Field(default=None, description="The TrainingJob.")
    dataset_uri: str | None = Field(
        default=None, max_length=2048, description="The TrainingJob's spec.dataset.uri."
    )
    hyperparameters_digest: str | None = Field(
        default=None,
        max_length=80,
        description="sha256 of the TrainingJob's hyperparameters (sorted JSON), to compare "
        "runs without storing them.",
    )
    metrics: dict[str, Annotated[float, Field(description="A metric's value.")]] | None = Field(
        default=None,
        max_length=MAX_METRICS,
        description="The TrainingJob's reported metrics (status.metrics).",
    )


class RolloutStatus(ApiModel):
    """The operator's rollout state: which versions serve, where a candidate stands."""

    replace_in_place: bool | None = Field(
        default=None,
        description="True while the current rollout replaces pods in place because a surge "
        "pod could not get a GPU (see spec.rollout.surgeTimeoutSeconds).",
    )
    reason: str | None = Field(
        default=None, max_length=4096, description="Why the rollout replaces pods in place."
    )
    phase: Phase | None = Field(
        default=None,
        description="Idle (only the stable version runs), Progressing (a Direct rolling "
        "update), Waiting (candidate pods starting or waiting for GPUs), Shadow, Canary, "
        "Paused (spec.rollout.control.paused), Promoting (candidate replacing the stable "
        "pods), RolledBack (the last candidate was refused; stable serves).",
    )
    strategy: Literal["Direct", "Shadow", "Canary"] | None = Field(
        default=None, description="The strategy the current candidate rolls out with."
    )
    stable: str | None = Field(default=None, max_length=64, description="Stable version.")
    stable_slot: Literal["a", "b"] | None = Field(
        default=None,
        description="Which of the two Deployments serves the stable version: a is "
        "`<name>`, b is `<name>-b`; a candidate runs in the other one, and promotion "
        "flips this without restarting the candidate's pods.",
    )
    candidate: str | None = Field(
        default=None, max_length=64, description="Candidate version under analysis."
    )
    placement: Placement | None = Field(
        default=None,
        description="Where the candidate runs: InPlace (in the serving pods' Triton) or "
        "Separate (pods of its own).",
    )
    placement_reason: str | None = Field(
        default=None,
        max_length=1024,
        description="Why it runs there: the spec, the fit check's figures, or why InPlace "
        "was not possible.",
    )
    epoch: str | None = Field(
        default=None,
        max_length=80,
        description='This attempt at the candidate (opaque, "<version>.<start>"): the '
        "sidecars count figures per epoch (traffic.json), so a version retried under the same "
        "number starts from zero.",
    )
    step: int | None = Field(
        default=None,
        description="Index of the current step: the shadow phase first (when any), then "
        "canary steps in order.",
    )
    steps: int | None = Field(default=None, description="Number of steps of this rollout.")
    mirror_percent: int | None = Field(
        default=None, description="Share of requests mirrored to the candidate now."
    )
    canary_weight: int | None = Field(
        default=None, description="Share of live requests the candidate answers now."
    )
    candidate_since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When this candidate was first seen.",
    )
    step_started_at: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the current step started (analysis counts from here).",
    )
    step_start_requests: int | None = Field(
        default=None,
        description="Candidate requests counted when the current step started, so a resumed "
        "operator measures the step from the same point.",
    )
    waiting_since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When candidate pods started waiting for a node.",
    )
    stalled: bool | None = Field(
        default=None,
        description="True while the candidate has waited for a node longer than "
        "surgeTimeoutSeconds.",
    )
    promoting_since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="While Promoting: when the promotion was decided (promotionDeadline "
        "counts from here).",
    )
    promotion_reason: str | None = Field(
        default=None,
        max_length=1024,
        description="While Promoting: why (the passing verdict, or the manual control).",
    )
    candidate_source: VersionSource | None = Field(
        default=None, description="Where the candidate came from (its lineage so far)."
    )
    candidate_checksum: str | None = Field(
        default=None, max_length=80, description="sha256 digest of the candidate's manifest."
    )
    analysis: AnalysisFigures | None = Field(default=None, description="Live analysis figures.")
    rejected: RejectedVersion | None = Field(
        default=None, description="The version last rolled back."
    )
    message: str | None = Field(
        default=None, max_length=4096, description="What the rollout is doing, and why."
    )


class HistoryEntry(ApiModel):
    """One version that was rolled out, and what became of it."""

    version: str = Field(max_length=64, description="Model version.")
    source: VersionSource = Field(description="Where it came from.")
    checksum: str | None = Field(
        default=None,
        max_length=80,
        description="sha256 digest of the version's SHA256SUMS manifest (which lists every "
        "file's digest), as sha256:<hex>: what was judged.",
    )
    epoch: str | None = Field(
        default=None,
        max_length=80,
        description="The attempt (status.rollout.epoch) whose figures decided the outcome.",
    )
    serving_since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When it became stable (promoted entries).",
    )
    outcome: Outcome = Field(
        description="Promoted (became stable), RolledBack (refused by analysis or aborted) "
        "or Superseded (a newer version replaced it before a verdict)."
    )
    reason: str | None = Field(
        default=None, max_length=1024, description="Why: the verdict or the manual control."
    )
    decided_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When."
    )

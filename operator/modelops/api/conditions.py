"""The ModelDeployment's status conditions and their reasons, documented.

derive_status (modelops.render.status) emits exactly these (a unit test
checks it); docs/api.md lists them so that an SRE can look a reason up.
AutoscalerReady may also carry the HPA's or KEDA's own reason verbatim.
"""

from __future__ import annotations

CONDITIONS: dict[str, tuple[str, dict[str, str]]] = {
    "Ready": (
        "The model serves requests at the capacity the spec promises (replicas, or "
        "minReplicas, less maxUnavailable). Stays True while an older version serves during "
        "a rollout.",
        {
            "Serving": "True: ready pods serve; the message names the version(s) and any "
            "rollout or scaling under way.",
            "ScaledToZero": "True: zero replicas were asked for (spec.replicas 0), or KEDA scaled "
            "an idle model to zero (engine keda, minReplicas 0): nothing serves, by design, until "
            "KEDA's trigger fires again. Distinct from InsufficientReplicas, never intended.",
            "DeploymentMissing": "The Triton Deployment has not been created yet.",
            "WaitingForNode": "Pods wait for a node (within spec.rollout.surgeTimeoutSeconds).",
            "PullingModel": "The pull-model init container is downloading the model.",
            "ModelLoading": "Triton runs but has not loaded the model yet.",
            "InsufficientReplicas": "Fewer replicas available than promised, for no known fault, "
            "or the Deployment was scaled below the spec outside the operator (it is restored).",
            "VersionUnknown": "Pods are ready but none reports which model version it loaded; "
            "a version status cannot name is never reported as serving.",
            "OwnershipConflict": "Same as Stalled.",
            "InvalidSpec": "Same as Stalled.",
            "DRANotServed": "Same as Stalled.",
            "Unschedulable": "Same as Stalled.",
            "ImagePullBackOff": "Same as Stalled.",
            "CrashLoopBackOff": "Same as Stalled.",
            "ModelPullFailed": "Same as Stalled.",
            "ReferencePullFailed": "Same as Stalled.",
            "CreateContainerConfigError": "Same as Stalled.",
            "CreateContainerError": "Same as Stalled.",
            "RunContainerError": "Same as Stalled.",
            "FailedCreate": "Same as Stalled.",
            "ProgressDeadlineExceeded": "Same as Stalled.",
        },
    ),
    "Reconciling": (
        "kstatus abnormal-true condition: True while the operator or Kubernetes is still "
        "working towards the spec.",
        {
            "Creating": "True: the Deployment is being created.",
            "RollingOut": "True: pods of an older template still run.",
            "ReplacingInPlace": "True: the rollout replaces pods in place because a surge pod "
            "could not get a GPU (see status.rollout).",
            "ScalingUp": "True: fewer replicas are available than desired.",
            "ScalingDown": "True: more pods run than desired.",
            "Reconciled": "False: everything is up to date.",
            "Stalled": "False: no progress is possible; see Stalled.",
            "OwnershipConflict": "False: see Stalled.",
            "InvalidSpec": "False: see Stalled.",
            "DRANotServed": "False: see Stalled.",
        },
    ),
    "Stalled": (
        "kstatus abnormal-true condition: True when progress needs intervention. The message "
        "quotes the cause (scheduler message, pull error, last log lines of a crash).",
        {
            "AsExpected": "False: nothing blocks progress.",
            "Unschedulable": "A pod found no node for longer than surgeTimeoutSeconds, e.g. "
            "0/6 nodes are available: 4 Insufficient nvidia.com/gpu.",
            "ImagePullBackOff": "An image cannot be pulled (wrong tag, missing pull secret).",
            "ModelPullFailed": "The pull-model init container keeps failing: wrong URI, missing "
            "version, credentials, or an unverified version (see spec.model.verifyChecksums).",
            "ReferencePullFailed": "The fetch-reference init container keeps failing.",
            "CrashLoopBackOff": "A container keeps crashing; the message gives its last exit "
            "reason (e.g. OOMKilled) and log lines.",
            "CreateContainerConfigError": "A container cannot be configured, e.g. the "
            "credentials Secret does not exist.",
            "CreateContainerError": "The container runtime cannot create a container.",
            "RunContainerError": "The container runtime cannot start a container.",
            "FailedCreate": "Pods cannot be created: quota, Pod Security, missing ServiceAccount "
            "or PriorityClass.",
            "ProgressDeadlineExceeded": "The Deployment made no progress within its deadline.",
            "OwnershipConflict": "An object with a child's name exists and is not controlled by "
            "this ModelDeployment (made by hand, or by another owner). modelops never adopts, "
            "overwrites or deletes it; the message names it. Delete or rename it.",
            "InvalidSpec": "The stored spec fails validation, or breaks a rule the CRD "
            "enforces (reserved Triton flags or environment variables, credentials in a URI): "
            "it was stored before a CRD change, or with validation off. The message names the "
            "fields; nothing is rendered until it is fixed.",
            "DRANotServed": "spec.resources.gpu.allocation is DRA but the cluster does not "
            "serve resource.k8s.io/v1 (Kubernetes 1.34 or later); nothing is applied until it "
            "does or the allocation is DevicePlugin.",
            "CandidateUnschedulable": "A gated rollout's candidate (spec.rollout.strategy "
            "Shadow or Canary) has waited for a node longer than surgeTimeoutSeconds; it keeps "
            "waiting and the stable version keeps serving (status.rollout.message).",
        },
    ),
    "Scheduled": (
        "All Triton pods are bound to nodes.",
        {
            "Scheduled": "True.",
            "Unschedulable": "False: the scheduler's message says why.",
            "Pending": "Unknown: pods wait for the scheduler.",
            "NoPods": "Unknown: no pods exist.",
        },
    ),
    "ModelLoaded": (
        "At least one pod has loaded the model (Triton readiness passed).",
        {
            "Loaded": "True: the message names the version(s) and the number of pods.",
            "Pulling": "False: the model is being downloaded.",
            "Loading": "False: Triton is loading the model.",
            "PullFailed": "False: the download keeps failing.",
            "LoadFailed": "False: Triton keeps exiting, usually because the model does not load.",
            "PodsNotRunning": "Unknown: no pod runs yet.",
            "NoPods": "Unknown: no pods exist.",
        },
    ),
    "AutoscalerReady": (
        "Only with spec.autoscaling: the HPA or KEDA ScaledObject can compute a replica count. "
        "A False reason other than KEDANotInstalled is the autoscaler's own, e.g. "
        "FailedGetPodsMetric when prometheus-adapter lacks the rules.",
        {
            "ScalingActive": "True: the HPA computes replica counts from its metric.",
            "ScalingLimited": "True: the HPA wants more than maxReplicas.",
            "ScaledObjectReady": "True: KEDA's ScaledObject is ready.",
            "KEDANotInstalled": "False: engine keda, but the ScaledObject API is not served.",
            "Pending": "Unknown: the autoscaler does not exist or has not reported yet.",
        },
    ),
    "ScaledToZero": (
        "Only when KEDA may take the model to zero (engine keda, minReplicas 0): whether it "
        "is at zero, and whether it is waking (see docs/autoscaling.md, Waking from zero).",
        {
            "WakeOnRequest": "True: no replica; a request to the Service is held by the "
            "activator and scales the model up (with the activator installed).",
            "Waking": "False: replicas were asked for but none is ready yet; held requests "
            "are answered once one is.",
            "Serving": "False: at least one replica is ready.",
        },
    ),
    "Drifted": (
        "Only with the drift monitor enabled: live inputs differ from the reference.",
        {
            "DriftDetected": "True: the message gives the score and the most drifted features.",
            "NoDrift": "False.",
            "NoData": "Unknown: the first evaluation window is not full yet.",
        },
    ),
    "StoreListed": (
        "Only where the operator lists the model store itself (spec.model.version latest, "
        "or a gated rollout; not pvc://, which only the pods mount): whether that listing "
        "succeeds. It uses the keys of spec.model.credentialsSecretRef, as the pods do. "
        "While it fails, no new version is discovered and the replicas stay on the version "
        "status names.",
        {
            "Listed": "True: the message names the newest complete version.",
            "SecretNotFound": "False: the credentials Secret does not exist.",
            "SecretForbidden": "False: the operator may not get the credentials Secret "
            "(its RBAC grants get on secrets).",
            "SecretTooLarge": "False: the credentials Secret is over 64 KiB.",
            "InvalidSecret": "False: a value of the credentials Secret is not UTF-8 text.",
            "SecretUnreadable": "False: the API server did not answer for the Secret.",
            "NoCredentials": "False: no credentials (no Secret named, and the operator has no "
            "ambient credentials for the store).",
            "AccessDenied": "False: the store refused the credentials.",
            "BucketNotFound": "False: the bucket does not exist.",
            "EndpointUnreachable": "False: the store's endpoint does not answer.",
            "ListFailed": "False: the listing failed otherwise; the message says how.",
        },
    ),
}

# Reasons derive_status copies from other controllers' conditions.
PASSTHROUGH = frozenset({"AutoscalerReady"})

# Reasons the planners force onto Ready/Stalled/Reconciling when a problem blocks
# everything (modelops.render.conditions.force_conditions), for both kinds.
PLANNER_REASONS = frozenset({"OwnershipConflict", "InvalidSpec", "DRANotServed"})

# kubectl wait / GitOps guidance printed above each kind's table in docs/api.md.
MD_CONDITIONS_INTRO = (
    "`kubectl wait --for=condition=Ready md/<name>` waits for serving. Argo CD and Flux "
    "read Ready, Reconciling and Stalled (kstatus)."
)

TJ_CONDITIONS_INTRO = (
    "For a batch job Ready means *finished successfully*: `kubectl wait "
    "--for=condition=Ready tj/<name>` waits for the trained model (or use "
    "`--for=condition=Succeeded`, and `--for=condition=Failed` for the other outcome). "
    "Reconciling is True while the job is pending or running, Stalled when it failed for good "
    "or cannot start without intervention. status.phase summarises them for kubectl get."
)

_STALLED_TOO = "Same as Stalled."
# Failures `modelops train` reports for mistakes every attempt would repeat: the
# TrainingJob fails at once with the trainer's reason instead of restarting.
_PERMANENT = {
    "InvalidArgument": "True: `modelops train` refused its arguments (spec.args, output or "
    "model name); not restarted.",
    "InvalidTrainingModule": "True: spec.entrypoint does not satisfy the training-module "
    "contract (build(), load_dataset()); not restarted.",
    "InvalidHyperparameter": "True: a hyperparameter cannot be parsed or converted; not restarted.",
    "CheckpointMismatch": "True: spec.checkpoints holds another training module's "
    "checkpoints; not restarted.",
    "InvalidOutput": "True: spec.command exited 0 but left no model.pt / model.onnx with its "
    "signature.json in $MODELOPS_OUTPUT_DIR; not restarted.",
}
_FAILED_TOO = "Same as Failed."

TRAINING_JOB_CONDITIONS: dict[str, tuple[str, dict[str, str]]] = {
    "Ready": (
        "True once training succeeded and the model was published; False before, with the "
        "reason of the current state.",
        {
            "Succeeded": "True: the Job completed; the message names the output version.",
            "Creating": "The Job of the current attempt does not exist yet.",
            "WaitingForNodes": "Pods wait for the scheduler; the message quotes it, e.g. "
            "0/6 nodes are available: 4 Insufficient nvidia.com/gpu.",
            "Starting": "Every pod has a node; containers are starting (image pull).",
            "Running": "Training runs on every node.",
            "NodeFailed": "A node's pod failed; the attempt is ending.",
            "Restarting": "An attempt failed; all nodes start again as a new attempt.",
            "Suspending": "spec.suspend is set; the pods are stopping.",
            "Suspended": "Same as Suspended.",
            "WaitingForAdmission": "Same as Suspended.",
            "ImagePullBackOff": _STALLED_TOO,
            "CreateContainerConfigError": _STALLED_TOO,
            "CreateContainerError": _STALLED_TOO,
            "RunContainerError": _STALLED_TOO,
            "FailedCreate": _STALLED_TOO,
            "OwnershipConflict": _STALLED_TOO,
            "InvalidSpec": _STALLED_TOO,
            "BackoffLimitExceeded": _FAILED_TOO,
            "DeadlineExceeded": _FAILED_TOO,
            **{reason: _FAILED_TOO for reason in _PERMANENT},
        },
    ),
    "Reconciling": (
        "kstatus abnormal-true condition: True while the job is pending, running or restarting.",
        {
            "Creating": "True: the Job is being created.",
            "WaitingForNodes": "True: pods wait for the scheduler.",
            "Starting": "True: containers are starting.",
            "Running": "True: training runs on every node.",
            "NodeFailed": "True: a node's pod failed; the attempt is ending.",
            "Restarting": "True: a new attempt is starting.",
            "Suspending": "True: the pods are stopping for spec.suspend.",
            "Suspended": "False: nothing runs until the job is resumed or admitted.",
            "Finished": "False: the job succeeded or failed for good.",
            "Stalled": "False: no progress is possible; see Stalled.",
            "OwnershipConflict": "False: see Stalled.",
            "InvalidSpec": "False: see Stalled.",
        },
    ),
    "Stalled": (
        "kstatus abnormal-true condition: True when the job failed for good or cannot start "
        "without intervention. Waiting for GPUs is not a stall (use Kueue to queue).",
        {
            "AsExpected": "False: nothing blocks progress.",
            "BackoffLimitExceeded": "The last allowed attempt failed; the message names the "
            "failed rank, its exit reason and code, and the last lines of its log.",
            "DeadlineExceeded": "spec.activeDeadlineSeconds passed.",
            "OwnershipConflict": "The rendezvous Service's name is taken by an object this "
            "TrainingJob does not control; the message names it. Delete or rename it.",
            "InvalidSpec": "The stored spec fails validation, or breaks a rule the CRD "
            "enforces (reserved flags or environment variables, credentials in a URI); the "
            "message names the fields. Nothing is rendered until it is fixed.",
            "ImagePullBackOff": "The trainer image cannot be pulled (wrong tag, missing pull "
            "secret).",
            "CreateContainerConfigError": "The trainer cannot be configured, e.g. the "
            "credentials Secret does not exist.",
            "CreateContainerError": "The container runtime cannot create the trainer.",
            "RunContainerError": "The container runtime cannot start the trainer.",
            "FailedCreate": "The Job cannot create pods: quota, Pod Security, missing "
            "ServiceAccount or PriorityClass.",
            **{reason: f"Same as Failed ({reason})." for reason in _PERMANENT},
        },
    ),
    "Created": (
        "The Job of the current attempt exists.",
        {
            "JobCreated": "True: the message names the Job and the attempt.",
            "JobMissing": "False: the Job is being created.",
            "JobDeleted": "False: the finished Job was deleted (spec.ttlSecondsAfterFinished); "
            "the outcome stays in status.",
        },
    ),
    "Running": (
        "True only while every node's pod runs: a partly scheduled job is not running.",
        {
            "AllNodesRunning": "True: the message gives nodes and processes.",
            "NotStarted": "False: the Job does not exist yet.",
            "WaitingForNodes": "False: some pods wait for the scheduler.",
            "Starting": "False: some containers are still starting.",
            "NodeFailed": "False: a node's pod failed.",
            "Restarting": "False: between attempts.",
            "Suspended": "False: the job is suspended.",
            "Completed": "False: training finished.",
            "Failed": "False: the job failed.",
        },
    ),
    "Succeeded": (
        "Training finished and the model was published.",
        {
            "Completed": "True: every node exited 0.",
            "NotFinished": "False: the job has not finished.",
            "Failed": "False: the job failed.",
        },
    ),
    "Failed": (
        "The job failed for good and will not be restarted.",
        {
            "NoFailure": "False: no attempt failed.",
            "Restarting": "False: an attempt failed and the job restarts; the message says "
            "why (restarts are counted against spec.backoffLimit).",
            "NodeFailed": "False: a node's pod failed; a restart or the final failure follows.",
            "BackoffLimitExceeded": "True: spec.backoffLimit restarts were used up.",
            "DeadlineExceeded": "True: spec.activeDeadlineSeconds passed.",
            **_PERMANENT,
        },
    ),
    "Suspended": (
        "No pod runs because the job is suspended.",
        {
            "Suspended": "True: spec.suspend is set.",
            "WaitingForAdmission": "True: Kueue has not admitted the job from spec.queueName "
            "yet (quota, or Kueue is not installed).",
            "Suspending": "False: the pods are stopping.",
            "NotSuspended": "False.",
        },
    ),
}

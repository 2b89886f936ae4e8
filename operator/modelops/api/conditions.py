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
            "ScaledToZero": "True: zero replicas were asked for.",
            "DeploymentMissing": "The Triton Deployment has not been created yet.",
            "WaitingForNode": "Pods wait for a node (within spec.rollout.surgeTimeoutSeconds).",
            "PullingModel": "The pull-model init container is downloading the model.",
            "ModelLoading": "Triton runs but has not loaded the model yet.",
            "InsufficientReplicas": "Fewer replicas available than promised, for no known fault.",
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
    "Drifted": (
        "Only with the drift monitor enabled: live inputs differ from the reference.",
        {
            "DriftDetected": "True: the message gives the score and the most drifted features.",
            "NoDrift": "False.",
            "NoData": "Unknown: the first evaluation window is not full yet.",
        },
    ),
}

# Reasons derive_status copies from other controllers' conditions.
PASSTHROUGH = frozenset({"AutoscalerReady"})

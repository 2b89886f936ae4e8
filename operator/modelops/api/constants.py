"""Names and defaults of the modelops API that several layers share.

Kept in one module so that the CRD, the renderers and the status derivation
agree on every key without importing each other.
"""

from __future__ import annotations

GROUP = "modelops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# The version objects are stored in (api/crd.py), and the one the operator
# watches (api/kinds.py); VERSION is the one its planners read.
STORAGE_VERSION = "v1beta1"

MD_KIND = "ModelDeployment"
MD_PLURAL = "modeldeployments"
MD_SINGULAR = "modeldeployment"
MD_SHORT_NAMES = ("md",)
CATEGORIES = ("modelops",)

# Built-in default of the operator's Triton image setting (`modelops run
# --triton-image`, MODELOPS_TRITON_IMAGE, Helm value defaultImages.triton).
# Pinned, not `latest`: a Triton upgrade changes model-loading behaviour and
# must be a reviewed change. The CRD has no default for spec.runtime.image, so
# the operator's setting applies at render time and moving the fleet is one
# setting, not an edit of every object.
DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"

DEFAULT_CPU = "2"
DEFAULT_MEMORY = "8Gi"
# The drift-monitor sidecar. Its RSS stays under 256 MiB with its default
# limits whatever clients send (measured, see modelops.drift.proxy; the
# abuse suite's worst case peaked at 103 MiB, the gRPC relay adds at most
# 64 connections x 0.6 MiB + 16 MiB of kept and held messages, grpcio ~25 MiB
# once mirroring or splitting); the rest of 384Mi is head room for the kernel's
# socket buffers, which the memory cgroup also charges. One core: the proxy is
# one event loop thread plus a statistics thread that keeps to half a core;
# at the measured 110-270 us of CPU per request (bench/drift/overhead.py,
# loaded 2-core machine) one core serves about 3,700-9,000 requests/s.
DEFAULT_DRIFT_CPU = "1"
DEFAULT_DRIFT_MEMORY = "384Mi"

# Label and annotation keys put on children and read back by status derivation.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MODEL_DEPLOYMENT = f"{GROUP}/model-deployment"
ANNOTATION_MODEL_VERSION = f"{GROUP}/model-version"
# Digest of the GPU claim spec (DRA) on the ResourceClaimTemplate and the pod template.
ANNOTATION_CLAIM_DIGEST = f"{GROUP}/claim-digest"
# Which of a ModelDeployment's two Deployments ("slots") a pod belongs to. A gated
# rollout runs the candidate in the other slot; promotion flips which slot is stable
# (in status) without touching the candidate's pods. See render/slots.py.
LABEL_SLOT = f"{GROUP}/slot"
# The sidecar's traffic settings (mirror / split to the candidate), from a ConfigMap.
TRAFFIC_MOUNT_DIR = "/etc/modelops/traffic"
TRAFFIC_FILE_KEY = "traffic.json"
MANAGED_BY = "modelops"

# Environment variable names the operator reserves on the Triton container:
# the MODELOPS_ prefix for its own settings, and NVIDIA_VISIBLE_DEVICES because
# overriding it would bypass the device plugin's GPU assignment.
RESERVED_ENV_PREFIX = "MODELOPS_"
RESERVED_ENV_NAMES = ("NVIDIA_VISIBLE_DEVICES",)

# tritonserver flags the operator sets itself; users may not pass them in args.
RESERVED_TRITON_FLAGS = (
    "model-repository",
    "model-store",
    "model-control-mode",
    "http-port",
    "grpc-port",
    "metrics-port",
)

# Ports (container and Service) of the serving pod.
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
DRIFT_PROXY_PORT = 8080
# The sidecar's gRPC proxy (Triton's KServe v2 gRPC service, forwarded to TRITON_GRPC_PORT).
DRIFT_GRPC_PROXY_PORT = 8081
# The sidecar's admin port: /metrics, /drift (the summary the operator reads), /healthz.
DRIFT_ADMIN_PORT = 8090

# --- TrainingJob -------------------------------------------------------------

TJ_KIND = "TrainingJob"
TJ_PLURAL = "trainingjobs"
TJ_SINGULAR = "trainingjob"
TJ_SHORT_NAMES = ("tj",)

# The modelops trainer image (PyTorch; the operator image has none, see
# hack/images/build.sh): built-in default of the operator's trainer image
# setting (--trainer-image, MODELOPS_TRAINER_IMAGE, defaultImages.trainer).
# Pinned like the Triton image; a new release changes it together with the
# `modelops train` flags the renderer writes. A TrainingJob keeps the image of
# its first attempt for its restarts (render/training/job.py), so its checkpoints
# stay readable across an operator upgrade.
DEFAULT_TRAINER_IMAGE = "ghcr.io/modelops/modelops-trainer:0.2.0"

# Values that were once CRD schema defaults, and so were written by admission
# into every object created then. The operator reads them as "unset": such an
# object follows the operator's current default instead of being pinned to a
# release nobody chose. Append (never remove) when a default changes; to pin
# one of these releases on purpose, name it by digest (`...@sha256:...`).
FORMER_DEFAULT_TRITON_IMAGES = ("nvcr.io/nvidia/tritonserver:25.01-py3",)
FORMER_DEFAULT_TRAINER_IMAGES = ("ghcr.io/modelops/modelops-train:0.1.0",)
DEFAULT_TRAINING_ENTRYPOINT = "modelops.trainer.examples.tabular"

LABEL_TRAINING_JOB = f"{GROUP}/training-job"
# The attempt a Job runs (0 for the first, +1 per whole-group restart).
ANNOTATION_ATTEMPT = f"{GROUP}/attempt"
# Kueue admits Jobs carrying this label through the named LocalQueue.
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
# Set by the Job controller on every pod of an Indexed Job (label and annotation).
ANNOTATION_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"

# Where a spec.command script writes its model (MODELOPS_OUTPUT_DIR; see trainer.script).
SCRIPT_OUTPUT_DIR = "/output"

# torchrun's c10d rendezvous port on node rank 0 (torchrun's own default).
RENDEZVOUS_PORT = 29500

# Environment the operator or torchrun set in a trainer container; users may not.
RESERVED_TRAINING_ENV_NAMES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "NNODES",
    "NPROC_PER_NODE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "NVIDIA_VISIBLE_DEVICES",
)
# PET_: torchrun reads its flags from PET_<FLAG>; the operator sets them as Kubeflow does.
RESERVED_TRAINING_ENV_PREFIXES = ("TORCHELASTIC_", "PET_", RESERVED_ENV_PREFIX)

# `modelops train` flags the operator derives from the spec; spec.args may not set them.
RESERVED_TRAINER_FLAGS = (
    "entrypoint",
    "dataset",
    "output",
    "model-name",
    "checkpoint-dir",
    "hp",
    "nproc-per-node",
    "termination-log",
)

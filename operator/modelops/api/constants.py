"""Names and defaults of the modelops API that several layers share.

Kept in one module so that the CRD, the renderers and the status derivation
agree on every key without importing each other.
"""

from __future__ import annotations

GROUP = "modelops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MD_KIND = "ModelDeployment"
MD_PLURAL = "modeldeployments"
MD_SINGULAR = "modeldeployment"
MD_SHORT_NAMES = ("md",)
CATEGORIES = ("modelops",)

# Pinned, not `latest`: a Triton upgrade changes model-loading behaviour and
# must be a reviewed change of this constant (and of the CRD default).
DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"

DEFAULT_CPU = "2"
DEFAULT_MEMORY = "8Gi"

# Label and annotation keys put on children and read back by status derivation.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MODEL_DEPLOYMENT = f"{GROUP}/model-deployment"
ANNOTATION_MODEL_VERSION = f"{GROUP}/model-version"
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
# The sidecar's admin port: /metrics, /drift (the summary the operator reads), /healthz.
DRIFT_ADMIN_PORT = 8090

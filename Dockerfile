# syntax=docker/dockerfile:1
#
# The modelops image: the operator (`modelops run`), and in the serving pods the
# pull-model / fetch-reference init containers and the drift-monitor sidecar.
# With EXTRAS=train it is the trainer image (`modelops train`, needs torch):
#
#   docker build -t ghcr.io/modelops/modelops:0.1.0 .
#   docker build --build-arg EXTRAS=train -t ghcr.io/modelops/modelops-train:0.1.0 .
#
# The operator image must not contain torch (several GB of CUDA wheels); the
# build fails if it does.
#
# Base image: a minor-version tag of the Debian bookworm slim Python image.
# For reproducible releases pin it by digest as well, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11-slim-bookworm` prints it), and let
# a bot (Renovate, Dependabot) bump the digest.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package and its dependencies into a virtual environment ---
FROM ${PYTHON_IMAGE} AS build

ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/modelops
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# `.` or `.[train]`; a plain (not editable) install, so /src is not needed at run time.
RUN /opt/modelops/bin/pip install "/src${EXTRAS:+[${EXTRAS}]}"

# Guards: the console script works, and torch is only in an image built with EXTRAS=train.
RUN /opt/modelops/bin/modelops crds > /dev/null \
 && EXTRAS="${EXTRAS}" /opt/modelops/bin/python -c \
    "import importlib.util as u, os, sys; has = u.find_spec('torch') is not None; wants = 'train' in os.environ['EXTRAS'].split(','); sys.exit(0 if has == wants else 'torch ' + ('missing from the trainer image' if wants else 'in the operator image'))"

# --- runtime ----------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="modelops" \
      org.opencontainers.image.description="Kubernetes operator serving models on NVIDIA Triton, with drift monitoring and retraining" \
      org.opencontainers.image.licenses="Apache-2.0"

# uid/gid 1000, as the pods' securityContext (runAsUser/runAsGroup 1000) expects.
RUN groupadd --gid 1000 modelops \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/modelops \
    --shell /usr/sbin/nologin modelops

COPY --from=build /opt/modelops /opt/modelops

ENV PATH=/opt/modelops/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/modelops

WORKDIR /home/modelops
USER 1000:1000

# No HEALTHCHECK: Kubernetes ignores it and probes the containers itself (the
# operator's kopf liveness endpoint :8081/healthz, the sidecar's readiness
# through its proxy port), and one image plays several roles on different ports.
# Ports: 8080 operator metrics, 8081 operator liveness; sidecar 8080 proxy, 8090 admin.
EXPOSE 8080 8081 8090

ENTRYPOINT ["modelops"]
CMD ["run"]

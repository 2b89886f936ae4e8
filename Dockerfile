# syntax=docker/dockerfile:1
#
# The modelops images for people with a Docker engine. The tested, reproducible
# build is the daemonless one, hack/images/build.sh (`make images`); this file
# follows it: the same Debian bookworm base and packages (hack/images/debian.txt),
# the same user (uid/gid 1000), the same lock files installed with
# --require-hashes, the same /opt/modelops and /opt/tritonserver layout.
#
#   docker build --build-arg IMAGE=operator -t ghcr.io/modelops/modelops-operator:0.2.0 .
#   docker build --build-arg IMAGE=runtime  -t ghcr.io/modelops/modelops-runtime:0.2.0 .
#   docker build --build-arg IMAGE=trainer  -t ghcr.io/modelops/modelops-trainer:0.2.0 .
#
# The operator image must not contain torch (several GB of CUDA wheels); the
# build fails if it does, or if the trainer image lacks it.
#
# Base image: a Debian bookworm slim tag. For reproducible releases pin it by
# digest as well, e.g. --build-arg DEBIAN_IMAGE=debian:bookworm-slim@sha256:<digest>
# (`docker buildx imagetools inspect debian:bookworm-slim` prints it), and let a
# bot (Renovate, Dependabot) bump the digest.
ARG DEBIAN_IMAGE=debian:bookworm-slim

# --- base: the interpreter and the user, as the daemonless build's base ------------
FROM ${DEBIAN_IMAGE} AS base
# Versions as in hack/images/debian.txt (tests/ops/test_dockerfile.py checks they agree).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
    python3.11=3.11.2-6+deb12u9 libpython3.11=3.11.2-6+deb12u9 \
    ca-certificates=20250419~deb12u2 libstdc++6=12.2.0-14+deb12u1 zlib1g=1:1.2.13.dfsg-1+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 modelops \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/modelops \
    --shell /usr/sbin/nologin modelops

# --- build: the locked dependencies and the project wheel into /opt/modelops -------
FROM base AS build
ARG IMAGE=operator
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# ensurepip for the build tools' venv only; the image's venv gets no pip.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11-venv=3.11.2-6+deb12u9 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY hack/images/ ./hack/images/
COPY pyproject.toml LICENSE ./
COPY docs/package.md ./docs/
COPY operator ./operator
# pip, setuptools and wheel pinned by build.lock; the image's packages by <IMAGE>.lock;
# a plain (not editable) install of the project wheel, so /src is not needed at run time.
RUN python3.11 -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --no-deps -r hack/images/build.lock \
 && /opt/build/bin/pip wheel --no-build-isolation --no-deps --wheel-dir /dist . \
 && python3.11 -m venv --without-pip /opt/modelops \
 && /opt/build/bin/pip --python /opt/modelops/bin/python install --require-hashes --no-deps \
    --only-binary=:all: -r "hack/images/${IMAGE}.lock" \
 && /opt/build/bin/pip --python /opt/modelops/bin/python install --no-deps /dist/*.whl \
 && if [ "${IMAGE}" = runtime ]; then hack/images/triton-layout.sh /; fi

# Guards: the console script works, and torch is in the trainer and runtime images only.
RUN /opt/modelops/bin/modelops crds > /dev/null \
 && IMAGE="${IMAGE}" /opt/modelops/bin/python -c \
    "import importlib.util as u, os, sys; has = u.find_spec('torch') is not None; wants = os.environ['IMAGE'] != 'operator'; sys.exit(0 if has == wants else 'torch ' + ('missing from the ' + os.environ['IMAGE'] + ' image' if wants else 'in the ' + os.environ['IMAGE'] + ' image'))"

# --- the image ----------------------------------------------------------------------
FROM base
ARG IMAGE=operator

LABEL org.opencontainers.image.title="modelops-${IMAGE}" \
      org.opencontainers.image.description="Kubernetes operator serving models on NVIDIA Triton, with drift monitoring and retraining" \
      org.opencontainers.image.version="0.2.0" \
      org.opencontainers.image.source="https://github.com/modelops/modelops" \
      org.opencontainers.image.licenses="Apache-2.0"

# /opt/modelops, and /opt/tritonserver in the runtime image; root-owned, read-only for uid 1000.
COPY --from=build /opt/ /opt/

# HOME=/tmp: the one writable place of a read-only root (the pods mount /tmp, an
# emptyDir, and set HOME there too). LD_LIBRARY_PATH and the tritonserver PATH entry
# matter only in the runtime image (see hack/images/triton-layout.sh).
ENV PATH=/opt/modelops/bin:/opt/tritonserver/bin:${PATH} \
    LD_LIBRARY_PATH=/opt/tritonserver/lib \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    HOME=/tmp

WORKDIR /home/modelops
USER 1000:1000

# No HEALTHCHECK: Kubernetes ignores it and probes the containers itself (the
# operator's kopf liveness endpoint :8081/healthz, the sidecar's readiness
# through its proxy port, Triton's /v2/health), and one image plays several roles.
# Ports: 8080 operator metrics, 8081 operator liveness; sidecar 8080 proxy, 8090 admin.
EXPOSE 8080 8081 8090

# The runtime image's pods name their command (tritonserver, modelops ...).
ENTRYPOINT ["modelops"]
CMD ["run"]

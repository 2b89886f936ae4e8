#!/usr/bin/env bash
# `make dev`: the local cluster with simulated GPU nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-modelops}
kubeconfig=$(hack/cluster/cluster.sh up "$name")
bin=$(hack/controlplane/build.sh)
export KUBECONFIG=$kubeconfig PATH=$bin:$PATH
kubectl get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count
cat <<MSG

The cluster is up. To use it from this shell:
  export KUBECONFIG=$kubeconfig PATH=$bin:\$PATH
Stop it with: make cluster-down
MSG

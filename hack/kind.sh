#!/usr/bin/env bash
# `make kind-up`: a kind cluster shaped like the local one, for users with a
# Docker engine. Where no engine runs (as on this project's build machines),
# it says so and exits 0, and `make e2e` keeps using the local control plane.
#
# The cluster gets two workers that advertise nvidia.com/gpu as an extended
# resource (patched into node status, the documented way to advertise one
# without a device plugin), with the GPU labels and taint of a real GPU pool.
# Pods there run their real images: Triton pods without a GPU will not become
# Ready, so on kind the e2e suite is a check of the operator's API behaviour
# and RBAC, not of serving.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-modelops}
KIND_VERSION=v0.33.0
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}

if ! docker info >/dev/null 2>&1; then
  echo "kind: skipped: no Docker engine is running here (docker info failed)."
  echo "kind: the local control plane (make dev / make test) needs none."
  exit 0
fi

bin="$CACHE/kind-$KIND_VERSION/bin"
[ -x "$bin/kind" ] || GOBIN="$bin" go install "sigs.k8s.io/kind@$KIND_VERSION"
kubectl_bin=$(hack/controlplane/build.sh)/kubectl

cat > "$CACHE/kind-$name.yaml" <<CFG
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  labels: {nvidia.com/gpu.present: "true", nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3, nvidia.com/gpu.count: "8"}
- role: worker
  labels: {nvidia.com/gpu.present: "true", nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3, nvidia.com/gpu.count: "8"}
CFG
"$bin/kind" get clusters | grep -qx "$name" || "$bin/kind" create cluster --name "$name" --config "$CACHE/kind-$name.yaml"
kubeconfig="$CACHE/kind-$name.kubeconfig"
"$bin/kind" get kubeconfig --name "$name" > "$kubeconfig"
for node in $("$kubectl_bin" --kubeconfig "$kubeconfig" get nodes -l nvidia.com/gpu.present=true -o name); do
  "$kubectl_bin" --kubeconfig "$kubeconfig" taint --overwrite "$node" nvidia.com/gpu=present:NoSchedule
  "$kubectl_bin" --kubeconfig "$kubeconfig" patch "$node" --subresource=status --type=json \
    -p '[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"8"}]'
done
echo "kind: ready. Run the e2e suite there with:"
echo "  MODELOPS_KUBECONFIG=$kubeconfig make e2e"

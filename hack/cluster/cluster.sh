#!/usr/bin/env bash
# Local Kubernetes control plane for modelops: real etcd, kube-apiserver
# (RBAC and PodSecurity admission on), kube-controller-manager and
# kube-scheduler, run as local processes by `kwokctl --runtime binary`, with
# KWOK simulating GPU and CPU nodes and the pods scheduled onto them. GPUs come
# from the device plugin's extended resource (nodes.yaml) and, on two more
# pools, through Dynamic Resource Allocation (dra.yaml).
#
#   cluster.sh up [NAME]      start (or reuse) the cluster, register nodes, write its kubeconfig
#   cluster.sh down [NAME]    stop it and delete its state
#   cluster.sh kubeconfig [NAME]   print the kubeconfig path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
export KWOK_WORKDIR=${KWOK_WORKDIR:-$CACHE/kwok}
name=${2:-${MODELOPS_CLUSTER:-modelops}}
kubeconfig="$KWOK_WORKDIR/clusters/$name/modelops.kubeconfig"

bin=$("$root/hack/controlplane/build.sh")
export PATH="$bin:$PATH"
export KWOK_KUBECTL_BINARY="$bin/kubectl"

log() { echo "cluster: $*" >&2; }

running() {
  [ -f "$kubeconfig" ] && kubectl --kubeconfig "$kubeconfig" --request-timeout=5s get --raw=/readyz >/dev/null 2>&1
}

up() {
  if running; then
    log "cluster '$name' is already running"
  else
    # A half-started or stale cluster (e.g. after a reboot) is replaced.
    kwokctl delete cluster --name "$name" >/dev/null 2>&1 || true
    log "starting cluster '$name' (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)"
    kwokctl create cluster --name "$name" --runtime binary \
      --kubeconfig "" \
      --etcd-binary "$bin/etcd" \
      --kube-apiserver-binary "$bin/kube-apiserver" \
      --kube-controller-manager-binary "$bin/kube-controller-manager" \
      --kube-scheduler-binary "$bin/kube-scheduler" \
      --kwok-controller-binary "$bin/kwok" \
      --kube-authorization=true --kube-admission=true \
      --extra-args kube-apiserver=service-cluster-ip-range=10.96.0.0/16 \
      --extra-args kwok-controller=cidr=10.244.0.1/16 \
      --config "$here/stages.yaml" \
      --wait 2m >&2
    kwokctl get kubeconfig --name "$name" > "$kubeconfig.tmp"
    mv "$kubeconfig.tmp" "$kubeconfig"
  fi
  kubectl --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$here/nodes.yaml" >/dev/null
  # DRA: the DeviceClass and the ResourceSlices of the DRA-only GPU pools.
  kubectl --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$here/dra.yaml" >/dev/null
  kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node --all --timeout=120s >/dev/null
  log "ready. Use it with:"
  log "  export KUBECONFIG=$kubeconfig PATH=$bin:\$PATH"
  echo "$kubeconfig"
}

down() {
  # The dev operator (hack/dev.sh) goes with its cluster.
  pidfile="$CACHE/dev/$name/operator.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  kwokctl delete cluster --name "$name" >&2 || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kubeconfig) echo "$kubeconfig" ;;
  *) echo "usage: $0 up|down|kubeconfig [NAME]" >&2; exit 2 ;;
esac

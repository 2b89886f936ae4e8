#!/usr/bin/env bash
# Local Kubernetes control plane for modelops: real etcd, kube-apiserver
# (RBAC and PodSecurity admission on), kube-controller-manager and
# kube-scheduler, run as local processes by `kwokctl --runtime binary`, with
# KWOK simulating GPU and CPU nodes and the pods scheduled onto them.
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

# The flags below are part of the cluster: one started by an older version of
# this script (e.g. without the aggregation layer) is replaced, not reused.
profile="$KWOK_WORKDIR/clusters/$name/modelops.profile"
profile_key=$(sha256sum "$here/cluster.sh" "$here/stages.yaml" | sha256sum | cut -c1-12)

running() {
  [ -f "$kubeconfig" ] && [ "$(cat "$profile" 2>/dev/null)" = "$profile_key" ] &&
    kubectl --kubeconfig "$kubeconfig" --request-timeout=5s get --raw=/readyz >/dev/null 2>&1
}

up() {
  if running; then
    log "cluster '$name' is already running"
  else
    # A half-started or stale cluster (e.g. after a reboot) is replaced.
    kwokctl delete cluster --name "$name" >/dev/null 2>&1 || true
    log "starting cluster '$name' (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)"
    pki="$KWOK_WORKDIR/clusters/$name/pki"
    # The aggregation layer, for prometheus-adapter's custom.metrics.k8s.io
    # (hack/metrics/stack.sh). kwokctl already gives the API server a proxy
    # client certificate (its admin certificate, signed by its CA); the
    # request-header flags make the API server publish that CA and the header
    # names in kube-system/extension-apiserver-authentication, where an
    # aggregated API server reads them to trust the proxied user. There is no
    # kube-proxy, so a Service's ClusterIP leads nowhere: with aggregator
    # routing the API server dials the Service's endpoint address directly.
    #
    # The HPA controller syncs every 5 s instead of 15 s, so that scaling
    # tests and benchmarks wait less; the decision logic is unchanged.
    kwokctl create cluster --name "$name" --runtime binary \
      --kubeconfig "" \
      --etcd-binary "$bin/etcd" \
      --kube-apiserver-binary "$bin/kube-apiserver" \
      --kube-controller-manager-binary "$bin/kube-controller-manager" \
      --kube-scheduler-binary "$bin/kube-scheduler" \
      --kwok-controller-binary "$bin/kwok" \
      --kube-authorization=true --kube-admission=true \
      --extra-args kube-apiserver=service-cluster-ip-range=10.96.0.0/16 \
      --extra-args "kube-apiserver=requestheader-client-ca-file=$pki/ca.crt" \
      --extra-args kube-apiserver=requestheader-allowed-names=kwok-admin \
      --extra-args kube-apiserver=requestheader-username-headers=X-Remote-User \
      --extra-args kube-apiserver=requestheader-group-headers=X-Remote-Group \
      --extra-args kube-apiserver=requestheader-extra-headers-prefix=X-Remote-Extra- \
      --extra-args kube-apiserver=enable-aggregator-routing=true \
      --extra-args kube-controller-manager=horizontal-pod-autoscaler-sync-period=5s \
      --extra-args kwok-controller=cidr=10.244.0.1/16 \
      --config "$here/stages.yaml" \
      --wait 2m >&2
    kwokctl get kubeconfig --name "$name" > "$kubeconfig.tmp"
    mv "$kubeconfig.tmp" "$kubeconfig"
    echo "$profile_key" > "$profile"
  fi
  kubectl --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$here/nodes.yaml" >/dev/null
  kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node --all --timeout=120s >/dev/null
  log "ready. Use it with:"
  log "  export KUBECONFIG=$kubeconfig PATH=$bin:\$PATH"
  echo "$kubeconfig"
}

down() {
  # The dev operator and Tritons (hack/dev.sh) and the metrics stack go with
  # their cluster.
  for pidfile in "$CACHE/dev/$name/operator.pid" "$CACHE/dev/$name/triton-per-pod.pid"; do
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  "$root/hack/metrics/stack.sh" down "$name" || true
  kwokctl delete cluster --name "$name" >&2 || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kubeconfig) echo "$kubeconfig" ;;
  *) echo "usage: $0 up|down|kubeconfig [NAME]" >&2; exit 2 ;;
esac

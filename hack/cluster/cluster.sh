#!/usr/bin/env bash
# Local Kubernetes control plane for modelops: real etcd, kube-apiserver
# (RBAC and PodSecurity admission on), kube-controller-manager and
# kube-scheduler, run as local processes by `kwokctl --runtime binary`, with
# KWOK simulating GPU and CPU nodes and the pods scheduled onto them. GPUs come
# from the device plugin's extended resource (nodes.yaml) and, on two more
# pools, through Dynamic Resource Allocation (dra.yaml).
#
# Where this machine can run containers, a real node (`real-1`: kubelet,
# kube-proxy, containerd, CoreDNS; hack/node/node.sh) joins the KWOK nodes, so
# that pods can really run. MODELOPS_REAL_NODES=0 turns it off; where the
# machine cannot (no root, no containerd, no cgroup v1 memory controller), the
# cluster carries on with KWOK nodes only and prints the reason.
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
# this script (e.g. without the aggregation layer), or with another real-node
# address, is replaced, not reused.
profile="$KWOK_WORKDIR/clusters/$name/modelops.profile"
profile_key() {
  { sha256sum "$here/cluster.sh" "$here/stages.yaml" "$here"/metrics-server/*; echo "real-node=$real_node"; } |
    sha256sum | cut -c1-12
}
node_sh="$root/hack/node/node.sh"
real_node=""

running() {
  [ -f "$kubeconfig" ] && [ "$(cat "$profile" 2>/dev/null)" = "$(profile_key)" ] &&
    kubectl --kubeconfig "$kubeconfig" --request-timeout=5s get --raw=/readyz >/dev/null 2>&1
}

# kwokctl points metrics-server's APIService at an ExternalName Service
# (localhost), which aggregator routing cannot resolve ("unsupported service
# type"). It is routed like prometheus-adapter's (hack/metrics/stack.sh): a
# Service without selector and an EndpointSlice with this host's first
# non-loopback address (the API server refuses loopback endpoints), where
# metrics-server listens on all addresses.
route_metrics_server() {
  local kc=(kubectl --kubeconfig "$kubeconfig") port ip
  port=$("${kc[@]}" get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.spec.service.port}')
  ip=$({ ip -4 -o addr show scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4}'
         hostname -I 2>/dev/null | tr ' ' '\n' | grep -F .; } | head -n 1 || true)
  [ -n "$ip" ] || { log "no non-loopback IPv4 address for the API server to reach metrics-server"; return 1; }
  if [ "$("${kc[@]}" get service -n kube-system metrics-server -o jsonpath='{.spec.type}')" = ExternalName ]; then
    "${kc[@]}" delete service -n kube-system metrics-server >/dev/null
  fi
  "${kc[@]}" apply --server-side --force-conflicts -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}
spec:
  ports: [{name: https, port: $port, targetPort: $port, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-local
  namespace: kube-system
  labels: {kubernetes.io/service-name: metrics-server}
addressType: IPv4
ports: [{name: https, port: $port, protocol: TCP}]
endpoints: [{addresses: ["$ip"], conditions: {ready: true}}]
YAML
}

# kwokctl starts metrics-server without waiting for the API server, and
# metrics-server exits when its first request (the request-header CA) fails;
# kwokctl does not restart components. Restarting the cluster's processes
# (state is kept) with the API server already warm is the remedy.
ensure_metrics_server() {
  local pidfile="$KWOK_WORKDIR/clusters/$name/pids/metrics-server.pid"
  for attempt in 1 2 3; do
    sleep 3
    if kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then return 0; fi
    log "metrics-server exited at start (attempt $attempt); restarting the cluster's processes"
    kwokctl stop cluster --name "$name" >/dev/null 2>&1 || true
    kwokctl start cluster --name "$name" --wait 2m >/dev/null 2>&1 || true
  done
  log "metrics-server does not stay up; see $KWOK_WORKDIR/clusters/$name/logs/metrics-server.log"
  return 1
}

# The real node's network and runtime come first: the API server must
# advertise an address that the pods' network namespaces can reach.
prepare_real_node() {
  if [ "${MODELOPS_REAL_NODES:-1}" = 0 ]; then
    log "real node off (MODELOPS_REAL_NODES=0): KWOK nodes only"
    "$node_sh" down "$name" || true
    return 0
  fi
  if real_node=$("$node_sh" prepare "$name"); then
    log "real node: containerd runs containers here; the API server advertises $real_node"
  else
    real_node=""
    "$node_sh" down "$name" || true
    log "carrying on with KWOK nodes only"
  fi
}

# KWOK gives its simulated pods addresses in 10.244.0.0/16 that lead nowhere.
# Something that dials one (the operator polling a simulated pod's sidecar,
# Prometheus scraping it) must fail here at once, never send a packet off this
# machine: the range is a blackhole route while clusters run (shared by all of
# them, so it stays; it is harmless without one).
blackhole_simulated_pods() {
  ip route replace blackhole 10.244.0.0/16 2>/dev/null ||
    log "warning: could not add a blackhole route for the simulated pods' 10.244.0.0/16 (not root?)"
}

up() {
  blackhole_simulated_pods
  prepare_real_node
  if running; then
    log "cluster '$name' is already running"
  else
    # A half-started or stale cluster (e.g. after a reboot) is replaced.
    kwokctl delete cluster --name "$name" >/dev/null 2>&1 || true
    real_args=()
    if [ -n "$real_node" ]; then
      # Pods reach the API server through the kubernetes Service, whose
      # endpoint is this address (the host's end of the node's link).
      real_args+=(--extra-args "kube-apiserver=advertise-address=$real_node")
    fi
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
    # PodTemplates (which modelops never uses) bypass the API server's watch
    # cache, so a watch on them is answered by etcd itself: after an etcd
    # compaction it gets a real 410 Gone (tests/integration/test_informer_api.py),
    # which the cache would hide behind a replay of its own history.
    #
    # The HPA controller syncs every 5 s instead of 15 s, so that scaling
    # tests and benchmarks wait less; the decision logic is unchanged.
    #
    # metrics-server (metrics.k8s.io, the HPA's cpu metric) runs as a local
    # process too, built from its Go module; it scrapes the kubelet resource
    # metrics KWOK simulates for each node, whose pod usage comes from the
    # pod annotations kwok.x-k8s.io/usage-cpu and usage-memory. Its objects
    # come from ./metrics-server instead of a download.
    ms_bin=$("$root/hack/metrics-server/build.sh")
    # kwokctl caches a manifest by its source path forever, so the source is a
    # copy named by its content.
    ms_key=$(cat "$here"/metrics-server/* | sha256sum | cut -c1-12)
    ms_manifests="$KWOK_WORKDIR/manifests/metrics-server-$ms_key"
    if [ ! -d "$ms_manifests" ]; then
      mkdir -p "$ms_manifests.partial" && cp "$here"/metrics-server/* "$ms_manifests.partial/"
      mv "$ms_manifests.partial" "$ms_manifests"
    fi
    # The serving certificate also names the kubernetes Service's ClusterIP
    # (in-cluster clients on the real node dial it) and the real node's
    # address of the API server. The API server reaches a kubelet (logs,
    # exec, the pod proxy) by its InternalIP, with kwokctl's admin
    # certificate: no DNS here knows the node's hostname.
    #
    # KWOK manages only the nodes annotated kwok.x-k8s.io/node=fake (all of
    # nodes.yaml's and dra.yaml's), never the real node, nor the pods bound to
    # it. These are component patches in the file, not --extra-args: kwokctl
    # v0.8.0 indexes a second --extra-args of a component other than the first
    # one out of range (a panic).
    sans="\"10.96.0.1\"${real_node:+, \"$real_node\"}"
    cat > "$ms_manifests.$name.kwokctl.yaml" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options: {metricsServerManifests: ["$ms_manifests"], kubeApiserverCertSANs: [$sans]}
componentsPatches:
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: "kwok.x-k8s.io/node=fake"}
YAML
    kwokctl create cluster --name "$name" --runtime binary \
      --kubeconfig "" \
      --etcd-binary "$bin/etcd" \
      --kube-apiserver-binary "$bin/kube-apiserver" \
      --kube-controller-manager-binary "$bin/kube-controller-manager" \
      --kube-scheduler-binary "$bin/kube-scheduler" \
      --kwok-controller-binary "$bin/kwok" \
      --enable metrics-server --metrics-server-binary "$ms_bin/metrics-server" \
      --kube-authorization=true --kube-admission=true \
      --extra-args kube-apiserver=service-cluster-ip-range=10.96.0.0/16 \
      --extra-args "kube-apiserver=requestheader-client-ca-file=$pki/ca.crt" \
      --extra-args kube-apiserver=requestheader-allowed-names=kwok-admin \
      --extra-args kube-apiserver=requestheader-username-headers=X-Remote-User \
      --extra-args kube-apiserver=requestheader-group-headers=X-Remote-Group \
      --extra-args kube-apiserver=requestheader-extra-headers-prefix=X-Remote-Extra- \
      --extra-args kube-apiserver=enable-aggregator-routing=true \
      --extra-args kube-apiserver=watch-cache-sizes=podtemplates#0 \
      --extra-args kube-controller-manager=horizontal-pod-autoscaler-sync-period=5s \
      --extra-args kwok-controller=cidr=10.244.0.1/16 \
      --extra-args kube-apiserver=kubelet-preferred-address-types=InternalIP,Hostname \
      --extra-args "kube-apiserver=kubelet-client-certificate=$pki/admin.crt" \
      --extra-args "kube-apiserver=kubelet-client-key=$pki/admin.key" \
      "${real_args[@]}" \
      --config "$here/stages.yaml" --config "$ms_manifests.$name.kwokctl.yaml" \
      --wait 2m >&2
    kwokctl get kubeconfig --name "$name" > "$kubeconfig.tmp"
    mv "$kubeconfig.tmp" "$kubeconfig"
    ensure_metrics_server
    profile_key > "$profile"
  fi
  kubectl --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$here/nodes.yaml" >/dev/null
  # DRA: the DeviceClass and the ResourceSlices of the DRA-only GPU pools.
  kubectl --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$here/dra.yaml" >/dev/null
  route_metrics_server
  if [ -n "$real_node" ]; then
    if ! "$node_sh" up "$name"; then
      # Removed, so that the KWOK nodes stay usable; the tests that need the
      # real node fail with the reason (hack/node/node.sh status).
      "$node_sh" down "$name" || true
      log "the real node did not come up: KWOK nodes only (hack/node/node.sh status $name)"
    fi
  fi
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
  "$node_sh" down "$name" || true
  kwokctl delete cluster --name "$name" >&2 || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kubeconfig) echo "$kubeconfig" ;;
  *) echo "usage: $0 up|down|kubeconfig [NAME]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The metrics path of the local cluster: a real Prometheus and a real
# prometheus-adapter, run as local processes (the cluster's pods are simulated,
# so nothing can run in them), the adapter registered as custom.metrics.k8s.io
# through the API server's aggregation layer, so that the real HPA controller
# in kube-controller-manager reads Triton's queue time per pod.
#
#   stack.sh up [NAME]     start (or reuse) Prometheus and the adapter for cluster NAME
#   stack.sh down [NAME]   stop them and delete their state
#   stack.sh env [NAME]    print the stack's addresses as shell assignments
#
# What Prometheus scrapes is decided by files in $state/targets (file_sd):
#   triton-*.json   Triton metrics endpoints; each target group's labels carry
#                   the `namespace` and `pod` of the simulated pod it stands for
#   dcgm-*.json     dcgm-exporter-shaped endpoints, scraped with honor_labels
#                   (their series name their pod themselves, as the real
#                   exporter's pod mapping does)
# Whoever runs a real Triton for a simulated pod (the e2e tests, hack/dev.sh)
# writes such a file; Prometheus picks it up within seconds. This attribution
# is a property of the local profile only: in a real cluster the Prometheus
# Operator's PodMonitor adds `namespace` and `pod` from service discovery.
#
# The adapter loads the shipped rules, manifests/prometheus-adapter-rules.yaml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
name=${2:-${MODELOPS_CLUSTER:-modelops}}
state="$CACHE/metrics/$name"
RULES="$root/manifests/prometheus-adapter-rules.yaml"
# The Service the APIService points at; its endpoint is the adapter's address.
SVC_NS=monitoring
SVC_NAME=prometheus-adapter

log() { echo "metrics: $*" >&2; }

kube_bin=$("$root/hack/controlplane/build.sh")
export PATH="$kube_bin:$PATH"

cluster_kubeconfig() {
  # KUBECONFIG wins, so tests can point the stack at the cluster they use.
  if [ -n "${KUBECONFIG:-}" ]; then echo "$KUBECONFIG"; else "$root/hack/cluster/cluster.sh" kubeconfig "$name"; fi
}

alive() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

stop() {
  if alive "$1"; then
    kill "$(cat "$state/$1.pid")" 2>/dev/null || true
    for _ in $(seq 50); do alive "$1" || break; sleep 0.1; done
  fi
  rm -f "$state/$1.pid"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The API server refuses loopback endpoint addresses, and aggregator routing
# dials the endpoint itself, so the adapter listens on this host's first
# non-loopback IPv4 address.
host_ip() {
  { ip -4 -o addr show scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4}'
    hostname -I 2>/dev/null | tr ' ' '\n' | grep -F .; } | head -n 1 || true
}

certificates() {
  # A CA of the stack's own, given to the APIService as caBundle, and the
  # adapter's serving certificate for the name the API server checks
  # (<service>.<namespace>.svc) and the address it dials.
  local ip=$1 pki="$state/pki"
  if [ -f "$pki/serving.crt" ] && [ "$(cat "$pki/ip" 2>/dev/null)" = "$ip" ]; then return; fi
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=modelops-metrics-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$SVC_NAME.$SVC_NS.svc" \
    -keyout "$pki/serving.key" -out "$pki/serving.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local,IP:%s\nextendedKeyUsage=serverAuth\n' \
    "$SVC_NAME" "$SVC_NS" "$SVC_NAME" "$SVC_NS" "$ip" > "$pki/ext.cnf"
  openssl x509 -req -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 3650 -extfile "$pki/ext.cnf" -out "$pki/serving.crt" 2>/dev/null
  echo "$ip" > "$pki/ip"
}

start_prometheus() {
  mkdir -p "$state/targets" "$state/prometheus-data"
  if alive prometheus; then return; fi
  local port
  port=$(free_port)
  # Short intervals: the HPA controller syncs every 5 s in the local profile;
  # the adapter rules' rate() windows are 1 m, so a 2 s scrape gives them
  # enough samples within seconds of a target appearing.
  cat > "$state/prometheus.yml" <<YAML
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: triton
    file_sd_configs:
      - files: ["$state/targets/triton-*.json"]
        refresh_interval: 5s
  - job_name: dcgm
    honor_labels: true
    file_sd_configs:
      - files: ["$state/targets/dcgm-*.json"]
        refresh_interval: 5s
YAML
  nohup prometheus --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/prometheus-data" --storage.tsdb.retention.time=2h \
    --web.listen-address="127.0.0.1:$port" --web.enable-lifecycle \
    > "$state/prometheus.log" 2>&1 &
  echo $! > "$state/prometheus.pid"
  echo "http://127.0.0.1:$port" > "$state/prometheus.url"
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && return
    alive prometheus || break
    sleep 0.2
  done
  log "Prometheus did not become ready; its log:"; tail -n 20 "$state/prometheus.log" >&2; exit 1
}

start_adapter() {
  local kubeconfig=$1 ip=$2 bin port
  bin=$("$root/hack/prometheus-adapter/build.sh")
  # Reused only while it still talks to this cluster (a re-created cluster has
  # new certificates, hence a new kubeconfig) and this Prometheus.
  local wants
  wants="$(sha256sum < "$kubeconfig" | cut -c1-16) $(cat "$state/prometheus.url")"
  if alive adapter && [ "$(cat "$state/adapter.for" 2>/dev/null)" = "$wants" ]; then
    return
  fi
  stop adapter
  port=$(free_port)
  # The adapter authenticates the API server's proxied requests with the
  # request-header CA the API server publishes (kube-system/
  # extension-apiserver-authentication) and delegates authorization to it.
  # It uses the cluster's admin credentials: the local profile's shortcut for
  # the RBAC a real install grants it (system:auth-delegator and read access
  # to pods, nodes and namespaces).
  nohup "$bin/prometheus-adapter" \
    --secure-port="$port" --bind-address="$ip" \
    --tls-cert-file="$state/pki/serving.crt" --tls-private-key-file="$state/pki/serving.key" \
    --lister-kubeconfig="$kubeconfig" \
    --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
    --prometheus-url="$(cat "$state/prometheus.url")/" \
    --metrics-relist-interval=5s \
    --config="$RULES" \
    --v=2 > "$state/adapter.log" 2>&1 &
  echo $! > "$state/adapter.pid"
  echo "$wants" > "$state/adapter.for"
  echo "$ip:$port" > "$state/adapter.address"
}

register() {
  local kubeconfig=$1 ip port ca
  ip=${2}; port=$(cut -d: -f2 < "$state/adapter.address")
  ca=$(base64 -w0 < "$state/pki/ca.crt")
  # A Service without a selector and an EndpointSlice written here: the
  # endpoint is this host, where the adapter listens.
  # Both versions the adapter serves, as its upstream manifests register
  # them; clients (the HPA controller) pick the preferred one by discovery.
  local apiservices=""
  for version in v1beta1 v1beta2; do
    apiservices+="---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: $version.custom.metrics.k8s.io
  labels: {app.kubernetes.io/part-of: modelops-local-metrics}
spec:
  group: custom.metrics.k8s.io
  version: $version
  service: {namespace: $SVC_NS, name: $SVC_NAME, port: 443}
  caBundle: $ca
  groupPriorityMinimum: 100
  versionPriority: $([ $version = v1beta2 ] && echo 200 || echo 100)
"
  done
  kubectl --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $SVC_NS}
---
apiVersion: v1
kind: Service
metadata:
  name: $SVC_NAME
  namespace: $SVC_NS
spec:
  ports: [{name: https, port: 443, targetPort: $port, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $SVC_NAME-local
  namespace: $SVC_NS
  labels:
    kubernetes.io/service-name: $SVC_NAME
    endpointslice.kubernetes.io/managed-by: modelops.io-local-metrics
addressType: IPv4
ports: [{name: https, port: $port, protocol: TCP}]
endpoints: [{addresses: ["$ip"], conditions: {ready: true}}]
$apiservices
YAML
}

up() {
  command -v prometheus >/dev/null || { log "prometheus is not installed: run hack/install-prometheus.sh"; exit 1; }
  local kubeconfig ip
  kubeconfig=$(cluster_kubeconfig)
  [ -f "$kubeconfig" ] || { log "no kubeconfig for cluster '$name' ($kubeconfig): start it first"; exit 1; }
  ip=$(host_ip)
  [ -n "$ip" ] || { log "this host has no non-loopback IPv4 address for the API server to dial"; exit 1; }
  mkdir -p "$state"
  certificates "$ip"
  start_prometheus
  start_adapter "$kubeconfig" "$ip"
  register "$kubeconfig" "$ip"
  if ! kubectl --kubeconfig "$kubeconfig" wait --for=condition=Available --timeout=90s \
      apiservice/v1beta1.custom.metrics.k8s.io apiservice/v1beta2.custom.metrics.k8s.io >/dev/null; then
    log "the custom metrics APIService is not Available:"
    kubectl --kubeconfig "$kubeconfig" get apiservice v1beta1.custom.metrics.k8s.io \
      -o jsonpath='{.status.conditions[0].message}{"\n"}' >&2 || true
    tail -n 20 "$state/adapter.log" >&2
    exit 1
  fi
  log "Prometheus $(cat "$state/prometheus.url"), prometheus-adapter https://$(cat "$state/adapter.address") (custom.metrics.k8s.io)"
  echo "$state"
}

down() {
  stop adapter
  stop prometheus
  local kubeconfig
  kubeconfig=$(cluster_kubeconfig)
  if [ -f "$kubeconfig" ]; then
    kubectl --kubeconfig "$kubeconfig" --request-timeout=5s delete apiservice \
      v1beta1.custom.metrics.k8s.io v1beta2.custom.metrics.k8s.io --ignore-not-found >/dev/null 2>&1 || true
  fi
  rm -rf "$state"
}

env_() {
  if alive prometheus && alive adapter; then
    echo "MODELOPS_METRICS_RUNNING=1"
    echo "MODELOPS_PROMETHEUS_URL=$(cat "$state/prometheus.url")"
    echo "MODELOPS_METRICS_TARGETS=$state/targets"
  else
    echo "MODELOPS_METRICS_RUNNING=0"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_ ;;
  *) echo "usage: $0 up|down|env [NAME]" >&2; exit 2 ;;
esac

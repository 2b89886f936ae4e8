#!/usr/bin/env bash
# NetworkPolicy enforcement for the real node of hack/node/node.sh: kube-router's
# network policy controller (built here by hack/netpol/build.sh) runs as a
# process in the node's network namespace, like kube-proxy, and turns the
# cluster's NetworkPolicies into iptables rules and ipsets there. Only its
# firewall runs: no BGP router, no service proxy (kube-proxy has the
# Services), no CNI config (the bridge plugin has the pod network).
#
#   netpol.sh up NAME       start it (node.sh up calls this once the node is Ready)
#   netpol.sh down NAME     stop it and remove its rules and sets (node.sh down calls this)
#   netpol.sh status NAME   whether it runs, or why not
#   netpol.sh info NAME     the same as one JSON line, with the e2e image's reference (for tests)
#
# MODELOPS_NETPOL=0 leaves it off (the NetworkPolicy e2e then skips, saying so).
#
# Why kube-router: the bridge CNI enforces nothing; kube-network-policies
# (SIG Network's agent) needs the nftables `queue` expression, which the
# kernels here lack (CONFIG_NFT_QUEUE unset), while kube-router needs only
# iptables' set/physdev/mark matches and ipset, which they have.
#
# Bridged pod-to-pod traffic reaches its FORWARD rules because node.sh sets
# net.bridge.bridge-nf-call-iptables in the namespace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
export KWOK_WORKDIR=${KWOK_WORKDIR:-$CACHE/kwok}

cmd=${1:-}
name=${2:-${MODELOPS_CLUSTER:-modelops}}
# hack/node/node.sh's layout: its work dir, runtime dir and namespace.
W="$KWOK_WORKDIR/realnodes/$name"
R="/run/modelops/$name"
NETNS="modelops-$name"
NODE=real-1
N="$W/netpol"                           # this agent's configs, certificate, reason files
kubeconfig="$KWOK_WORKDIR/clusters/$name/modelops.kubeconfig"
pki="$KWOK_WORKDIR/clusters/$name/pki"
# The cluster's Service range (hack/cluster/cluster.sh): traffic to it is
# left to kube-proxy's DNAT, the policies apply to the pod it lands on.
SERVICE_CIDR=10.96.0.0/16
HEALTH_PORT=20244
pidfile="$W/pids/kube-router.pid"
logf="$W/logs/kube-router.log"

log() { echo "netpol: $*" >&2; }
# As node.sh: the machine cannot (unavailable, exit 3) or it can and the
# agent did not come up (broken, exit 4); info reports either to the tests.
fail() { mkdir -p "$N" && echo "$*" > "$N/unavailable"; log "no NetworkPolicy enforcement: $*"; exit 3; }
broken() { mkdir -p "$N" && echo "$*" > "$N/broken"; log "NetworkPolicy agent failed: $*"; exit 4; }
innet() { nsenter --net="/run/netns/$NETNS" "$@"; }
alive() { local p; p=$(cat "$pidfile" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }
kc() { kubectl --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }
kubectl_on_path() { command -v kubectl >/dev/null || PATH="$("$root/hack/controlplane/build.sh"):$PATH"; }
api_port() { sed -n 's#.*server: https://[^:]*:\([0-9]*\).*#\1#p' "$kubeconfig" | head -n 1; }

# The API server as the node's namespace reaches it: the host's end of its link.
host_ip() { echo "10.201.$(cat "$W/index").1"; }

stop_agent() {
  local p
  p=$(cat "$pidfile" 2>/dev/null) || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# Its identity: a client certificate from the cluster's CA, bound to a
# ClusterRole that reads what the controller watches (nothing it may write).
credentials() {
  mkdir -p "$N"
  if ! [ -f "$N/kube-router.crt" ]; then
    openssl req -new -newkey rsa:2048 -nodes -keyout "$N/kube-router.key" -out "$N/kube-router.csr" \
      -subj "/CN=modelops:kube-router" 2>/dev/null
    openssl x509 -req -in "$N/kube-router.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -out "$N/kube-router.crt" -days 365 2>/dev/null
  fi
  cat > "$N/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority: $pki/ca.crt, server: "https://$(host_ip):$(api_port)"}
  name: local
users:
- name: kube-router
  user: {client-certificate: $N/kube-router.crt, client-key: $N/kube-router.key}
contexts:
- context: {cluster: local, user: kube-router}
  name: local
current-context: local
KC
  kc apply --server-side --force-conflicts -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "modelops:kube-router"}
rules:
# kube-router starts informers for all of these, also those only its router
# and proxy (not run here) use.
- {apiGroups: [""], resources: [namespaces, pods, services, nodes, endpoints], verbs: [get, list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "modelops:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "modelops:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "modelops:kube-router"}]
YAML
}

# The controller has set up its chains and synced the policies once.
synced() {
  innet iptables -w 5 -S KUBE-ROUTER-FORWARD >/dev/null 2>&1 &&
    innet timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HEALTH_PORT" 2>/dev/null
}

up() {
  [ -f "$kubeconfig" ] || { log "cluster '$name' is not up (no $kubeconfig)"; exit 1; }
  [ -e "/run/netns/$NETNS" ] && [ -f "$W/index" ] || { log "the real node of '$name' is not up (hack/node/node.sh up $name)"; exit 1; }
  kubectl_on_path
  local t0=$SECONDS
  rm -f "$N/unavailable" "$N/broken"
  if [ "${MODELOPS_NETPOL:-1}" = 0 ]; then
    stop_agent
    remove_rules || true
    fail "turned off (MODELOPS_NETPOL=0)"
  fi
  "$here/install-deps.sh" || fail "ipset missing and not installable (hack/netpol/install-deps.sh)"
  # What the controller's rules need from the kernel, tried in the node's
  # namespace on a throwaway set and chain.
  if ! innet ipset create modelops-probe hash:ip -exist 2>/dev/null ||
     ! innet iptables -w 5 -N MODELOPS-PROBE 2>/dev/null ||
     ! innet iptables -w 5 -A MODELOPS-PROBE -m set --match-set modelops-probe src \
         -m physdev --physdev-is-bridged -m mark --mark 0x10000/0x10000 -j RETURN 2>/dev/null; then
    innet iptables -w 5 -F MODELOPS-PROBE 2>/dev/null || true
    innet iptables -w 5 -X MODELOPS-PROBE 2>/dev/null || true
    innet ipset destroy modelops-probe 2>/dev/null || true
    fail "the kernel lacks ipset or iptables' set/physdev/mark matches"
  fi
  innet iptables -w 5 -F MODELOPS-PROBE; innet iptables -w 5 -X MODELOPS-PROBE; innet ipset destroy modelops-probe
  local bin images
  bin=$("$here/build.sh") || fail "building kube-router failed (hack/netpol/build.sh)"
  images=$("$here/images.sh") || fail "building the netcheck image failed (hack/netpol/images.sh)"
  ctr --address "$R/containerd.sock" -n k8s.io images import "$images/netcheck.tar" >/dev/null ||
    broken "ctr images import netcheck failed"
  mkdir -p "$N" && cp "$images/images.env" "$N/images.env"
  # A cluster replaced under the node (new CA, new API port): a new
  # certificate and a restart, as node.sh does for the kubelet.
  local stamp
  stamp="$(sha256sum < "$pki/ca.crt" | cut -c1-16) $(api_port)"
  if [ "$(cat "$N/cluster.stamp" 2>/dev/null)" != "$stamp" ]; then
    stop_agent
    rm -f "$N"/kube-router.{crt,key,csr}
    echo "$stamp" > "$N/cluster.stamp"
  fi
  credentials
  if ! alive; then
    mkdir -p "$W/pids" "$W/logs"
    setsid nsenter --net="/run/netns/$NETNS" "$bin/kube-router" \
      --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
      --enable-pod-egress=false --kubeconfig="$N/kubeconfig" --hostname-override="$NODE" \
      --service-cluster-ip-range="$SERVICE_CIDR" --health-port="$HEALTH_PORT" --metrics-port=0 \
      >>"$logf" 2>&1 </dev/null &
    echo $! > "$pidfile"
  fi
  for _ in $(seq 60); do
    synced && break
    alive || broken "kube-router exited (see $logf)"
    sleep 0.5
  done
  synced || broken "kube-router did not set up its chains in 30s (see $logf)"
  log "kube-router $("$bin/kube-router" --version 2>&1 | sed -n 's/.* version \(v[^,]*\),.*/\1/p') enforces NetworkPolicies on $NODE (up in $((SECONDS - t0))s)"
}

# Its rules and sets, where the namespace outlives this (node.sh down deletes
# the namespace, which takes them anyway). kube-router's own --cleanup-config
# is not used: in v2.1.0 it panics in the service proxy's cleanup before it
# reaches the firewall's.
remove_rules() {
  local chain n c
  for chain in INPUT FORWARD OUTPUT; do
    # The jumps into its chains, highest rule number first.
    for n in $(innet iptables -w 5 -L "$chain" -n --line-numbers | awk '/kube-router netpol/ {print $1}' | sort -rn); do
      innet iptables -w 5 -D "$chain" "$n"
    done
  done
  local chains
  chains=$(innet iptables -w 5 -S | awk '$1 == "-N" && $2 ~ /^(KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-)/ {print $2}')
  for c in $chains; do innet iptables -w 5 -F "$c"; done
  for c in $chains; do innet iptables -w 5 -X "$c"; done
  # Every ipset in the node's namespace is kube-router's (kube-proxy's
  # iptables mode makes none).
  innet ipset destroy 2>/dev/null || true
}

down() {
  stop_agent
  if [ -e "/run/netns/$NETNS" ]; then remove_rules || log "warning: some of kube-router's rules are left"; fi
  if [ -f "$kubeconfig" ] && kubectl_on_path 2>/dev/null; then
    kc delete clusterrolebinding,clusterrole modelops:kube-router --ignore-not-found >/dev/null 2>&1 || true
  fi
  rm -rf "$N"
}

status() {
  [ -f "$N/unavailable" ] && echo "unavailable: $(cat "$N/unavailable")"
  [ -f "$N/broken" ] && echo "failed: $(cat "$N/broken")"
  if alive; then echo "kube-router: running (pid $(cat "$pidfile"))"; else echo "kube-router: stopped"; fi
}

info() {
  local reason="" broke="" image="" running=false
  [ -f "$N/unavailable" ] && reason=$(cat "$N/unavailable")
  [ -f "$N/broken" ] && broke=$(cat "$N/broken")
  [ -f "$N/images.env" ] && image=$(sed -n 's/^NETCHECK_IMAGE=//p' "$N/images.env")
  alive && running=true
  python3 -c 'import json, sys
keys = ("running", "unavailable", "broken", "image", "log")
info = dict(zip(keys, sys.argv[1:]))
info["running"] = info["running"] == "true"
print(json.dumps(info))' "$running" "$reason" "$broke" "$image" "$logf"
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  info) info ;;
  *) echo "usage: $0 up|down|status|info NAME" >&2; exit 2 ;;
esac

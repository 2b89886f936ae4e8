#!/usr/bin/env bash
# A real Kubernetes node beside the KWOK nodes of the local cluster
# (hack/cluster/cluster.sh): containerd + runc and the Debian CNI plugins run
# the pods, a kubelet and kube-proxy built from the control plane's pin
# (build.sh) manage them, and CoreDNS (images.sh) answers cluster.local.
#
#   node.sh prepare NAME   before the API server starts: network, containerd, images, a probe container;
#                          prints the address the API server must advertise (exit 3 + reason: no real node here)
#   node.sh up NAME        kubelet, kube-proxy, node `real-1` Ready with its fake GPUs, CoreDNS
#   node.sh down NAME      stop all of it and remove what it made (processes, containers, mounts, netns, cgroups)
#   node.sh status NAME    what runs, or why it does not (the reason file)
#   node.sh info NAME      the same as one JSON line, with the images' references (for tests)
#   node.sh import NAME ARCHIVE...   load more OCI image archives into the node's containerd
#
# Isolation: the node lives in its own network namespace, joined to the host by
# a veth pair (host 10.201.I.1, node 10.201.I.2; I from the cluster's name).
# Pods get 10.202.I.0/24 on a bridge inside it. The namespace has no default
# route, so pods reach only this machine (the API server on 10.201.I.1); and
# kube-proxy's and the CNI plugins' iptables rules, the bridge and the ports
# of the kubelet and kube-proxy are the namespace's own, so clusters of other
# worktrees on the same machine each keep their own node, and `down` removes
# all of it by deleting the namespace. The host has a route to the pod subnet,
# so tests and benchmarks on the host reach pod IPs directly.
#
# The daemons join the namespace with `nsenter --net` only (not `ip netns
# exec`, which also makes a private mount namespace): the kubelet's volume
# mounts must be visible to containerd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
export KWOK_WORKDIR=${KWOK_WORKDIR:-$CACHE/kwok}

cmd=${1:-}
name=${2:-${MODELOPS_CLUSTER:-modelops}}
NODE=real-1
GPUS=${MODELOPS_REAL_NODE_GPUS:-2}
# The labels NVIDIA's GPU feature discovery puts on a node, for the fake GPUs:
# a ModelDeployment asking for a product (the sample: H100) schedules here.
GPU_PRODUCT=${MODELOPS_REAL_NODE_GPU_PRODUCT:-NVIDIA-H100-80GB-HBM3}
DNS_IP=10.96.0.10
W="$KWOK_WORKDIR/realnodes/$name"     # configs, logs, kubelet and containerd roots
R="/run/modelops/$name"               # sockets and runtime state (short paths: unix sockets cap at 108 bytes)
NETNS="modelops-$name"
CGROOT="/modelops-$name"
kubeconfig="$KWOK_WORKDIR/clusters/$name/modelops.kubeconfig"
pki="$KWOK_WORKDIR/clusters/$name/pki"

log() { echo "node: $*" >&2; }
# Two ways to fail, told apart for the tests' real_node fixture
# (tests/support/real_node.py): this machine cannot run a real node (the
# fixture skips with the reason), or it can and the node did not come up (a
# bug: the fixture fails with it).
fail() { # the machine cannot: $W/unavailable, exit 3
  mkdir -p "$W" && echo "$*" > "$W/unavailable"
  log "no real node: $*"
  exit 3
}
broken() { # the machine can, the node did not come up: $W/broken, exit 4
  mkdir -p "$W" && echo "$*" > "$W/broken"
  log "real node failed: $*"
  exit 4
}
innet() { nsenter --net="/run/netns/$NETNS" "$@"; }
ctr_() { ctr --address "$R/containerd.sock" -n k8s.io "$@"; }

# The cluster's index I (20..219): a hash of its name, moved on while another
# link already holds 10.201.I.0/24. Kept in $W/index so that it is stable.
index() {
  if [ -f "$W/index" ]; then cat "$W/index"; return; fi
  local i=$(( $(echo -n "$name" | cksum | cut -d' ' -f1) % 200 + 20 ))
  for _ in $(seq 200); do
    if [ -z "$(ip -4 route show "10.201.$i.0/24")" ] && [ -z "$(ip -4 route show "10.202.$i.0/24")" ]; then
      mkdir -p "$W" && echo "$i" > "$W/index"
      echo "$i"
      return
    fi
    i=$(( (i - 20 + 1) % 200 + 20 ))
  done
  fail "no free 10.201.I.0/24 subnet for the node's link"
}

addresses() {
  I=$(index)
  HOST_IP=10.201.$I.1
  NODE_IP=10.201.$I.2
  POD_CIDR=10.202.$I.0/24
  VETH_HOST=mo${I}h
}

pidfile() { echo "$W/pids/$1.pid"; }
alive() { local p; p=$(cat "$(pidfile "$1")" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

# start NAME LOG CMD...: a daemon in the node's network namespace, in its own
# session so that it outlives this script.
start() {
  local what=$1 logf=$2; shift 2
  mkdir -p "$W/pids" "$W/logs"
  setsid nsenter --net="/run/netns/$NETNS" "$@" >>"$W/logs/$logf" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$what")"
}

stop() { # stop NAME: TERM, up to 10 s, then KILL; its process group with it
  local p
  p=$(cat "$(pidfile "$1")" 2>/dev/null) || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 -- "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$1")"
}

wait_for() { # wait_for SECONDS WHAT CMD...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $(( secs * 2 ))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}

# --- prepare: the network, containerd, the images ---------------------------

network_up() {
  addresses
  if ! [ -e "/run/netns/$NETNS" ]; then
    ip netns add "$NETNS"
  fi
  if ! ip link show "$VETH_HOST" >/dev/null 2>&1; then
    ip link add "$VETH_HOST" type veth peer name eth0 netns "$NETNS"
    ip addr add "$HOST_IP/24" dev "$VETH_HOST"
    ip link set "$VETH_HOST" up
    innet ip addr add "$NODE_IP/24" dev eth0
    innet ip link set eth0 up
    innet ip link set lo up
  fi
  # The host reaches pods through the node (tests, benchmarks, the API
  # server's pod proxy); the node has no default route, by design.
  ip route replace "$POD_CIDR" via "$NODE_IP" dev "$VETH_HOST"
  innet sysctl -qw net.ipv4.ip_forward=1
  # Pod -> Service -> pod on the same bridge passes iptables only when bridged
  # frames are handed to netfilter (br_netfilter, per namespace).
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    innet sysctl -qw net.bridge.bridge-nf-call-iptables=1 || true
  fi
}

write_containerd_config() {
  local pause=$1
  mkdir -p "$W/containerd" "$W/cni/net.d" "$R"
  cat > "$W/containerd/config.toml" <<EOF
version = 2
root = "$W/containerd/root"
state = "$R/containerd"
# Storage drivers that cannot work here are not loaded (they only log errors).
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$R/containerd.sock"
[ttrpc]
  address = "$R/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj is refused, so the
  # runtime must not try to set one below its own.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /run/netns, where other
  # clusters' runtimes put theirs: down removes exactly this node's.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
EOF
  # bridge + host-local + portmap. ipMasq: pods' traffic to the host leaves
  # with the node's address. host-local keeps its leases under $W, not the
  # machine-wide /var/lib/cni.
  cat > "$W/cni/net.d/10-modelops.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelops",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$W/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

containerd_up() {
  if alive containerd && ctr_ version >/dev/null 2>&1; then return 0; fi
  start containerd containerd.log containerd --config "$W/containerd/config.toml"
  wait_for 30 containerd ctr_ version || fail "containerd did not start (see $W/logs/containerd.log)"
}

prepare() {
  [ "$(id -u)" = 0 ] || fail "not root: a kubelet and containerd need root"
  [ -d /sys/fs/cgroup/memory ] || fail "no cgroup v1 memory controller at /sys/fs/cgroup/memory"
  "$here/install-deps.sh" || fail "containerd/runc/CNI plugins/iptables missing and not installable (hack/node/install-deps.sh)"
  "$here/build.sh" >/dev/null || fail "building kubelet, kube-proxy or CoreDNS failed (hack/node/build.sh)"
  local images
  images=$("$here/images.sh") || fail "building the node's images failed (hack/node/images.sh)"
  # shellcheck disable=SC1091
  . "$images/images.env"
  rm -f "$W/unavailable"
  mkdir -p "$W"
  cp "$images/images.env" "$W/images.env"
  network_up
  write_containerd_config "$PAUSE_IMAGE"
  containerd_up
  for img in pause nodeprobe coredns; do
    ctr_ images import --no-unpack=false "$images/$img.tar" >/dev/null ||
      fail "ctr images import $img failed (see $W/logs/containerd.log)"
  done
  # The capability probe: this machine can run a container (runc, cgroups,
  # overlayfs), not only start containerd.
  local out
  ctr_ containers rm modelops-probe >/dev/null 2>&1 || true
  if ! out=$(timeout 60 ctr --address "$R/containerd.sock" -n k8s.io run --rm \
        "$NODEPROBE_IMAGE" modelops-probe /nodeprobe write /tmp/probe 2>&1) ||
      ! grep -q 'write: ok' <<<"$out"; then
    fail "containerd cannot run a container here: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  fi
  echo "$HOST_IP"
}

# --- up: certificates, kubelet, kube-proxy, GPUs, DNS ------------------------

api_port() { sed -n 's#.*server: https://[^:]*:\([0-9]*\).*#\1#p' "$kubeconfig" | head -n 1; }

# client_kubeconfig NAME CN ORG: a client certificate signed by the cluster's
# CA (kwokctl's pki) and a kubeconfig for the API server at the host's end
# of the node's link.
client_kubeconfig() {
  local who=$1 cn=$2 org=$3 dir="$W/pki"
  mkdir -p "$dir"
  if ! [ -f "$dir/$who.crt" ]; then
    openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/$who.key" -out "$dir/$who.csr" \
      -subj "/O=$org/CN=$cn" 2>/dev/null
    openssl x509 -req -in "$dir/$who.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -out "$dir/$who.crt" -days 365 2>/dev/null
  fi
  cat > "$W/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority: $pki/ca.crt, server: "https://$HOST_IP:$(api_port)"}
  name: local
users:
- name: $who
  user: {client-certificate: $dir/$who.crt, client-key: $dir/$who.key}
contexts:
- context: {cluster: local, user: $who}
  name: local
current-context: local
EOF
}

kc() { kubectl --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }
# kubectl from the control plane's build, where it is not on PATH already
# (cluster.sh puts it there). Only called where the cluster exists, so the
# control plane is built and this is quick.
kubectl_on_path() {
  command -v kubectl >/dev/null || PATH="$("$root/hack/controlplane/build.sh"):$PATH"
}

cgroups_up() {
  local c
  # Every v1 hierarchy (the kubelet checks them all, the named systemd one too).
  for c in /sys/fs/cgroup/*/; do
    [ -f "$c/cgroup.procs" ] && mkdir -p "$c${CGROOT#/}"
  done
  # A new cpuset v1 group starts with no CPUs and no memory nodes: its
  # parent's, or no process can join it.
  local cs=/sys/fs/cgroup/cpuset
  if [ -d "$cs${CGROOT}" ]; then
    [ -n "$(cat "$cs${CGROOT}/cpuset.cpus")" ] || cat "$cs/cpuset.cpus" > "$cs${CGROOT}/cpuset.cpus"
    [ -n "$(cat "$cs${CGROOT}/cpuset.mems")" ] || cat "$cs/cpuset.mems" > "$cs${CGROOT}/cpuset.mems"
  fi
}

kubelet_up() {
  local bin=$1
  mkdir -p "$W/kubelet"
  echo "nameserver $DNS_IP" > "$W/resolv.conf"
  cat > "$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine kind has cgroup v1 only; Kubernetes 1.36 refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
# Its own cgroup subtree, so that several clusters' nodes do not share kubepods.
cgroupRoot: $CGROOT
containerRuntimeEndpoint: unix://$R/containerd.sock
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $W/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
failSwapOn: false
registerWithTaints:
- {key: modelops.io/node-kind, value: real, effect: NoSchedule}
maxPods: 50
# Images cannot be pulled again (no registry is reachable): never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
# ConfigMap/Secret volumes: the kubelet watches the objects (the default
# strategy; Get or Cache would only add API reads or staleness) and rewrites
# a pod's files on its next periodic sync of that pod, so the sync period
# (default 1m, plus up to half of it in jitter) bounds the delay. Measured by
# bench/node/pod_ready.py: 10s gives a median of 10.5s (max 13.9s), 3s a
# median of 1.9s (max 5.0s), for an idle kubelet's 1.6% of a core instead of
# 1.1%. A gated rollout's traffic ConfigMap reaches the sidecars in seconds.
configMapAndSecretChangeDetectionStrategy: Watch
syncFrequency: ${MODELOPS_KUBELET_SYNC:-3s}
serializeImagePulls: false
# Its own pod log directory: every real node on this machine would otherwise
# share /var/log/pods, and each kubelet's garbage collection deletes the log
# directories of pods it does not know, i.e. the other nodes' (kubectl logs
# then fails with "no such file or directory").
podLogsDir: $W/pod-logs
EOF
  client_kubeconfig kubelet "system:node:$NODE" system:nodes
  cgroups_up
  start kubelet kubelet.log "$bin/kubelet" --config="$W/kubelet.yaml" --kubeconfig="$W/kubelet.kubeconfig" \
    --root-dir="$W/kubelet" --cert-dir="$W/kubelet/pki" --hostname-override="$NODE" --node-ip="$NODE_IP" \
    --node-labels="modelops.io/node-kind=real,modelops.io/pool=real,nvidia.com/gpu.product=$GPU_PRODUCT,nvidia.com/gpu.count=$GPUS"
}

kube_proxy_up() {
  local bin=$1
  client_kubeconfig kube-proxy system:kube-proxy system:node-proxier
  cat > "$W/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $W/kube-proxy.kubeconfig}
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Machine-wide conntrack sysctls are not this namespace's to change.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy kube-proxy.log "$bin/kube-proxy" --config="$W/kube-proxy.yaml"
}

gpu_capacity() { kc get node "$NODE" -o jsonpath='{.status.capacity.nvidia\.com/gpu}'; }

# GPUs without NVIDIA hardware: the extended resource nvidia.com/gpu patched
# into the node's status (what a device plugin would advertise), re-applied
# by a small loop whenever the kubelet's status updates drop it.
gpu_patch() {
  kc patch node "$NODE" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$GPUS\"}]" >/dev/null
}

# Runs as `node.sh gpu-keeper NAME` in its own session (stop() ends the
# whole group): a watch on the node, so that it costs nothing while nothing
# changes, re-established while the kubelet lives.
gpu_keeper() {
  while alive kubelet; do
    kubectl --kubeconfig "$kubeconfig" get node "$NODE" --watch \
        -o jsonpath='{.status.capacity.nvidia\.com/gpu}{"\n"}' 2>/dev/null |
      while read -r have; do
        [ "$have" = "$GPUS" ] || gpu_patch || true
      done
    sleep 2
  done
}

node_ready() {
  [ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

coredns_up() {
  local image=$1
  kc apply --server-side --force-conflicts -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            ttl 5
        }
        cache 5
        loadbalance
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      nodeSelector: {modelops.io/node-kind: real}
      tolerations: [{key: modelops.io/node-kind, operator: Equal, value: real, effect: NoSchedule}]
      # The pods' resolver is CoreDNS itself; CoreDNS needs none.
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: $image
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

up() {
  [ -f "$kubeconfig" ] || { log "cluster '$name' is not up (no $kubeconfig)"; exit 1; }
  kubectl_on_path
  if ! alive containerd; then
    prepare >/dev/null
  fi
  addresses
  # shellcheck disable=SC1091
  . "$W/images.env"
  local advertised
  advertised=$(kc get endpointslices -n default -l kubernetes.io/service-name=kubernetes \
    -o jsonpath='{.items[0].endpoints[0].addresses[0]}' 2>/dev/null || true)
  if [ "$advertised" != "$HOST_IP" ]; then
    log "warning: the API server advertises $advertised, not $HOST_IP: pods cannot reach the kubernetes Service (start the cluster with hack/cluster/cluster.sh)"
  fi
  rm -f "$W/broken"
  # A cluster replaced under a running node (cluster.sh recreates a stale
  # one) has a new CA and API port: the daemons and certificates made for
  # the old one go; the new kubelet removes the old pods' containers.
  local stamp
  stamp="$(sha256sum < "$pki/ca.crt" | cut -c1-16) $(api_port)"
  if [ "$(cat "$W/cluster.stamp" 2>/dev/null)" != "$stamp" ]; then
    stop gpu-keeper
    stop kube-proxy
    stop kubelet
    rm -rf "$W/pki" "$W/kubelet/pki"
    echo "$stamp" > "$W/cluster.stamp"
  fi
  local bin
  bin=$("$here/build.sh")
  alive kubelet || kubelet_up "$bin"
  alive kube-proxy || kube_proxy_up "$bin"
  wait_for 120 "node $NODE to register" kc get node "$NODE" || broken "the kubelet did not register $NODE (see $W/logs/kubelet.log)"
  if ! alive gpu-keeper; then
    gpu_patch || true
    setsid "$here/node.sh" gpu-keeper "$name" </dev/null >>"$W/logs/gpu-keeper.log" 2>&1 &
    echo $! > "$(pidfile gpu-keeper)"
  fi
  wait_for 120 "node $NODE Ready" node_ready || broken "$NODE did not become Ready (see $W/logs/kubelet.log)"
  coredns_up "$COREDNS_IMAGE"
  kc rollout status -n kube-system deployment/coredns --timeout=120s >/dev/null ||
    broken "CoreDNS did not become ready (kubectl -n kube-system describe pod -l k8s-app=kube-dns)"
  wait_for 30 "nvidia.com/gpu on $NODE" test "$(gpu_capacity)" = "$GPUS" || true
  # NetworkPolicy enforcement (kube-router's firewall); the node works without it.
  "$root/hack/netpol/netpol.sh" up "$name" || log "warning: NetworkPolicies not enforced (hack/netpol/netpol.sh status $name)"
  log "$NODE Ready: pods $POD_CIDR, DNS $DNS_IP, nvidia.com/gpu=$(gpu_capacity)"
}

# --- down ---------------------------------------------------------------------

# Stopped sandboxes keep a task (STOPPED) until removed; running ones matter.
no_running_tasks() { ! ctr_ tasks ls 2>/dev/null | grep -q RUNNING; }

down() {
  local m
  stop gpu-keeper
  # Pods first, while the kubelet still runs: it stops their containers and
  # tears their sandboxes' networks down through the CNI plugins.
  if alive kubelet && [ -f "$kubeconfig" ]; then
    kubectl_on_path || true
    # Cordoned first, so that a Deployment's replacement pod (CoreDNS) is not
    # started again on the node being stopped.
    kc cordon "$NODE" >/dev/null 2>&1 || true
    kc delete pods -A --field-selector "spec.nodeName=$NODE" --grace-period=1 --wait=false >/dev/null 2>&1 || true
    wait_for 20 "the pods on $NODE to stop" no_running_tasks || true
  fi
  stop kubelet
  stop kube-proxy
  "$root/hack/netpol/netpol.sh" down "$name" || true
  # What is left (the kubelet gone, a pod that would not stop): killed here.
  if alive containerd; then
    for ns in k8s.io; do
      for t in $(ctr --address "$R/containerd.sock" -n "$ns" tasks ls -q 2>/dev/null); do
        ctr --address "$R/containerd.sock" -n "$ns" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
      done
      sleep 0.5
      for c in $(ctr --address "$R/containerd.sock" -n "$ns" containers ls -q 2>/dev/null); do
        ctr --address "$R/containerd.sock" -n "$ns" tasks rm -f "$c" >/dev/null 2>&1 || true
        ctr --address "$R/containerd.sock" -n "$ns" containers rm "$c" >/dev/null 2>&1 || true
      done
    done
  fi
  stop containerd
  # Shims outlive containerd by design; this node's are the ones whose
  # command line names its state directory.
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $R/containerd.sock" || true); do
    kill -9 "$p" 2>/dev/null || true
  done
  # Mounts: pod volumes, rootfs overlays, sandbox /dev/shm, pod netns files.
  for m in $(awk -v w="$W/" -v r="$R/" 'index($5, w) == 1 || index($5, r) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  # The namespace takes the bridge, the veths and every iptables rule with it.
  if [ -e "/run/netns/$NETNS" ]; then ip netns delete "$NETNS" || true; fi
  if [ -f "$W/index" ]; then
    addresses
    ip link delete "$VETH_HOST" 2>/dev/null || true
    ip route delete "$POD_CIDR" 2>/dev/null || true
  fi
  # cgroups, deepest first.
  for c in /sys/fs/cgroup/*/"${CGROOT#/}"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if [ -f "$kubeconfig" ] && kubectl_on_path; then kc delete node "$NODE" --wait=false >/dev/null 2>&1 || true; fi
  rm -rf "$R"
  # Keep the reason file and the logs for a post-mortem; the rest goes.
  if [ -d "$W" ]; then
    find "$W" -mindepth 1 -maxdepth 1 ! -name logs ! -name unavailable ! -name broken ! -name index \
      -exec rm -rf {} + 2>/dev/null || true
  fi
}

status() {
  local what
  if [ -f "$W/unavailable" ]; then echo "unavailable: $(cat "$W/unavailable")"; fi
  if [ -f "$W/broken" ]; then echo "failed: $(cat "$W/broken")"; fi
  for what in containerd kubelet kube-proxy gpu-keeper; do
    if alive "$what"; then echo "$what: running (pid $(cat "$(pidfile "$what")"))"; else echo "$what: stopped"; fi
  done
  "$root/hack/netpol/netpol.sh" status "$name" || true
  if [ -f "$kubeconfig" ] && kubectl_on_path; then kc get node "$NODE" -o wide 2>/dev/null || true; fi
}

# info: one JSON line for tests and benchmarks (tests/support/real_node.py).
info() {
  local reason="" broke="" pod_cidr="" host_ip="" images="{}"
  [ -f "$W/unavailable" ] && reason=$(cat "$W/unavailable")
  [ -f "$W/broken" ] && broke=$(cat "$W/broken")
  if [ -f "$W/index" ]; then addresses; pod_cidr=$POD_CIDR; host_ip=$HOST_IP; fi
  if [ -f "$W/images.env" ]; then
    images=$(awk -F= 'NF == 2 {printf "%s\"%s\": \"%s\"", (n++ ? ", " : ""), tolower(substr($1, 1, length($1) - 6)), $2}' "$W/images.env")
    images="{$images}"
  fi
  local running=false
  alive kubelet && running=true
  python3 -c 'import json, sys
keys = ("node", "running", "unavailable", "broken", "pod_cidr", "host_ip", "images", "logs")
info = dict(zip(keys, sys.argv[1:]))
info["running"] = info["running"] == "true"
info["images"] = json.loads(info["images"])
print(json.dumps(info))' "$NODE" "$running" "$reason" "$broke" "$pod_cidr" "$host_ip" "$images" "$W/logs"
}

# import NAME ARCHIVE...: more OCI archives into the node's containerd (e.g.
# the project's images from hack/images/build.sh), so that pods on the node
# run them with imagePullPolicy IfNotPresent or Never.
import_images() {
  alive containerd || { log "the real node of '$name' is not running"; exit 1; }
  local a
  for a in "$@"; do
    ctr_ images import "$a" >&2 || { log "importing $a failed"; exit 1; }
  done
}

case "$cmd" in
  import) shift 2; import_images "$@" ;;
  gpu-keeper) kubectl_on_path; gpu_keeper ;;
  info) info ;;
  prepare) prepare ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 prepare|up|down|status|info NAME | import NAME ARCHIVE..." >&2; exit 2 ;;
esac

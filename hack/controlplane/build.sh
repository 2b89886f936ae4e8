#!/usr/bin/env bash
# Builds the local control plane from upstream Go modules into a cache outside
# the repository and prints the bin directory.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- k8s.io/kubernetes (hack/controlplane/k8s)
#   etcd                                                             <- go.etcd.io/etcd/server/v3 (hack/controlplane/etcd)
#   kwok, kwokctl                                                    <- sigs.k8s.io/kwok
#
# The cache key covers every input (wrapper go.mod/go.sum/main, this script,
# the Go version), so a warm run only checks that the binaries exist.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

KUBE_VERSION=v1.36.3
KWOK_VERSION=v0.8.0
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}

key=$(cat "$here"/build.sh "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/k8s/tools.go \
          "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/etcd/main.go <(go version) \
      | sha256sum | cut -c1-12)
out="$CACHE/controlplane/k8s-$KUBE_VERSION-kwok-$KWOK_VERSION-$key"
bin="$out/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)

complete() { for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done; }

if complete; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
log() { echo "controlplane: $*" >&2; }
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=-trimpath

# Version stamps: without them the binaries report v0.0.0 and kwokctl, which
# reads `--version` to pick flags, would treat them as ancient.
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

log "building Kubernetes $KUBE_VERSION (cold: 20-40 min on 2 cores)"
(cd "$here/k8s" && go build -o "$bin/" -ldflags "$ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl)

log "building etcd"
(cd "$here/etcd" && go build -o "$bin/etcd" -ldflags "-s -w" .)

log "building kwok $KWOK_VERSION"
GOBIN="$bin" go install -ldflags "-s -w" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"

complete || { log "a binary is missing after the build"; exit 1; }
log "built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"

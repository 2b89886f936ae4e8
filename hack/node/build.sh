#!/usr/bin/env bash
# Builds the real node's binaries from upstream Go modules into a cache outside
# the repository and prints the bin directory:
#
#   kubelet, kube-proxy  <- k8s.io/kubernetes (hack/node/k8s), the same pin as hack/controlplane
#   coredns              <- github.com/coredns/coredns (hack/node/coredns), the plugins the cluster's DNS uses
#
# Each piece is cached under a key that covers its inputs (wrapper
# go.mod/go.sum/sources, the build flags, the Go version), so a warm run only
# checks that the binaries exist, and a CoreDNS bump does not rebuild the kubelet.
#
#   build.sh            all of them; prints the bin directory
#   build.sh coredns    CoreDNS only (for hack/node/images.sh); prints its bin directory
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
log() { echo "node-build: $*" >&2; }

# One Kubernetes version for the whole cluster: the kubelet must not be newer
# than the API server, and both wrapper modules must pin the same release.
KUBE_VERSION=$(sed -n 's/^KUBE_VERSION=//p' "$root/hack/controlplane/build.sh")
pin() { awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$1"; }
if [ "$(pin "$here/k8s/go.mod")" != "$KUBE_VERSION" ] || [ "$(pin "$root/hack/controlplane/k8s/go.mod")" != "$KUBE_VERSION" ]; then
  log "k8s.io/kubernetes pins differ: hack/node/k8s/go.mod $(pin "$here/k8s/go.mod"), hack/controlplane $(pin "$root/hack/controlplane/k8s/go.mod") / $KUBE_VERSION"
  exit 1
fi
COREDNS_VERSION=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' "$here/coredns/go.mod")

# The control plane's version stamps: the API server and kubectl show the
# node's version from them, and the kubelet checks version skew.
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
export CGO_ENABLED=0 GOFLAGS=-trimpath

recipe="$(go version) CGO_ENABLED=$CGO_ENABLED GOFLAGS=$GOFLAGS"
key() { { cat "$@"; echo "$recipe"; } | sha256sum | cut -c1-12; }
k8s_out="$CACHE/node/k8s-$KUBE_VERSION-$(key "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/k8s/tools.go <(echo "$k8s_ldflags"))"
dns_out="$CACHE/node/coredns-$COREDNS_VERSION-$(key "$here"/coredns/go.mod "$here"/coredns/go.sum "$here"/coredns/main.go)"
bin="$CACHE/node/bin-$(echo "$k8s_out $dns_out" | sha256sum | cut -c1-12)"

if ! [ -x "$dns_out/bin/coredns" ]; then
  log "building CoreDNS $COREDNS_VERSION"
  start=$(date +%s)
  mkdir -p "$dns_out.partial"
  (cd "$here/coredns" && go build -o "$dns_out.partial/coredns" -ldflags "-s -w" .)
  rm -rf "$dns_out" && mkdir -p "$dns_out" && mv "$dns_out.partial" "$dns_out/bin"
  log "coredns built in $(( $(date +%s) - start ))s"
fi

if [ "${1:-}" = coredns ]; then
  echo "$dns_out/bin"
  exit 0
fi

if ! [ -x "$k8s_out/bin/kubelet" ] || ! [ -x "$k8s_out/bin/kube-proxy" ]; then
  log "building kubelet and kube-proxy $KUBE_VERSION (cold: ~10 min after the control plane, which shares most packages)"
  start=$(date +%s)
  mkdir -p "$k8s_out.partial"
  (cd "$here/k8s" && go build -o "$k8s_out.partial/" -ldflags "$k8s_ldflags" \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
  rm -rf "$k8s_out" && mkdir -p "$k8s_out" && mv "$k8s_out.partial" "$k8s_out/bin"
  log "kubelet, kube-proxy built in $(( $(date +%s) - start ))s"
fi

if ! [ -d "$bin" ]; then
  mkdir -p "$bin.partial"
  ln -sfn "$k8s_out/bin/kubelet" "$k8s_out/bin/kube-proxy" "$dns_out/bin/coredns" "$bin.partial/"
  rm -rf "$bin" && mv "$bin.partial" "$bin"
fi
echo "$bin"

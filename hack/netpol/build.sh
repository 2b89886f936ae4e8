#!/usr/bin/env bash
# Builds the real node's NetworkPolicy agent, kube-router's network policy
# controller (hack/netpol/kube-router, a wrapper module around
# github.com/cloudnativelabs/kube-router), into a cache outside the repository
# and prints its bin directory.
#
# Cached under a key that covers the inputs (the wrapper's go.mod/go.sum/
# tools.go, the build flags, the Go version): a warm run only checks that the
# binary exists.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
log() { echo "netpol-build: $*" >&2; }

mod="$here/kube-router"
version=$(awk '$1 == "github.com/cloudnativelabs/kube-router/v2" {print $2}' "$mod/go.mod")
[ -n "$version" ] || { log "no kube-router requirement in $mod/go.mod"; exit 1; }
ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$version"
ldflags+=" -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=1970-01-01T00:00:00Z"
export CGO_ENABLED=0 GOFLAGS=-trimpath
recipe="$(go version) CGO_ENABLED=$CGO_ENABLED GOFLAGS=$GOFLAGS $ldflags"
key=$({ cat "$mod/go.mod" "$mod/go.sum" "$mod/tools.go"; echo "$recipe"; } | sha256sum | cut -c1-12)
out="$CACHE/netpol/kube-router-$version-$key"

if ! [ -x "$out/bin/kube-router" ]; then
  log "building kube-router $version (cold: a few minutes)"
  start=$(date +%s)
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$mod" && go build -o "$out.partial/kube-router" -ldflags "$ldflags" \
      github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
  rm -rf "$out" && mkdir -p "$out" && mv "$out.partial" "$out/bin"
  log "kube-router built in $(( $(date +%s) - start ))s"
fi
echo "$out/bin"

#!/usr/bin/env bash
# Builds prometheus-adapter (the custom.metrics.k8s.io API server that turns
# Prometheus series into per-pod metrics for the HPA) from its upstream Go
# module into a cache outside the repository and prints the bin directory.
#
#   prometheus-adapter <- sigs.k8s.io/prometheus-adapter/cmd/adapter (hack/prometheus-adapter)
#
# The module has no replace directives, but `go install module@version` is not
# usable: it asks the module proxy for the module's version list, which the
# proxy refuses for this module. The wrapper module here pins the version
# instead. The cache key covers every input (wrapper go.mod/go.sum/tools.go,
# this script, the Go version), so a warm run only checks that the binary exists.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

ADAPTER_VERSION=v0.12.0
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}

grep -q "sigs.k8s.io/prometheus-adapter $ADAPTER_VERSION\$" "$here/go.mod" || {
  echo "prometheus-adapter: $here/go.mod does not require $ADAPTER_VERSION" >&2; exit 1; }
key=$(cat "$here"/build.sh "$here"/go.mod "$here"/go.sum "$here"/tools.go <(go version) \
      | sha256sum | cut -c1-12)
bin="$CACHE/prometheus-adapter-$ADAPTER_VERSION-$key/bin"
adapter="$bin/prometheus-adapter"

if [ -x "$adapter" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
log() { echo "prometheus-adapter: $*" >&2; }
start=$(date +%s)
# -mod=mod: go.sum is committed, but a Go newer than the one that tidied it may
# want to record more; that must not fail a cold build.
export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"

log "building prometheus-adapter $ADAPTER_VERSION (cold: several minutes on 2 cores)"
# Build to a temporary name and rename, so an interrupted build never leaves a
# binary that a later run would take as complete.
(cd "$here" && go build -o "$adapter.partial" -ldflags "-s -w" \
    sigs.k8s.io/prometheus-adapter/cmd/adapter)
mv "$adapter.partial" "$adapter"
log "built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"

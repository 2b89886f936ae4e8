#!/usr/bin/env bash
# Builds metrics-server (the metrics.k8s.io API server that the HPA's cpu and
# memory metrics read) from its upstream Go module into a cache outside the
# repository and prints the bin directory. kwokctl runs it for the local
# cluster (hack/cluster/cluster.sh); it scrapes the resource metrics that KWOK
# simulates for its nodes and pods.
#
#   metrics-server <- sigs.k8s.io/metrics-server/cmd/metrics-server (hack/metrics-server)
#
# The cache key covers every input (wrapper go.mod/go.sum/tools.go, this
# script, the Go version), so a warm run only checks that the binary exists.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

METRICS_SERVER_VERSION=v0.7.1
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}

grep -q "sigs.k8s.io/metrics-server $METRICS_SERVER_VERSION\$" "$here/go.mod" || {
  echo "metrics-server: $here/go.mod does not require $METRICS_SERVER_VERSION" >&2; exit 1; }
key=$(cat "$here"/build.sh "$here"/go.mod "$here"/go.sum "$here"/tools.go <(go version) \
      | sha256sum | cut -c1-12)
bin="$CACHE/metrics-server-$METRICS_SERVER_VERSION-$key/bin"
server="$bin/metrics-server"

if [ -x "$server" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
log() { echo "metrics-server: $*" >&2; }
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"

# The version stamp, as metrics-server's Makefile sets it: kwokctl reads
# `metrics-server --version` to pick its flags.
ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
log "building metrics-server $METRICS_SERVER_VERSION (cold: several minutes on 2 cores)"
(cd "$here" && go build -o "$server.partial" -ldflags "$ldflags" \
    sigs.k8s.io/metrics-server/cmd/metrics-server)
mv "$server.partial" "$server"
log "built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"

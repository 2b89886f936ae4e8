#!/usr/bin/env bash
# Builds fake-gcs-server (a Google Cloud Storage API emulator) from its
# upstream Go module into a cache outside the repository and prints the bin
# directory. The gs:// storage tests run it as a real GCS endpoint.
#
#   fake-gcs-server <- github.com/fsouza/fake-gcs-server
#
# The module has no replace directives, so `go install module@version` builds
# it straight from the module proxy. The cache key covers this script and the
# Go version; a warm run only checks that the binary exists.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

FAKE_GCS_VERSION=v1.56.1
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}

key=$(cat "$here"/build.sh <(go version) | sha256sum | cut -c1-12)
bin="$CACHE/fake-gcs-server-$FAKE_GCS_VERSION-$key/bin"
server="$bin/fake-gcs-server"

if [ -x "$server" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
log() { echo "fake-gcs-server: $*" >&2; }
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=-trimpath

log "building fake-gcs-server $FAKE_GCS_VERSION (cold: a few minutes on 2 cores)"
# Build into a temporary name and rename, so an interrupted build never
# leaves a binary that a later run would take as complete.
GOBIN="$bin/.partial" go install -ldflags "-s -w" \
  "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
mv "$bin/.partial/fake-gcs-server" "$server"
rmdir "$bin/.partial"
log "built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"

#!/usr/bin/env bash
# Builds KEDA's operator and its external-metrics API server from the upstream
# Go module into a cache outside the repository, copies the release's CRDs next
# to them, and prints the cache directory:
#
#   <dir>/bin/keda          <- github.com/kedacore/keda/v2/cmd/operator
#   <dir>/bin/keda-adapter  <- github.com/kedacore/keda/v2/cmd/adapter
#   <dir>/crd/*.yaml        <- the release's config/crd/bases (ScaledObject, ...)
#
# KEDA's go.mod carries a replace directive, so `go install module@version`
# refuses it; instead the module is fetched into the module cache and built in
# place, where its go.mod (and so its replace) is the main module's. The
# admission webhooks (cmd/webhooks) are not built: the test profile runs
# without them, as KEDA itself allows.
#
# The module is large (every scaler's SDK): a cold build is tens of minutes on
# 2 cores. The cache key covers this script and the Go version; a warm run only
# checks that both binaries report the version asked for.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

KEDA_VERSION=v2.21.0
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}

key=$(cat "$here"/build.sh <(go version) | sha256sum | cut -c1-12)
dir="$CACHE/keda-$KEDA_VERSION-$key"
bin="$dir/bin"

# The keda binary prints its version in the first log lines and then needs a
# cluster; `--help` of either binary exits without one, so the stamp is read
# from a file written after a complete build instead.
built() {
  [ -x "$bin/keda" ] && [ -x "$bin/keda-adapter" ] && [ -s "$dir/crd/keda.sh_scaledobjects.yaml" ] \
    && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$KEDA_VERSION" ]
}

case "${1:-}" in
  --cached) built && echo "$dir"; exit $? ;;  # report only, never build
  "") ;;
  *) echo "usage: $0 [--cached]" >&2; exit 2 ;;
esac

if built; then
  echo "$dir"
  exit 0
fi

log() { echo "keda: $*" >&2; }
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"

log "fetching github.com/kedacore/keda/v2@$KEDA_VERSION"
src=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -f "$src/go.mod" ] || { log "no module source at '$src'"; exit 1; }

rm -rf "$dir.partial"
mkdir -p "$dir.partial/bin" "$dir.partial/crd"
ldflags="-s -w -X=github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION"
ldflags+=" -X=github.com/kedacore/keda/v2/version.GitCommit=module-$KEDA_VERSION"
log "building keda $KEDA_VERSION operator and metrics adapter (cold: tens of minutes on 2 cores)"
# One `go build` for both commands, so their (mostly shared) packages compile once.
(cd "$src" && go build -ldflags "$ldflags" -o "$dir.partial/bin/" ./cmd/operator ./cmd/adapter)
mv "$dir.partial/bin/operator" "$dir.partial/bin/keda"
mv "$dir.partial/bin/adapter" "$dir.partial/bin/keda-adapter"
cp "$src"/config/crd/bases/*.yaml "$dir.partial/crd/"
echo "$KEDA_VERSION" >"$dir.partial/VERSION"
# Built under a temporary name and renamed, so an interrupted build never
# leaves a directory that a later run would take as complete.
rm -rf "$dir"
mv "$dir.partial" "$dir"

built || { log "$dir is incomplete after the build"; exit 1; }
log "built in $(( $(date +%s) - start ))s into $dir"
echo "$dir"

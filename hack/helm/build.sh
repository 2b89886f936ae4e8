#!/usr/bin/env bash
# Builds helm from its upstream Go module into a cache outside the repository
# and prints the bin directory.
#
#   helm  <- helm.sh/helm/v3/cmd/helm
#
# helm.sh/helm/v3 has no replace directives, so `go install module@version`
# builds it straight from the module proxy; no wrapper module is needed. The
# cache key covers this script and the Go version, so a warm run only checks
# that the binary exists and reports the version it was asked for.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

HELM_VERSION=v3.22.0
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}

key=$(cat "$here"/build.sh <(go version) | sha256sum | cut -c1-12)
bin="$CACHE/helm-$HELM_VERSION-$key/bin"
helm="$bin/helm"

built() { [ -x "$helm" ] && "$helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; }

if built; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
log() { echo "helm: $*" >&2; }
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=-trimpath

# Version stamps, as helm's own Makefile sets them. Without them `helm
# version` says v3.<minor> only, and `helm template`/`helm lint` assume
# Kubernetes 1.20 (Capabilities.KubeVersion, the deprecated-API check) instead
# of the release that helm's client-go corresponds to (client-go v0.N -> 1.N).
gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
client_go=$(awk '$1 == "k8s.io/client-go" {print $2}' "$gomod")
kube_minor=${client_go#v0.}; kube_minor=${kube_minor%%.*}
[ -n "$kube_minor" ] || { log "cannot read k8s.io/client-go's version from $gomod"; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

log "building helm $HELM_VERSION (cold: a few minutes on 2 cores)"
GOBIN="$bin" go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

built || { log "$helm is missing or does not report $HELM_VERSION after the build"; exit 1; }
log "built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"

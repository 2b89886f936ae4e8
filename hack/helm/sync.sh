#!/usr/bin/env bash
# Copies what the chart ships verbatim from the rest of the repository into
# charts/modelops, because Helm can only read files inside the chart:
#
#   crds/modelops.io_*.yaml       -> charts/modelops/files/crds/
#       rendered by templates/crds.yaml, so `helm upgrade` upgrades them
#   deploy/monitoring/*.yaml|json -> charts/modelops/files/monitoring/
#   deploy/argocd/argocd-cm.yaml  -> charts/modelops/files/argocd/
#   manifests/samples/modeldeployment.yaml -> charts/modelops/files/samples/
#       printed by NOTES.txt: the sample of this very release, no URL to follow
#
# tests/chart/test_chart_render.py fails when a copy differs from its source,
# so run this after `make crds` or an edit under deploy/. `--check` only
# reports (exit 1) instead of copying.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
chart="$repo/charts/modelops"
check=${1:-}

# The chart directory a CRD of crds/ is copied to.
crd_dir() {
  case "$(basename "$1")" in
    kopf.dev_*) echo "$chart/crds" ;;
    *) echo "$chart/files/crds" ;;
  esac
}

pairs=()
for f in "$repo"/crds/*.yaml; do pairs+=("$f" "$(crd_dir "$f")/$(basename "$f")"); done
for f in servicemonitors.yaml prometheusrule.yaml grafana-dashboard.json; do
  [ -e "$repo/deploy/monitoring/$f" ] && pairs+=("$repo/deploy/monitoring/$f" "$chart/files/monitoring/$f")
done
[ -e "$repo/deploy/argocd/argocd-cm.yaml" ] && pairs+=("$repo/deploy/argocd/argocd-cm.yaml" "$chart/files/argocd/argocd-cm.yaml")
pairs+=("$repo/manifests/samples/modeldeployment.yaml" "$chart/files/samples/modeldeployment.yaml")

stale=0
for ((i = 0; i < ${#pairs[@]}; i += 2)); do
  src=${pairs[i]} dst=${pairs[i+1]}
  cmp -s "$src" "$dst" && continue
  if [ "$check" = --check ]; then
    echo "out of date: ${dst#"$repo"/} (source ${src#"$repo"/})" >&2
    stale=1
  else
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
    echo "synced ${dst#"$repo"/}" >&2
  fi
done
# A CRD removed from crds/ (or moved to the other directory) must leave the chart too.
for dst in "$chart"/crds/*.yaml "$chart"/files/crds/*.yaml; do
  [ -e "$dst" ] || continue
  src="$repo/crds/$(basename "$dst")"
  [ -e "$src" ] && [ "$(crd_dir "$src")" = "$(dirname "$dst")" ] && continue
  if [ "$check" = --check ]; then
    echo "not in crds/ (or in the wrong chart directory): ${dst#"$repo"/}" >&2
    stale=1
  else
    rm "$dst"
    echo "removed ${dst#"$repo"/}" >&2
  fi
done
exit $stale

{{/*
Helpers for the monitoring and Argo CD objects, which are built from the files that
deploy/monitoring ships (copied into files/ by hack/helm/sync.sh) rather than
written a second time here: the chart changes only what depends on the
release (names, namespace, labels, the operator Service's selector) and the
documented tunables, so the scrape configuration and rules cannot drift from
the ones tests/ops checks.
*/}}

{{/* A file of files/, parsed; fails with the file named when it is missing or broken. */}}
{{- define "modelops.loadFile" -}}
{{- $text := .root.Files.Get .path -}}
{{- if not $text -}}
{{- fail (printf "%s is missing from the chart: run hack/helm/sync.sh (it copies deploy/monitoring and deploy/argocd into charts/modelops/files)" .path) -}}
{{- end -}}
{{- $docs := list -}}
{{- range $doc := splitList "\n---\n" $text -}}
{{- $obj := fromYaml $doc -}}
{{- if hasKey $obj "Error" -}}
{{- fail (printf "%s: %s" $.path $obj.Error) -}}
{{- end -}}
{{- if $obj -}}
{{- $docs = append $docs $obj -}}
{{- end -}}
{{- end -}}
{{- toJson $docs -}}
{{- end -}}

{{/*
Metadata for a monitoring object derived from one in deploy/monitoring: its
name with the `modelops` prefix replaced by the release's, the chart's
namespace, its own labels without the hard-coded Prometheus selector
(`release`), plus monitoring.labels.
*/}}
{{- define "modelops.monitoring.metadata" -}}
{{- $root := .root -}}
{{- $labels := omit (default dict .source.metadata.labels) "release" -}}
{{- $labels = merge (fromYaml (include "modelops.commonLabels" $root)) $labels -}}
{{- $labels = mustMergeOverwrite $labels (deepCopy $root.Values.monitoring.labels) -}}
{{- $name := printf "%s%s" (include "modelops.fullname" $root) (trimPrefix "modelops" .source.metadata.name) -}}
{{- toJson (dict "name" $name "namespace" (include "modelops.namespace" $root) "labels" $labels) -}}
{{- end -}}

{{/*
Naming. The prefix of every object is the release name when it already
contains the chart name (release `modelops` -> modelops-operator, exactly the
names of manifests/install), else `<release>-<chart>`. Cluster-scoped objects
use it too, which is what lets two releases coexist in one cluster.
Kubernetes names are at most 63 characters; the longest suffix added below is
`-operator-standby` (17), hence 46.
*/}}
{{- define "modelops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 46 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "modelops.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 46 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's Deployment, ServiceAccount and RBAC objects. */}}
{{- define "modelops.operatorName" -}}
{{- printf "%s-operator" (include "modelops.fullname" .) -}}
{{- end -}}

{{/* The conversion webhook's Service; its certificate's Secret is <this>-cert. */}}
{{- define "modelops.webhookName" -}}
{{- printf "%s-webhook" (include "modelops.fullname" .) -}}
{{- end -}}

{{- define "modelops.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name -}}
{{- end -}}

{{- define "modelops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelops.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelops.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
Labels. app.kubernetes.io/name is `modelops-operator` as in the plain
manifests, whatever the release or nameOverride: the ServiceMonitor's jobLabel
turns it into job="modelops-operator", which the OperatorDown alert matches,
and app.kubernetes.io/instance tells releases apart.
*/}}
{{- define "modelops.selectorLabels" -}}
app.kubernetes.io/name: modelops-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelops.labels" -}}
{{ include "modelops.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: modelops
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of chart objects that are not part of the operator workload. */}}
{{- define "modelops.commonLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: modelops
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
Cross-field checks that JSON schema cannot express.
*/}}
{{- define "modelops.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount %v needs leaderElection.enabled: without the Lease every replica would reconcile and write" .Values.replicaCount) -}}
{{- end -}}
{{- if and .Values.leaderElection.enabled (le (float64 .Values.leaderElection.leaseDuration) (float64 .Values.leaderElection.renewDeadline)) -}}
{{- fail (printf "leaderElection.leaseDuration (%v) must be longer than leaderElection.renewDeadline (%v): the leader must stop writing before a standby may take over" .Values.leaderElection.leaseDuration .Values.leaderElection.renewDeadline) -}}
{{- end -}}
{{- if and .Values.namespace.create (not .Values.namespace.name) -}}
{{- fail "namespace.create needs namespace.name: Helm keeps the release in the release namespace, which must exist before the chart is installed, so the chart can only create another one (or use helm install --create-namespace)" -}}
{{- end -}}
{{- if and .Values.namespace.create (eq .Values.namespace.name .Release.Namespace) -}}
{{- fail (printf "namespace.create: %s is the release namespace, which must exist before the chart is installed; use helm install --create-namespace instead" .Release.Namespace) -}}
{{- end -}}
{{- end -}}

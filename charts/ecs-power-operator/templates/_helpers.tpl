{{/* The objects' name: the release name, or release-chart when it does not contain the chart name. */}}
{{- define "ecs-power-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ecs-power-operator.serviceAccountName" -}}
{{- default (include "ecs-power-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Selects the pods of this release. */}}
{{- define "ecs-power-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ecs-power-operator.labels" -}}
{{ include "ecs-power-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

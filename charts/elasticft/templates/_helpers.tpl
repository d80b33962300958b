{{/*
Chart name, overridable with nameOverride; used in app.kubernetes.io/name.
*/}}
{{- define "elasticft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every resource. Truncated to 63 characters because some Kubernetes name fields are
limited to a DNS label; a release already named after the chart is not repeated ("elasticft", not
"elasticft-elasticft").
*/}}
{{- define "elasticft.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "elasticft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object the chart creates.
*/}}
{{- define "elasticft.labels" -}}
helm.sh/chart: {{ include "elasticft.chart" . }}
{{ include "elasticft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: elasticft
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The immutable subset of the labels: the Deployment's selector and the Service's selector.
*/}}
{{- define "elasticft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "elasticft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "elasticft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "elasticft.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Operator image reference: a digest pins it, otherwise the tag (default: the chart's appVersion).
*/}}
{{- define "elasticft.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

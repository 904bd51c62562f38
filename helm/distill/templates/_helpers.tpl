{{/* Names, labels and the effective distill.yaml shared by every template. */}}

{{- define "distill.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "distill.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Room is left for the "-gateway"/"-vllm" suffixes within the 63-character name limit. */}}
{{- define "distill.gateway.fullname" -}}
{{- printf "%s-gateway" (include "distill.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "distill.vllm.fullname" -}}
{{- printf "%s-vllm" (include "distill.fullname" . | trunc 58 | trimSuffix "-") -}}
{{- end -}}

{{- define "distill.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "distill.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: distill
{{- end -}}

{{/* Selector labels for one component: pass (dict "ctx" $ "component" "gateway"). */}}
{{- define "distill.selectorLabels" -}}
app.kubernetes.io/name: {{ include "distill.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "distill.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "distill.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "distill.logsClaimName" -}}
{{- default (printf "%s-logs" (include "distill.fullname" .)) .Values.storage.logs.existingClaim -}}
{{- end -}}

{{- define "distill.adaptersClaimName" -}}
{{- default (printf "%s-adapters" (include "distill.fullname" .)) .Values.storage.adapters.existingClaim -}}
{{- end -}}

{{- define "distill.vllm.url" -}}
{{- printf "http://%s:%v/v1" (include "distill.vllm.fullname" .) .Values.vllm.service.port -}}
{{- end -}}

{{/*
The distill.yaml the gateway reads: .Values.config plus what the deployment shape decides.
- More than one replica: every pod writes its own Parquet segments into the shared volume
  (DESIGN.md, "Scale past one machine"); a DuckDB file cannot have several writers.
- An upstream left with an empty base_url points at the chart's vLLM Service.
*/}}
{{- define "distill.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $store := dict -}}
{{- if hasKey $cfg "store" -}}{{- $store = $cfg.store -}}{{- end -}}
{{- if gt (int .Values.gateway.replicas) 1 -}}
{{- if ne (toString (get $store "format")) "parquet" -}}
{{- $_ := set $store "format" "parquet" -}}
{{- $_ := set $store "path" "/data/segments" -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "store" $store -}}
{{- range $name, $up := $cfg.upstreams -}}
{{- if and (kindIs "map" $up) (empty $up.base_url) -}}
{{- if not $.Values.vllm.enabled -}}
{{- fail (printf "config.upstreams.%s.base_url is empty and vllm.enabled is false: set the URL of your student server, or remove that upstream (and the routes' students using it)" $name) -}}
{{- end -}}
{{- $_ := set $up "base_url" (include "distill.vllm.url" $) -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

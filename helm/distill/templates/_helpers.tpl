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

{{/* More than one gateway: a fixed replica count above 1, or an autoscaler. */}}
{{- define "distill.gateway.multi" -}}
{{- if or (gt (int .Values.gateway.replicas) 1) .Values.gateway.autoscaling.enabled -}}true{{- end -}}
{{- end -}}

{{- define "distill.postgres.fullname" -}}
{{- printf "%s-postgres" (include "distill.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{/* Refuse shapes that lose data or split the fleet, with what to set instead. */}}
{{- define "distill.checks" -}}
{{- $g := .Values.gateway -}}
{{- $f := .Values.fleet -}}
{{- if and (include "distill.gateway.multi" .) (not $f.enabled) -}}
{{- fail (printf "gateway.replicas is %d (autoscaling.enabled: %v) but fleet.enabled is false: several gateways need the fleet store, one log and one rollout controller for all of them (docs/fleet.md). Set fleet.enabled=true with fleet.postgres.existingSecret (a DSN Secret) or fleet.postgres.internal.enabled=true, or keep gateway.replicas at 1" (int $g.replicas) $g.autoscaling.enabled) -}}
{{- end -}}
{{- if and $f.enabled (not $f.postgres.existingSecret) (not $f.postgres.internal.enabled) -}}
{{- fail "fleet.enabled is true but no PostgreSQL is given: set fleet.postgres.existingSecret to a Secret holding the DSN, or fleet.postgres.internal.enabled=true for the chart's own" -}}
{{- end -}}
{{- if and $f.enabled $f.postgres.existingSecret $f.postgres.internal.enabled -}}
{{- fail "fleet.postgres.existingSecret and fleet.postgres.internal.enabled are both set: choose one PostgreSQL" -}}
{{- end -}}
{{- if and (include "distill.gateway.multi" .) .Values.storage.logs.enabled (not .Values.storage.logs.existingClaim) (not (has "ReadWriteMany" .Values.storage.logs.accessModes)) -}}
{{- fail (printf "gateway.replicas is %d but storage.logs.accessModes %v lacks ReadWriteMany: every replica spools into one shared volume (and a live one replays a dead one's spool); add ReadWriteMany (and a storage class that offers it) or set gateway.replicas to 1" (int $g.replicas) .Values.storage.logs.accessModes) -}}
{{- end -}}
{{- end -}}

{{/*
The distill.yaml the gateway reads: .Values.config plus what the deployment shape decides.
- fleet.enabled: the fleet store (DuckLake under fleet.dataPath, PostgreSQL by DSN), each
  pod with its own spool directory (DESIGN.md, "Scale past one machine").
- An upstream left with an empty base_url points at the chart's vLLM Service.
*/}}
{{- define "distill.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $store := dict -}}
{{- if hasKey $cfg "store" -}}{{- $store = $cfg.store -}}{{- end -}}
{{- if .Values.fleet.enabled -}}
{{- $_ := set $store "format" "fleet" -}}
{{- $_ := set $store "path" .Values.fleet.dataPath -}}
{{- $_ := set $store "postgres_dsn_env" "DISTILL_POSTGRES_DSN" -}}
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


{{/*
checkov (tests/deploy/test_checkov.py) runs on the rendered chart. These checks are skipped on
the workloads, each with its reason, instead of being "fixed" against what is right here:
- CKV_K8S_11 CPU limits: a CPU limit throttles a latency-bound proxy (CFS quota) and adds
  tail latency; the pods request CPU, and limits stay the operator's choice (resources).
- CKV_K8S_15 pull policy Always: images are pinned to release tags that are never moved
  (see README, "Image"), so IfNotPresent pulls the same bytes without a registry round trip.
- CKV_K8S_43 image digest: the chart cannot know the digest of an image published after it;
  pin one with image.tag: "<version>@sha256:<digest>".
- CKV2_K8S_6 NetworkPolicy: optional (networkPolicy.enabled); off by default because the
  right peers (clients, Prometheus' namespace) are the cluster's, not the chart's.
Pass (dict "ctx" $ "extra" (list "CKV_ID=reason" ...)) for a workload's own skips.
*/}}
{{- define "distill.checkovSkips" -}}
{{- $skips := list
  "CKV_K8S_11=CPU limits throttle a latency-bound server (CFS quota); CPU is requested, limits are the operator's choice"
  "CKV_K8S_15=images are pinned to release tags that never move, so IfNotPresent pulls the same bytes"
  "CKV_K8S_43=the chart cannot know a digest published after it; pin one with image.tag <version>@sha256:<digest>"
-}}
{{- if not .ctx.Values.networkPolicy.enabled -}}
{{- $skips = append $skips "CKV2_K8S_6=NetworkPolicies are optional (networkPolicy.enabled): the allowed peers are the cluster's choice" -}}
{{- end -}}
{{- range $i, $skip := concat $skips (.extra | default list) }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end -}}
{{- end -}}

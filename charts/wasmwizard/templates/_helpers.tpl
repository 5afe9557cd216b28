{{/*
Chart name, truncated to 63 chars (DNS label limit).
*/}}
{{- define "wasmwizard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Truncated to 48 chars so that suffixes such as
"-worker-redis" keep every resource name within 63 chars.
*/}}
{{- define "wasmwizard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value.
*/}}
{{- define "wasmwizard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels (all resources).
*/}}
{{- define "wasmwizard.labels" -}}
helm.sh/chart: {{ include "wasmwizard.chart" . }}
{{ include "wasmwizard.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wasmwizard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (immutable: never add labels here that change between releases).
*/}}
{{- define "wasmwizard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmwizard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component labels. Usage: include "wasmwizard.componentLabels" (list $ "api")
*/}}
{{- define "wasmwizard.componentLabels" -}}
{{- $ := index . 0 -}}
{{ include "wasmwizard.labels" $ }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "wasmwizard.componentSelectorLabels" -}}
{{- $ := index . 0 -}}
{{ include "wasmwizard.selectorLabels" $ }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Name of the ServiceAccount used by the API and worker pods.
*/}}
{{- define "wasmwizard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wasmwizard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference. Usage: include "wasmwizard.image" (list $ .Values.api.image)
*/}}
{{- define "wasmwizard.image" -}}
{{- $ := index . 0 -}}
{{- $img := index . 1 -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default (default $.Chart.AppVersion $.Values.image.tag) $img.tag) -}}
{{- end -}}
{{- end }}

{{/*
Does the chart create the Secret itself? ("true" or "")
*/}}
{{- define "wasmwizard.createSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (or .Values.secrets.databaseUrl .Values.secrets.redisUrl .Values.secrets.adminToken .Values.secrets.metricsToken) -}}
{{- if not .Values.secrets.databaseUrl -}}
{{- fail "secrets.databaseUrl is required when the chart creates the Secret (or set secrets.existingSecret)" -}}
{{- end -}}
{{- if not .Values.secrets.redisUrl -}}
{{- fail "secrets.redisUrl is required when the chart creates the Secret (or set secrets.existingSecret)" -}}
{{- end -}}
true
{{- end -}}
{{- end }}

{{/*
Name of the Secret the pods read WIZARD_DATABASE_URL etc. from.
*/}}
{{- define "wasmwizard.secretName" -}}
{{- default (include "wasmwizard.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
Name of the ConfigMap with the shared non-secret configuration.
*/}}
{{- define "wasmwizard.configMapName" -}}
{{- printf "%s-config" (include "wasmwizard.fullname" .) }}
{{- end }}

{{/*
Environment variables from the Secret.
Usage: include "wasmwizard.secretEnv" (list $ $secretName $withAdminToken)
The admin token is optional: the variable stays unset when the key is missing.
*/}}
{{- define "wasmwizard.secretEnv" -}}
{{- $ := index . 0 -}}
{{- $secret := index . 1 -}}
{{- $withAdmin := index . 2 -}}
- name: WIZARD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $.Values.secrets.keys.databaseUrl }}
- name: WIZARD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $.Values.secrets.keys.redisUrl }}
{{- if $withAdmin }}
- name: WIZARD_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $.Values.secrets.keys.adminToken }}
      optional: true
- name: WIZARD_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $.Values.secrets.keys.metricsToken }}
      optional: true
{{- end }}
{{- end }}

{{/*
The URL KEDA reads the scaling figures from: worker.autoscaling.keda.url, or
the API Service of this release.
*/}}
{{- define "wasmwizard.scalingURL" -}}
{{- with .Values.worker.autoscaling.keda.url -}}
{{ . }}
{{- else -}}
{{ printf "http://%s-api.%s.svc:%d/v1/admin/scaling" (include "wasmwizard.fullname" .) .Release.Namespace (int .Values.api.service.port) }}
{{- end -}}
{{- end }}

{{/*
Non-secret configuration as key/value pairs (used by the ConfigMap and,
inline, by the migration hook Job which runs before the ConfigMap exists).
*/}}
{{- define "wasmwizard.configData" -}}
WIZARD_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
WIZARD_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
WIZARD_QUEUE_NAMESPACE: {{ .Values.config.queueNamespace | quote }}
WIZARD_WEBHOOK_ALLOW_PRIVATE: {{ .Values.config.webhookAllowPrivate | toString | quote }}
WIZARD_WEBHOOK_ALLOW_HTTP: {{ .Values.config.webhookAllowHTTP | toString | quote }}
{{- range $k, $v := .Values.config.extraEnv }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/*
Pod spread default: prefer different nodes. Usage: include "wasmwizard.topologySpread" (list $ "api" $component.topologySpreadConstraints)
*/}}
{{- define "wasmwizard.topologySpread" -}}
{{- $ := index . 0 -}}
{{- $component := index . 1 -}}
{{- $custom := index . 2 -}}
{{- if $custom -}}
{{ toYaml $custom }}
{{- else -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "wasmwizard.componentSelectorLabels" (list $ $component) | nindent 6 }}
{{- end -}}
{{- end }}

{{/*
Fail early on inconsistent values that the schema cannot express.
*/}}
{{- define "wasmwizard.validate" -}}
{{- if le (int .Values.worker.terminationGracePeriodSeconds) (int .Values.worker.shutdownTimeoutSeconds) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must be greater than worker.shutdownTimeoutSeconds (%d), or running jobs are killed before they can finish or be handed back" (int .Values.worker.terminationGracePeriodSeconds) (int .Values.worker.shutdownTimeoutSeconds)) -}}
{{- end -}}
{{- if le (int .Values.api.terminationGracePeriodSeconds) (int .Values.api.shutdownTimeoutSeconds) -}}
{{- fail (printf "api.terminationGracePeriodSeconds (%d) must be greater than api.shutdownTimeoutSeconds (%d)" (int .Values.api.terminationGracePeriodSeconds) (int .Values.api.shutdownTimeoutSeconds)) -}}
{{- end -}}
{{- $w := .Values.worker -}}
{{- if and (lt (int $w.shutdownTimeoutSeconds) (int $w.largestJobTimeoutSeconds)) (not $w.allowHandBack) -}}
{{- fail (printf "worker.shutdownTimeoutSeconds (%d) must be at least worker.largestJobTimeoutSeconds (%d): a worker removed by a scale-down would hand its longest jobs back to run again from the start; raise it (and terminationGracePeriodSeconds), or set worker.allowHandBack=true to accept that" (int $w.shutdownTimeoutSeconds) (int $w.largestJobTimeoutSeconds)) -}}
{{- end -}}
{{- $keda := $w.autoscaling.keda -}}
{{- if $keda.enabled -}}
{{- if gt (int $keda.minReplicaCount) (int $keda.maxReplicaCount) -}}
{{- fail "worker.autoscaling.keda.minReplicaCount must not exceed maxReplicaCount" -}}
{{- end -}}
{{- if or (lt (int $keda.fallback.replicas) (int $keda.minReplicaCount)) (gt (int $keda.fallback.replicas) (int $keda.maxReplicaCount)) -}}
{{- fail "worker.autoscaling.keda.fallback.replicas must be between minReplicaCount and maxReplicaCount" -}}
{{- end -}}
{{- if and (not $keda.tokenSecret.name) (not .Values.secrets.existingSecret) (not .Values.secrets.metricsToken) -}}
{{- fail "KEDA autoscaling reads GET /v1/admin/scaling with a token: set secrets.metricsToken (or secrets.existingSecret holding secrets.keys.metricsToken, or worker.autoscaling.keda.tokenSecret.name)" -}}
{{- end -}}
{{- end -}}
{{- if and $w.autoscaling.hpa.enabled (not $keda.enabled) -}}
{{- if gt (int $w.autoscaling.hpa.minReplicas) (int $w.autoscaling.hpa.maxReplicas) -}}
{{- fail "worker.autoscaling.hpa.minReplicas must not exceed maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- if .Values.api.autoscaling.enabled -}}
{{- if gt (int .Values.api.autoscaling.minReplicas) (int .Values.api.autoscaling.maxReplicas) -}}
{{- fail "api.autoscaling.minReplicas must not exceed maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
Names. Room is left for the longest suffix ("-messaging"): Service names are
DNS labels of at most 63 characters.
*/}}
{{- define "atenciones.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 53 | trimSuffix "-" }}
{{- end }}

{{- define "atenciones.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 53 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "atenciones.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "atenciones.labels" -}}
helm.sh/chart: {{ include "atenciones.chart" . }}
{{ include "atenciones.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: atenciones
{{- end }}

{{/* Every pod of the release carries these (NetworkPolicies trust them). */}}
{{- define "atenciones.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atenciones.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The components, in the order they are rendered, with their gRPC ports (the
binary's contract). Each runs `atenciones run --role <name>`.
*/}}
{{- define "atenciones.components" -}}
{{- toJson (list "gateway" "queue" "messaging" "form" "history") }}
{{- end }}

{{- define "atenciones.grpcPort" -}}
{{- get (dict "gateway" 50051 "queue" 50061 "messaging" 50062 "form" 50063 "history" 50064) . }}
{{- end }}

{{- define "atenciones.webhookPort" -}}8080{{- end }}
{{- define "atenciones.metricsPort" -}}9464{{- end }}
{{- define "atenciones.webhookPath" -}}/webhooks/whatsapp{{- end }}
{{- define "atenciones.configDir" -}}/etc/atenciones{{- end }}

{{/*
A component's settings: `defaults` deep-merged with `components.<name>`
(maps merge key by key; a non-empty list replaces the default's).
Call with (dict "root" $ "name" "queue"); returns JSON.
*/}}
{{- define "atenciones.component" -}}
{{- $own := index .root.Values.components .name | default dict }}
{{- toJson (mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $own)) }}
{{- end }}

{{/* Seconds Kubernetes waits after SIGTERM's preStop before SIGKILL. */}}
{{- define "atenciones.gracePeriod" -}}
{{- add .preStopSeconds .drainSeconds .terminationMarginSeconds }}
{{- end }}

{{- define "atenciones.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "atenciones.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The migration Job runs before the release's own objects exist (pre-install),
so it has its own ServiceAccount, created as a hook just before it.
*/}}
{{- define "atenciones.migrateServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-migrate" (include "atenciones.fullname" .) }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "atenciones.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Pod-level security: the image's nonroot user (distroless "nonroot"). */}}
{{- define "atenciones.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "atenciones.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* An env var read from an existing Secret. Call with (list "NAME" $ref). */}}
{{- define "atenciones.secretEnv" -}}
{{- $ref := index . 1 -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name | quote }}
      key: {{ $ref.key | quote }}
{{- end }}

{{/*
Secrets each process needs, and nothing more: every server signs and checks
calls between processes with internal.secret; with internalTls, every process
verifies the services' certificate with the CA and the four services (not the
gateway, whose port stays plain) serve it with its key; the gateway verifies
agents' tokens; each service reaches only its own database; messaging alone
talks to WhatsApp and to the media store.
*/}}
{{- define "atenciones.componentSecretEnv" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $s := $root.Values.secrets }}
{{- include "atenciones.secretEnv" (list "ATENCIONES_INTERNAL__SECRET" $s.internalSecret) }}
{{- if eq $name "gateway" }}
{{- if eq $root.Values.auth.algorithm "HS256" }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_GATEWAY__AUTH__JWT_SECRET" $s.jwtSecret) }}
{{- else }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_GATEWAY__AUTH__PUBLIC_KEY_PEM" $s.jwtPublicKey) }}
{{- end }}
{{- else }}
{{ include "atenciones.secretEnv" (list (printf "ATENCIONES_%s__DATABASE_URL" (upper $name)) (index $root.Values.database $name)) }}
{{- end }}
{{- with $root.Values.internalTls }}
{{- if .enabled }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_INTERNAL__TLS_CA_PEM" (dict "name" .secretName "key" .caKey)) }}
{{- if ne $name "gateway" }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_INTERNAL__TLS_CERT_PEM" (dict "name" .secretName "key" .certKey)) }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_INTERNAL__TLS_KEY_PEM" (dict "name" .secretName "key" .privateKeyKey)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $name "messaging" }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_WHATSAPP__ACCESS_TOKEN" $s.whatsappAccessToken) }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_WHATSAPP__APP_SECRET" $s.whatsappAppSecret) }}
{{ include "atenciones.secretEnv" (list "ATENCIONES_WHATSAPP__VERIFY_TOKEN" $s.whatsappVerifyToken) }}
{{- range $option, $ref := $root.Values.media.storeOptionsFromSecrets }}
{{ include "atenciones.secretEnv" (list (printf "ATENCIONES_MEDIA__STORE_OPTIONS__%s" (upper $option)) $ref) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The settings file (TOML): what Kubernetes needs (listen on every interface,
reach the other services through their Services, https:// with internalTls,
data under /data, migrations by the Job, JSON logs), the typed values, then
`config` merged over them.
*/}}
{{- define "atenciones.settings" -}}
{{- include "atenciones.settings.toml" . | trim }}
{{ end }}

{{- define "atenciones.settings.toml" -}}
{{- include "atenciones.checkConfig" . }}
{{- include "atenciones.checkInternalTls" . }}
{{- $fullname := include "atenciones.fullname" . }}
{{- $scheme := ternary "https" "http" .Values.internalTls.enabled }}
{{- $s := dict
  "demo" false
  "data_dir" "/data"
  "database" (dict "migrate" false)
  "telemetry" (dict
    "log_format" "json"
    "log_filter" .Values.telemetry.logFilter
    "otlp_endpoint" .Values.telemetry.otlpEndpoint
    "metrics_listen" (ternary (printf "0.0.0.0:%s" (include "atenciones.metricsPort" .)) "" .Values.metrics.enabled))
  "gateway" (dict
    "listen" (printf "0.0.0.0:%s" (include "atenciones.grpcPort" "gateway"))
    "cors_allowed_origins" .Values.corsAllowedOrigins
    "auth" (dict
      "algorithm" .Values.auth.algorithm
      "issuer" .Values.auth.issuer
      "audience" .Values.auth.audience
      "leeway_seconds" .Values.auth.leewaySeconds))
  "media" (dict
    "store_url" .Values.media.storeUrl
    "store_options" .Values.media.storeOptions)
}}
{{- range $name := list "queue" "messaging" "form" "history" }}
{{- $port := include "atenciones.grpcPort" $name }}
{{- $_ := set $s $name (dict
  "listen" (printf "0.0.0.0:%s" $port)
  "url" (printf "%s://%s-%s:%s" $scheme $fullname $name $port)) }}
{{- end }}
{{- $_ := set $s.messaging "webhook_listen" (printf "0.0.0.0:%s" (include "atenciones.webhookPort" .)) }}
{{- $merged := mergeOverwrite (deepCopy (.Values.config | default dict)) $s }}
{{- include "atenciones.toml.table" (dict "table" $merged "prefix" list) }}
{{- end }}

{{/*
`config` may set any setting but these: the chart owns the first (ports,
addresses, data dir, migration), and the second come from Secrets only.
*/}}
{{- define "atenciones.checkConfig" -}}
{{- $owned := list "demo" "data_dir" "database.migrate" "telemetry.log_format" "telemetry.otlp_endpoint" "telemetry.log_filter" "telemetry.metrics_listen" "gateway.listen" "gateway.cors_allowed_origins" "gateway.auth.algorithm" "gateway.auth.issuer" "gateway.auth.audience" "gateway.auth.leeway_seconds" "queue.listen" "queue.url" "messaging.listen" "messaging.url" "messaging.webhook_listen" "form.listen" "form.url" "history.listen" "history.url" "media.store_url" "media.store_options" }}
{{- $secret := list "whatsapp.access_token" "whatsapp.app_secret" "whatsapp.verify_token" "gateway.auth.jwt_secret" "gateway.auth.public_key_pem" "internal.secret" "queue.database_url" "messaging.database_url" "form.database_url" "history.database_url" }}
{{- $tls := list "internal.tls_cert_pem" "internal.tls_key_pem" "internal.tls_ca_pem" }}
{{- range $path := concat $owned $secret $tls }}
{{- $cur := $.Values.config }}
{{- $found := true }}
{{- range $part := splitList "." $path }}
{{- if and $found (kindIs "map" $cur) (hasKey $cur $part) }}
{{- $cur = index $cur $part }}
{{- else }}
{{- $found = false }}
{{- end }}
{{- end }}
{{- if and $found (has $path $tls) }}
{{- fail (printf "config.%s: the certificates between the services come from an existing Secret: set internalTls (enabled, secretName)" $path) }}
{{- else if and $found (has $path $secret) }}
{{- fail (printf "config.%s: secrets are never written in values; name the existing Secret in `secrets` or `database` instead" $path) }}
{{- else if $found }}
{{- fail (printf "config.%s is set by the chart (see values.yaml: telemetry, auth, corsAllowedOrigins, media, metrics), not through config" $path) }}
{{- end }}
{{- end }}
{{- range $option, $_ := .Values.media.storeOptions }}
{{- if regexMatch "(?i)(secret|token|password|_key$)" $option }}
{{- fail (printf "media.storeOptions.%s looks like a credential: put it in a Secret and name it in media.storeOptionsFromSecrets" $option) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
internalTls needs its Secret: the schema says so too, this holds without it
(helm --skip-schema-validation).
*/}}
{{- define "atenciones.checkInternalTls" -}}
{{- with .Values.internalTls }}
{{- if and .enabled (not .secretName) }}
{{- fail "internalTls.secretName: internalTls.enabled needs the existing Secret holding the services' certificate, its key and the CA" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A map as TOML: its scalar and array keys, then each sub-map as a [table].
Call with (dict "table" $map "prefix" (list "a" "b")).
Helm reads numbers in values as floats: whole ones are written as integers.
A null value leaves the key out (so the built-in default applies).
*/}}
{{- define "atenciones.toml.table" -}}
{{- $prefix := .prefix }}
{{- range $key, $value := .table }}
{{- if and (not (kindIs "map" $value)) (not (kindIs "invalid" $value)) }}
{{ include "atenciones.toml.key" $key }} = {{ include "atenciones.toml.value" (dict "value" $value "path" (append $prefix $key)) }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- if kindIs "map" $value }}
{{- $path := append $prefix $key }}
{{- $header := list }}
{{- range $part := $path }}{{ $header = append $header (include "atenciones.toml.key" $part) }}{{ end }}

[{{ join "." $header }}]
{{- include "atenciones.toml.table" (dict "table" $value "prefix" $path) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "atenciones.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "atenciones.toml.value" -}}
{{- $v := .value }}
{{- if kindIs "string" $v }}
{{- /* A JSON string is a valid TOML basic string (same escapes). */}}
{{- toJson $v }}
{{- else if kindIs "bool" $v }}
{{- ternary "true" "false" $v }}
{{- else if kindIs "float64" $v }}
{{- if eq $v (floor $v) }}{{ printf "%d" (int64 $v) }}{{ else }}{{ printf "%v" $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) }}
{{- printf "%d" $v }}
{{- else if kindIs "slice" $v }}
{{- $items := list }}
{{- range $i, $item := $v }}
{{- if or (kindIs "map" $item) (kindIs "slice" $item) (kindIs "invalid" $item) }}
{{- fail (printf "config.%s: only arrays of strings, numbers or booleans can be written as TOML here" (join "." $.path)) }}
{{- end }}
{{- $items = append $items (include "atenciones.toml.value" (dict "value" $item "path" $.path)) }}
{{- end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else }}
{{- fail (printf "config.%s: cannot write a %s as TOML" (join "." .path) (kindOf $v)) }}
{{- end }}
{{- end }}

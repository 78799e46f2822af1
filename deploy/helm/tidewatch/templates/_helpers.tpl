{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "tidewatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; component objects append "-<component>". */}}
{{- define "tidewatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects. Call with (dict "root" $ "component" "aggregator"). */}}
{{- define "tidewatch.componentName" -}}
{{- printf "%s-%s" (include "tidewatch.fullname" .root) .component -}}
{{- end -}}

{{- define "tidewatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels selecting one component's pods (immutable: never add to these). */}}
{{- define "tidewatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tidewatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of a component's objects. */}}
{{- define "tidewatch.labels" -}}
helm.sh/chart: {{ include "tidewatch.chart" .root }}
{{ include "tidewatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tidewatch
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tidewatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The tidewatch config file of one component: top-level fields plus its own section, taken
from config.<section>, or given pre-rendered as "body" (YAML).
*/}}
{{- define "tidewatch.configFile" -}}
{{- $root := .root -}}
{{- $section := .section -}}
listen: {{ printf "0.0.0.0:%d" (int $root.Values.port) | quote }}
data_dir: {{ $root.Values.dataDir | quote }}
log_format: {{ $root.Values.logFormat | quote }}
{{ $section }}:
{{- if .body }}
{{ .body | indent 2 }}
{{- else }}
{{- with index $root.Values.config $section }}
{{ toYaml . | indent 2 }}
{{- else }} {}
{{- end }}
{{- end }}
{{- end -}}

{{/* The aggregator's mode in the StatefulSet: Kafka consumers in distributed mode. */}}
{{- define "tidewatch.aggregatorMode" -}}
{{- if .Values.distributed.enabled }}consumer{{ else }}standalone{{ end -}}
{{- end -}}

{{/*
The `aggregator:` section of one aggregator role (mode: standalone, consumer, ingester, query
or compactor): config.aggregator plus `distributed` settings derived from the s3 and
distributed values. Fields the user set under config.aggregator.distributed win, except
`mode`. Call with (dict "root" $ "mode" "consumer").
*/}}
{{- define "tidewatch.aggregatorSection" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $section := deepCopy (default (dict) $v.config.aggregator) -}}
{{- $userDist := default (dict) (index $section "distributed") -}}
{{- $dist := dict -}}
{{- if $v.s3.enabled -}}
{{- $os := dict "bucket" $v.s3.bucket "region" $v.s3.region "allow_http" $v.s3.allowHttp "sync_interval" $v.s3.syncInterval -}}
{{- with $v.s3.endpoint }}{{ $_ := set $os "endpoint" . }}{{ end -}}
{{- with $v.s3.prefix }}{{ $_ := set $os "prefix" (trimSuffix "/" .) }}{{ end -}}
{{- if ne .mode "ingester" }}{{ $_ := set $dist "object_store" $os }}{{ end -}}
{{- end -}}
{{- if $v.distributed.enabled -}}
{{- $k := $v.distributed.kafka -}}
{{- if ne .mode "compactor" -}}
{{- $_ := set $dist "kafka" (dict "brokers" $k.brokers "topic" $k.topic "group" $k.group) -}}
{{- end -}}
{{- if eq .mode "query" -}}
{{- $sts := include "tidewatch.componentName" (dict "root" $root "component" "aggregator") -}}
{{- $urls := list -}}
{{- range $i := until (int $v.aggregator.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s-headless.%s.svc:%d" $sts $i $sts $root.Release.Namespace (int $v.port)) -}}
{{- end -}}
{{- $_ := set $dist "query" (dict "replicas" $urls) -}}
{{- end -}}
{{- end -}}
{{- if eq .mode "compactor" }}{{ $_ := set $dist "replica" "compactor" }}{{ end -}}
{{- if or $v.s3.enabled $v.distributed.enabled -}}
{{- $merged := mergeOverwrite $dist $userDist -}}
{{- $_ := set $merged "mode" .mode -}}
{{- $_ := set $section "distributed" $merged -}}
{{- end -}}
{{- toYaml $section -}}
{{- end -}}

{{/* The S3 credentials of the aggregator roles (the names the object_store crate reads). */}}
{{- define "tidewatch.s3Env" -}}
{{- with .Values.s3 }}
{{- if .enabled }}
{{- include "tidewatch.secretEnv" (dict "root" $ "env" "AWS_ACCESS_KEY_ID" "existingSecret" .existingSecret "key" .accessKeyIdKey "value" .accessKeyId) }}
{{- include "tidewatch.secretEnv" (dict "root" $ "env" "AWS_SECRET_ACCESS_KEY" "existingSecret" .existingSecret "key" .secretAccessKeyKey "value" .secretAccessKey) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Name of the Secret holding credentials the chart was given as values. */}}
{{- define "tidewatch.secretName" -}}
{{- printf "%s-credentials" (include "tidewatch.fullname" .) -}}
{{- end -}}

{{/*
An env entry reading key from a Secret: the user's existingSecret, or the chart's
credentials Secret when the plain value is set. Renders nothing when neither is set.
Call with (dict "root" $ "env" "NAME" "existingSecret" "" "key" "k" "value" "").
*/}}
{{- define "tidewatch.secretEnv" -}}
{{- if or .existingSecret .value }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ default (include "tidewatch.secretName" .root) .existingSecret }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{/* Addresses of the services, given to every component. */}}
{{- define "tidewatch.peerEnv" -}}
{{- $root := . -}}
{{- $ns := .Release.Namespace -}}
- name: TIDEWATCH_AGGREGATOR_URL
  value: {{ printf "http://%s.%s.svc:%d" (include "tidewatch.componentName" (dict "root" $root "component" "aggregator")) $ns (int .Values.port) | quote }}
- name: TIDEWATCH_ALERTMANAGER_URL
  value: {{ printf "http://%s.%s.svc:%d" (include "tidewatch.componentName" (dict "root" $root "component" "alertmanager")) $ns (int .Values.port) | quote }}
- name: TIDEWATCH_PLATFORM_URL
  value: {{ printf "http://%s.%s.svc:%d" (include "tidewatch.componentName" (dict "root" $root "component" "platform")) $ns (int .Values.platform.service.port) | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- end -}}

{{/* The tidewatch container's command line for one role. */}}
{{- define "tidewatch.args" -}}
- {{ .role }}
- --config=/etc/tidewatch/tidewatch.yaml
- {{ printf "--listen=0.0.0.0:%d" (int .root.Values.port) }}
- {{ printf "--data-dir=%s" .root.Values.dataDir }}
- {{ printf "--log-format=%s" .root.Values.logFormat }}
{{- end -}}

{{/* Ports and probes of a tidewatch container. */}}
{{- define "tidewatch.portsAndProbes" -}}
ports:
  - name: http
    containerPort: {{ .Values.port }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /-/healthy
    port: http
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /-/healthy
    port: http
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /-/ready
    port: http
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end -}}

{{/* Pod template annotations: config checksum so a config change rolls the pods. */}}
{{- define "tidewatch.podAnnotations" -}}
checksum/config: {{ include "tidewatch.configFile" . | sha256sum }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Fails rendering with a message naming the value when it is missing. */}}
{{- define "tidewatch.validate" -}}
{{- if and .Values.outputs.kafka.enabled (not .Values.outputs.kafka.brokers) -}}
{{- fail "outputs.kafka.brokers: at least one broker is required when outputs.kafka.enabled is true" -}}
{{- end -}}
{{- if and .Values.outputs.elasticsearch.enabled (not .Values.outputs.elasticsearch.url) -}}
{{- fail "outputs.elasticsearch.url: required when outputs.elasticsearch.enabled is true" -}}
{{- end -}}
{{- if and .Values.s3.enabled (not .Values.s3.bucket) -}}
{{- fail "s3.bucket: required when s3.enabled is true" -}}
{{- end -}}
{{- if and .Values.distributed.enabled (not .Values.s3.enabled) -}}
{{- fail "distributed.enabled: needs s3.enabled (the bucket holds the blocks every query replica reads)" -}}
{{- end -}}
{{- if and .Values.distributed.enabled (not .Values.distributed.kafka.brokers) -}}
{{- fail "distributed.kafka.brokers: at least one broker is required when distributed.enabled is true" -}}
{{- end -}}
{{- if and .Values.distributed.enabled (not .Values.aggregator.enabled) -}}
{{- fail "distributed.enabled: needs aggregator.enabled (the aggregator StatefulSet runs the Kafka consumers)" -}}
{{- end -}}
{{- if and (gt (int .Values.aggregator.replicas) 1) (not .Values.distributed.enabled) -}}
{{- fail "aggregator.replicas: more than 1 replica needs distributed.enabled=true (standalone replicas would each hold a different part of the data)" -}}
{{- end -}}
{{- if and .Values.smtp.enabled (not .Values.smtp.host) -}}
{{- fail "smtp.host: required when smtp.enabled is true" -}}
{{- end -}}
{{- if and .Values.smtp.enabled (not .Values.smtp.from) -}}
{{- fail "smtp.from: required when smtp.enabled is true" -}}
{{- end -}}
{{- range $c := list "alertmanager" "platform" -}}
{{- $v := index $.Values $c -}}
{{- if and $v.persistence.enabled (gt (int $v.replicas) 1) -}}
{{- fail (printf "%s.replicas: more than 1 replica needs %s.persistence.enabled=false (the volume is ReadWriteOnce)" $c $c) -}}
{{- end -}}
{{- end -}}
{{- end -}}

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

{{/* The tidewatch config file of one component: top-level fields plus its own section. */}}
{{- define "tidewatch.configFile" -}}
{{- $root := .root -}}
{{- $section := .section -}}
listen: {{ printf "0.0.0.0:%d" (int $root.Values.port) | quote }}
data_dir: {{ $root.Values.dataDir | quote }}
log_format: {{ $root.Values.logFormat | quote }}
{{ $section }}:
{{- with index $root.Values.config $section }}
{{ toYaml . | indent 2 }}
{{- else }} {}
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
checksum/config: {{ include "tidewatch.configFile" (dict "root" .root "section" .section) | sha256sum }}
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

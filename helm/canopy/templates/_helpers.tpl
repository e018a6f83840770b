{{/*
Names. Kubernetes names are DNS labels: 63 characters at most. Shard StatefulSets
append "-shard-<i>" and their pods "-<ordinal>", so the prefix is cut to 40.
*/}}
{{- define "canopy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "canopy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "canopy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component (router, shard, etcd); they never change after install. */}}
{{- define "canopy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canopy.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component: selector labels plus chart bookkeeping. */}}
{{- define "canopy.labels" -}}
helm.sh/chart: {{ include "canopy.chart" .root }}
{{ include "canopy.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: canopy
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the pods of one shard. */}}
{{- define "canopy.shardSelectorLabels" -}}
{{ include "canopy.selectorLabels" (dict "root" .root "component" "shard") }}
canopy.dev/index: {{ .root.Values.index.name | quote }}
canopy.dev/shard: {{ .shard | quote }}
{{- end }}

{{/* All labels of the resources of one shard. */}}
{{- define "canopy.shardLabels" -}}
{{ include "canopy.labels" (dict "root" .root "component" "shard") }}
canopy.dev/index: {{ .root.Values.index.name | quote }}
canopy.dev/shard: {{ .shard | quote }}
{{- end }}

{{- define "canopy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "canopy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "canopy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Render-time checks that a JSON schema cannot express (cross-value rules).
Included by every workload so a bad combination fails the whole render.
*/}}
{{- define "canopy.validate" -}}
{{- $etcd := .Values.etcd }}
{{- if and $etcd.bundled.enabled (gt (len $etcd.endpoints) 0) }}
{{- fail "etcd: set either etcd.endpoints (an existing cluster) or etcd.bundled.enabled, not both" }}
{{- end }}
{{- if and (not $etcd.bundled.enabled) (eq (len $etcd.endpoints) 0) }}
{{- fail "etcd: set etcd.endpoints (client URLs of an existing cluster) or etcd.bundled.enabled=true" }}
{{- end }}
{{- if and $etcd.bundled.enabled (or $etcd.tls.enabled $etcd.auth.enabled) }}
{{- fail "etcd: the bundled etcd serves plain HTTP without auth; etcd.tls and etcd.auth apply to an external etcd (etcd.endpoints)" }}
{{- end }}
{{- if and $etcd.tls.enabled (not $etcd.tls.secretName) }}
{{- fail "etcd.tls.enabled needs etcd.tls.secretName (a Secret with ca.crt, tls.crt, tls.key)" }}
{{- end }}
{{- if and $etcd.auth.enabled (or (not $etcd.auth.user) (not $etcd.auth.passwordSecret.name)) }}
{{- fail "etcd.auth.enabled needs etcd.auth.user and etcd.auth.passwordSecret.name" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a Secret with tls.crt, tls.key, ca.crt)" }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- range $role := list "router" "shard" }}
{{- $component := index $.Values $role }}
{{- if or (eq (int $component.healthPort) (int $component.port)) (and $.Values.metrics.enabled (eq (int $component.healthPort) (int $.Values.metrics.port))) }}
{{- fail (printf "%s.healthPort (%v) must differ from %s.port and metrics.port: with tls.enabled it is a plaintext health-only port of its own" $role $component.healthPort $role) }}
{{- end }}
{{- end }}
{{- end }}
{{- $volume := .Values.indexVolume }}
{{- if and (eq $volume.type "pvc") (not $volume.pvc.claimName) }}
{{- fail "indexVolume.type=pvc needs indexVolume.pvc.claimName" }}
{{- end }}
{{- if and (eq $volume.type "hostPath") (not $volume.hostPath.path) }}
{{- fail "indexVolume.type=hostPath needs indexVolume.hostPath.path" }}
{{- end }}
{{- if and (eq $volume.type "url") (not $volume.url.source) }}
{{- fail "indexVolume.type=url needs indexVolume.url.source (the URL of a .tar.gz of version folders)" }}
{{- end }}
{{- if le (mul .Values.shard.terminationGracePeriodSeconds 1000) (int64 .Values.shard.drainTimeoutMs) }}
{{- fail (printf "shard.terminationGracePeriodSeconds (%v s) must exceed shard.drainTimeoutMs (%v ms), or the kubelet kills nodes mid-drain" .Values.shard.terminationGracePeriodSeconds .Values.shard.drainTimeoutMs) }}
{{- end }}
{{- $monitoring := .Values.metrics }}
{{- if and (not $monitoring.enabled) (or $monitoring.serviceMonitor.enabled $monitoring.podMonitor.enabled $monitoring.prometheusRule.enabled) }}
{{- fail "metrics.serviceMonitor, metrics.podMonitor and metrics.prometheusRule need metrics.enabled=true (the pods' metrics port)" }}
{{- end }}
{{- if and $monitoring.serviceMonitor.enabled $monitoring.podMonitor.enabled }}
{{- fail "set metrics.serviceMonitor.enabled or metrics.podMonitor.enabled, not both: each pod would be scraped twice" }}
{{- end }}
{{- if and .Values.router.autoscaling.enabled (gt (int64 .Values.router.autoscaling.minReplicas) (int64 .Values.router.autoscaling.maxReplicas)) }}
{{- fail "router.autoscaling.minReplicas must not exceed router.autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{/* Comma-separated etcd client URLs: the given ones, or each bundled member by its stable DNS name. */}}
{{- define "canopy.etcdEndpoints" -}}
{{- if .Values.etcd.bundled.enabled }}
{{- $fullname := include "canopy.fullname" . }}
{{- $urls := list }}
{{- range $i := until (int .Values.etcd.bundled.replicas) }}
{{- $urls = append $urls (printf "http://%s-etcd-%d.%s-etcd.%s.svc:%d" $fullname $i $fullname $.Release.Namespace (int $.Values.etcd.bundled.clientPort)) }}
{{- end }}
{{- join "," $urls }}
{{- else }}
{{- join "," .Values.etcd.endpoints }}
{{- end }}
{{- end }}

{{/* Flags shared by router and shard: registry, TLS, metrics. One list item per line. */}}
{{- define "canopy.commonArgs" -}}
- --etcd={{ include "canopy.etcdEndpoints" . }}
- --cluster={{ .Values.cluster.name }}
{{- if .Values.etcd.tls.enabled }}
- --etcd-tls-cert=/etc/canopy/etcd-tls/tls.crt
- --etcd-tls-key=/etc/canopy/etcd-tls/tls.key
- --etcd-tls-ca=/etc/canopy/etcd-tls/ca.crt
{{- end }}
{{- if .Values.etcd.auth.enabled }}
- --etcd-user={{ .Values.etcd.auth.user }}
{{- end }}
{{- if .Values.tls.enabled }}
- --tls-cert=/etc/canopy/tls/tls.crt
- --tls-key=/etc/canopy/tls/tls.key
- --tls-ca=/etc/canopy/tls/ca.crt
{{- if .Values.tls.requireClientCert }}
- --tls-require-client-cert
{{- end }}
{{- end }}
{{- if .Values.metrics.enabled }}
- --metrics-listen=0.0.0.0:{{ .Values.metrics.port }}
{{- end }}
{{- end }}

{{/* Environment shared by router and shard; .serviceName is the OTEL service name. */}}
{{- define "canopy.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: OTEL_SERVICE_NAME
  value: {{ .serviceName | quote }}
{{- with .root.Values.otel }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .tracesSampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .tracesSamplerArg | quote }}
{{- end }}
{{- end }}
{{- if .root.Values.etcd.auth.enabled }}
- name: ETCD_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.etcd.auth.passwordSecret.name }}
      key: {{ .root.Values.etcd.auth.passwordSecret.key }}
{{- end }}
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts shared by router and shard: a writable /tmp and the TLS secrets. */}}
{{- define "canopy.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/canopy/tls
  readOnly: true
{{- end }}
{{- if .Values.etcd.tls.enabled }}
- name: etcd-tls
  mountPath: /etc/canopy/etcd-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "canopy.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.etcd.tls.enabled }}
- name: etcd-tls
  secret:
    secretName: {{ .Values.etcd.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* Container ports shared by router and shard; .healthPort is declared with tls.enabled (--health-listen). */}}
{{- define "canopy.ports" -}}
- name: grpc
  containerPort: {{ .port }}
  protocol: TCP
{{- if .root.Values.tls.enabled }}
- name: health
  containerPort: {{ .healthPort }}
  protocol: TCP
{{- end }}
{{- if .root.Values.metrics.enabled }}
- name: metrics
  containerPort: {{ .root.Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end }}

{{/*
One native gRPC probe of grpc.health.v1, asking .probe.service. Without TLS it
asks the serving port (.port); with tls.enabled, which the kubelet's gRPC
probe cannot speak, the plaintext health-only port (.healthPort) that
--health-listen opens, which reports the same statuses.
*/}}
{{- define "canopy.probe" -}}
grpc:
  port: {{ ternary .healthPort .port .root.Values.tls.enabled }}
  {{- with .probe.service }}
  service: {{ . | quote }}
  {{- end }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* Pod annotations: Prometheus scrape hints when metrics are on, plus the component's own. */}}
{{- define "canopy.podAnnotations" -}}
{{- if and .root.Values.metrics.enabled .root.Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .root.Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .annotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
topologySpreadConstraints as given, each without a labelSelector getting the
component's own selector labels (.selector, YAML): a constraint then spreads
the pods it is written for (a shard's replicas, or the routers).
*/}}
{{- define "canopy.topologySpread" -}}
{{- $selector := .selector | fromYaml }}
{{- $constraints := list }}
{{- range .constraints }}
{{- $constraints = append $constraints (ternary . (set (deepCopy .) "labelSelector" (dict "matchLabels" $selector)) (hasKey . "labelSelector")) }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}

{{/* A ServiceMonitor's or PodMonitor's scrape endpoint: the metrics port, with the configured interval and timeout. */}}
{{- define "canopy.monitorEndpoint" -}}
- port: metrics
  path: /metrics
  {{- with .interval }}
  interval: {{ . }}
  {{- end }}
  {{- with .scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
{{- end }}

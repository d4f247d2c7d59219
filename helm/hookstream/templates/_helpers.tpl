{{/* Names, labels and the few computations the templates share. */}}

{{- define "hookstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hookstream.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "name" "delivery") */}}
{{- define "hookstream.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "hookstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hookstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "hookstream.secretName" -}}
{{- default (printf "%s-secrets" (include "hookstream.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{/* A Settings value as an environment variable's text: lists joined by commas. */}}
{{- define "hookstream.envValue" -}}
{{- if kindIs "slice" . -}}{{ join "," . }}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}{{ int64 . }}
{{- else -}}{{ . }}
{{- end -}}
{{- end -}}

{{/* Maximum replicas of a consumer: never more than its topics' partitions. */}}
{{- define "hookstream.maxReplicas" -}}
{{- min .Values.autoscaling.maxReplicas .Values.config.partitions -}}
{{- end -}}

{{- define "hookstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Kafka connection security (values `kafka:`; README "Kafka security").
Certificates are mounted read-only here; passwords come from Secrets through env. */}}
{{- define "hookstream.kafkaTlsDir" -}}/etc/hookstream/kafka-tls{{- end -}}

{{/* The Settings that `kafka:` decides, as YAML: they override `config:` in the ConfigMap. */}}
{{- define "hookstream.kafkaSettings" -}}
{{- $k := .Values.kafka -}}
{{- $dir := include "hookstream.kafkaTlsDir" . -}}
{{- if or $k.tls.enabled $k.sasl.mechanism }}
kafka_security_protocol: {{ printf "%s%s" (ternary "SASL_" "" (ne $k.sasl.mechanism "")) (ternary "SSL" "PLAINTEXT" $k.tls.enabled) }}
{{- end }}
{{- if $k.tls.caSecret.name }}
kafka_ssl_ca_location: {{ $dir }}/ca.crt
{{- end }}
{{- if $k.tls.clientCertSecret }}
kafka_ssl_certificate_location: {{ $dir }}/tls.crt
kafka_ssl_key_location: {{ $dir }}/tls.key
{{- end }}
{{- if $k.sasl.mechanism }}
kafka_sasl_mechanism: {{ $k.sasl.mechanism }}
{{- end }}
{{- if eq $k.sasl.mechanism "OAUTHBEARER" }}
kafka_oauth_token_url: {{ $k.oauth.tokenUrl | quote }}
kafka_oauth_client_id: {{ $k.oauth.clientId | quote }}
kafka_oauth_scope: {{ $k.oauth.scope | quote }}
{{- end }}
{{- end -}}

{{/* Every Setting of the ConfigMap: `config:`, with what `kafka:` decides on top. */}}
{{- define "hookstream.config" -}}
{{- toYaml (merge (include "hookstream.kafkaSettings" . | fromYaml) .Values.config) -}}
{{- end -}}

{{/* The Secret with a component's SASL username and password:
(dict "root" $ "secret" $c.kafkaSecret), the override first. */}}
{{- define "hookstream.kafkaSaslSecret" -}}
{{- default .root.Values.kafka.sasl.existingSecret .secret -}}
{{- end -}}

{{/* env entries of a Kafka client container: (dict "root" $ "secret" <override>).
Explicit env wins over envFrom, so these replace the chart Secret's empty keys. */}}
{{- define "hookstream.kafkaEnv" -}}
{{- $k := .root.Values.kafka -}}
{{- if eq $k.sasl.mechanism "OAUTHBEARER" }}
- name: HOOKSTREAM_KAFKA_OAUTH_CLIENT_SECRET
  valueFrom:
    secretKeyRef: {name: {{ $k.oauth.existingSecret | quote }}, key: {{ $k.oauth.clientSecretKey | quote }}}
{{- else if $k.sasl.mechanism }}
{{- $secret := include "hookstream.kafkaSaslSecret" . }}
- name: HOOKSTREAM_KAFKA_SASL_USERNAME
  {{- if $k.sasl.usernameKey }}
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $k.sasl.usernameKey | quote }}}
  {{- else }}
  value: {{ $secret | quote }}  # the Secret is named after its user (Strimzi's KafkaUser)
  {{- end }}
- name: HOOKSTREAM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $k.sasl.passwordKey | quote }}}
{{- end }}
{{- end -}}

{{/* The read-only volume of the CA and client certificate, when there are any. */}}
{{- define "hookstream.kafkaTlsVolume" -}}
{{- $tls := .Values.kafka.tls -}}
{{- if or $tls.caSecret.name $tls.clientCertSecret }}
- name: kafka-tls
  projected:
    defaultMode: 0440
    sources:
      {{- if $tls.caSecret.name }}
      - secret:
          name: {{ $tls.caSecret.name | quote }}
          items: [{key: {{ $tls.caSecret.key | quote }}, path: ca.crt}]
      {{- end }}
      {{- if $tls.clientCertSecret }}
      - secret:
          name: {{ $tls.clientCertSecret | quote }}
          items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]
      {{- end }}
{{- end }}
{{- end -}}

{{- define "hookstream.kafkaTlsMount" -}}
{{- if or .Values.kafka.tls.caSecret.name .Values.kafka.tls.clientCertSecret }}
- name: kafka-tls
  mountPath: {{ include "hookstream.kafkaTlsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* What the chart refuses to render, each with the values to use instead. */}}
{{- define "hookstream.validate" -}}
{{- if .Values.config.group_instance_id }}
{{- fail "config.group_instance_id would give every pod the same name, and Kafka fences a member when another joins under its name: leave it empty, the StatefulSets (components.*.stableIdentity) give each pod its own" }}
{{- end }}
{{- if contains "@" .Values.config.schema_registry_url }}
{{- fail "config.schema_registry_url must not hold credentials (user:password@host): the ConfigMap would show them in clear text. Give the URL without them and the credentials through a Secret (secrets.*, or existingSecret; see the chart README, \"Kafka security\")" }}
{{- end }}
{{- $k := .Values.kafka }}
{{- if and (or $k.tls.caSecret.name $k.tls.clientCertSecret) (not $k.tls.enabled) }}
{{- fail "kafka.tls.caSecret and kafka.tls.clientCertSecret need kafka.tls.enabled: true" }}
{{- end }}
{{- if eq $k.sasl.mechanism "OAUTHBEARER" }}
{{- if not (and $k.oauth.tokenUrl $k.oauth.clientId $k.oauth.existingSecret) }}
{{- fail "kafka.sasl.mechanism OAUTHBEARER needs kafka.oauth.tokenUrl, kafka.oauth.clientId and kafka.oauth.existingSecret" }}
{{- end }}
{{- if .Values.secrets.kafka_oauth_client_secret }}
{{- fail "secrets.kafka_oauth_client_secret is not used with kafka.sasl: put the client secret in kafka.oauth.existingSecret" }}
{{- end }}
{{- else if $k.sasl.mechanism }}
{{- if .Values.secrets.kafka_sasl_password }}
{{- fail "secrets.kafka_sasl_password is not used with kafka.sasl: put the password in kafka.sasl.existingSecret" }}
{{- end }}
{{- range $name, $c := .Values.components }}
{{- if and $c.enabled (not (include "hookstream.kafkaSaslSecret" (dict "root" $ "secret" $c.kafkaSecret))) }}
{{- fail (printf "kafka.sasl.mechanism %s needs kafka.sasl.existingSecret (or components.%s.kafkaSecret)" $k.sasl.mechanism $name) }}
{{- end }}
{{- end }}
{{- if and .Values.topicsJob.enabled (not (include "hookstream.kafkaSaslSecret" (dict "root" $ "secret" .Values.topicsJob.kafkaSecret))) }}
{{- fail (printf "kafka.sasl.mechanism %s needs kafka.sasl.existingSecret (or topicsJob.kafkaSecret)" $k.sasl.mechanism) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A component's workload: a StatefulSet where pods need a stable identity (components.*.stableIdentity). */}}
{{- define "hookstream.workloadKind" -}}
{{- ternary "StatefulSet" "Deployment" (default false .stableIdentity) -}}
{{- end -}}

{{/* A container's resources: components.*.resources, or for a component of several worker
processes (workersSetting) its perWorker figures times config's number of workers. */}}
{{- define "hookstream.resources" -}}
{{- $c := .c }}
{{- if $c.workersSetting }}
{{- $workers := int (index .root.Values.config $c.workersSetting) }}
{{- if lt $workers 1 }}
{{- fail (printf "config.%s must be at least 1 in a pod: 0 (the CPU count) would be its node's CPUs" $c.workersSetting) }}
{{- end }}
{{- $w := $c.perWorker }}
requests:
  cpu: {{ printf "%dm" (mul $workers $w.cpuRequestMillicores) }}
  memory: {{ printf "%dMi" (mul $workers $w.memoryRequestMiB) }}
limits:
  memory: {{ printf "%dMi" (mul $workers $w.memoryLimitMiB) }}
{{- else }}
{{- toYaml $c.resources }}
{{- end }}
{{- end -}}

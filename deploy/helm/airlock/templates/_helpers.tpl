{{- define "airlock.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "airlock.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "airlock.labels" -}}
{{ include "airlock.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "airlock.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
airlock.yaml: the operator's mapping with what the pod's layout fixes
written over it.
*/}}
{{- define "airlock.config" -}}
{{- $keys := list -}}
{{- range .Values.secrets.hostKeys.keys -}}
{{- $keys = append $keys (printf "/etc/airlock/keys/%s" .) -}}
{{- end -}}
{{- $fixed := dict
  "node" "${POD_NAME}"
  "database" "${AIRLOCK_DATABASE_URL}"
  "suppliers_dir" "/etc/airlock/suppliers"
  "sftp" (dict "listen" ":2222" "host_keys" $keys)
  "http" (dict "listen" (printf ":%d" (int .Values.http.service.port)))
  "audit" (dict "signing_key" (printf "/etc/airlock/audit/%s" .Values.secrets.auditKey.key)) -}}
{{- toYaml (mergeOverwrite (deepCopy .Values.airlock) $fixed) -}}
{{- end -}}

{{/* The environment of airlock and of the migration Job. */}}
{{- define "airlock.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: AIRLOCK_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.database.name }}
      key: {{ .Values.secrets.database.key }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $ref := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secret }}
      key: {{ $ref.key }}
{{- end }}
{{- end -}}

{{/* Names, labels and images shared by the templates. */}}

{{- define "ironlb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The object-name prefix: the release name, with the chart name appended unless present. */}}
{{- define "ironlb.fullname" -}}
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

{{- define "ironlb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ironlb.labels" -}}
helm.sh/chart: {{ include "ironlb.chart" . }}
app.kubernetes.io/name: {{ include "ironlb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ironlb
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "controller"). */}}
{{- define "ironlb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ironlb.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ironlb.componentLabels" -}}
{{ include "ironlb.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ironlb.controller.fullname" -}}
{{- printf "%s-controller" (include "ironlb.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ironlb.speaker.fullname" -}}
{{- printf "%s-speaker" (include "ironlb.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ironlb.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (include "ironlb.controller.fullname" .) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ironlb.speaker.serviceAccountName" -}}
{{- if .Values.speaker.serviceAccount.create -}}
{{- default (include "ironlb.speaker.fullname" .) .Values.speaker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.speaker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the speakers' membership key. */}}
{{- define "ironlb.memberlistSecretName" -}}
{{- if .Values.speaker.memberlist.existingSecret -}}
{{- .Values.speaker.memberlist.existingSecret -}}
{{- else -}}
{{- printf "%s-memberlist" (include "ironlb.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* An image reference; call with (dict "ctx" $ "image" .Values.controller.image). */}}
{{- define "ironlb.image" -}}
{{- $registry := default .image.registry .ctx.Values.global.imageRegistry -}}
{{- $repository := required "image.repository must not be empty" .image.repository -}}
{{- $name := ternary (printf "%s/%s" $registry $repository) $repository (ne $registry "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $name .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $name (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "ironlb.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An HTTP probe on the admin port; call with (dict "probe" .Values.x.livenessProbe "path" "/healthz"). */}}
{{- define "ironlb.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: metrics
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}

{{/* Container args: the chart's flags, except those extraArgs set again, then extraArgs.
     Call with (dict "builtin" (list ...) "extra" (list ...)). */}}
{{- define "ironlb.args" -}}
{{- $overridden := dict -}}
{{- range .extra -}}
{{- $_ := set $overridden (regexReplaceAll "=.*$" (toString .) "") true -}}
{{- end -}}
{{- range .builtin -}}
{{- if not (hasKey $overridden (regexReplaceAll "=.*$" . "")) }}
- {{ . | quote }}
{{- end -}}
{{- end -}}
{{- range .extra }}
- {{ . | quote }}
{{- end -}}
{{- end -}}

{{/* Chart name, overridable. */}}
{{- define "trtserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's resources: <release>-<chart>, or the release name when it already holds the chart name. */}}
{{- define "trtserve.fullname" -}}
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

{{- define "trtserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trtserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trtserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "trtserve.labels" -}}
helm.sh/chart: {{ include "trtserve.chart" . }}
{{ include "trtserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "trtserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trtserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag[@digest] */}}
{{- define "trtserve.operatorImage" -}}
{{- $image := printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- $image = printf "%s@%s" $image .Values.image.digest -}}
{{- end -}}
{{- $image -}}
{{- end -}}

{{/*
RBAC rules on namespaced resources: exactly what the operator calls (its adapter
and kopf), kept equal to trtserve_operator.kube.permissions.REQUIRED_PERMISSIONS by
tests/chart/test_rbac.py. Granted cluster-wide (ClusterRole) or per watched namespace (Role).
*/}}
{{- define "trtserve.namespacedRules" -}}
# The TRTModels: watched by kopf, which patches them for its progress annotations and finalizer.
- apiGroups: ["trtserve.io"]
  resources: ["trtmodels"]
  verbs: ["get", "list", "watch", "patch"]
# Status conditions and the conversion report.
- apiGroups: ["trtserve.io"]
  resources: ["trtmodels/status"]
  verbs: ["get", "patch"]
# Children are owned by their TRTModel with blockOwnerDeletion, which needs update on finalizers.
- apiGroups: ["trtserve.io"]
  resources: ["trtmodels/finalizers"]
  verbs: ["update"]
# The serving Deployment of each TRTModel.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The gRPC/REST Service and the batching ConfigMap of each TRTModel.
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "create", "patch", "delete"]
# Serving pods: read-only, for the converter's termination message (its JSON report).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events about conversions and handler progress (kopf posts core/v1 events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/*
Cluster-scoped reads kopf makes (kopf 1.45, kopf/_core/reactor/observation.py):
it watches CustomResourceDefinitions to notice the TRTModel CRD being created,
changed or removed while it runs.
*/}}
{{- define "trtserve.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}

{{/*
Only with a namespace list: kopf lists and watches namespaces to start serving a
watched namespace as soon as it exists (else it warns and assumes they all exist).
*/}}
{{- define "trtserve.namespaceRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end -}}

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

{{/* repository:tag[@digest] of an image value (image, converterImage) */}}
{{- define "trtserve.image" -}}
{{- $image := printf "%s:%s" .repository .tag -}}
{{- if .digest -}}
{{- $image = printf "%s@%s" $image .digest -}}
{{- end -}}
{{- $image -}}
{{- end -}}

{{- define "trtserve.operatorImage" -}}
{{- include "trtserve.image" .Values.image -}}
{{- end -}}

{{- define "trtserve.converterImage" -}}
{{- include "trtserve.image" .Values.converterImage -}}
{{- end -}}

{{/*
RBAC rules: exactly trtserve_operator.kube.permissions.REQUIRED_PERMISSIONS (the adapter's
calls and kopf's, as the operator runs kopf: standalone, no peering, namespace/CRD scanning
off). tests/chart/test_chart_rbac.py keeps them equal.
All resources are namespaced: granted cluster-wide (ClusterRole) or per watched namespace (Role).
*/}}
{{- define "trtserve.rules" -}}
# TRTModels: the operator's informer lists and watches them; it never writes their
# metadata or spec.
- apiGroups: ["trtserve.io"]
  resources: ["trtmodels"]
  verbs: ["list", "watch"]
# Conditions and the conversion report are written to the status subresource only.
- apiGroups: ["trtserve.io"]
  resources: ["trtmodels/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion; where the
# OwnerReferencesPermissionEnforcement admission plugin is on (e.g. OpenShift), setting
# that needs update on the owner's finalizers subresource.
- apiGroups: ["trtserve.io"]
  resources: ["trtmodels/finalizers"]
  verbs: ["update"]
# The children of each TRTModel: serving Deployment, gRPC/REST Service, batching ConfigMap
# (with batching on), PodDisruptionBudget (below); and the namespace's shared trtserve-monitoring ConfigMap. The operator's
# informers watch them; the adapter gets, creates and patches them (deletion is left to the garbage
# collector through the ownerReferences; the shared ConfigMap is owned by no model).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The serving pods' PodDisruptionBudget (spec.serving.disruptionBudget): like the other
# children, and deleted by the adapter when the TRTModel turns it off (left behind, it would
# still limit evictions).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Pods are only read: the converter's termination message (its JSON report) and readiness of
# serving pods, and the benchmark pod's termination message (trt-bench's JSON summary).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# The A/B benchmark Job of a TRTModel with spec.benchmark: the operator's informer watches the Jobs,
# the adapter creates one per run, reads it back on a conflict, and deletes it once it has
# read the result (the garbage collector then removes its pod).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "delete"]
# Events on TRTModels for transitions a person acts on: Ready, a failure, conversion done,
# benchmark finished.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{- define "trtserve.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end -}}

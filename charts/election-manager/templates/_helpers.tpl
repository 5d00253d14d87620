{{/* Chart name, or nameOverride. */}}
{{- define "election-manager.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride, else the release name if it holds the chart name, else release-chart. */}}
{{- define "election-manager.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "election-manager.selectorLabels" -}}
app.kubernetes.io/name: {{ include "election-manager.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "election-manager.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "election-manager.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: election-manager
{{- end }}

{{- define "election-manager.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "election-manager.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "election-manager.lockName" -}}
{{- default (include "election-manager.fullname" .) .Values.lock.name }}
{{- end }}

{{/*
The namespaces whose Leases the manager watches when it serves a list of namespaces:
watchNamespaces, the release namespace (its own lock and presence Leases) and
externalLeaseNamespaces, sorted, without duplicates, as JSON.
*/}}
{{- define "election-manager.leaseNamespaces" -}}
{{- concat .Values.watchNamespaces (list .Release.Namespace) .Values.externalLeaseNamespaces | uniq | sortAlpha | toJson }}
{{- end }}

{{/* Reads a controller-gen role file from files/rbac and returns {"rules": [...]} as JSON; a missing file has no rules. */}}
{{- define "election-manager.rulesFrom" -}}
{{- $file := .root.Files.Get .path }}
{{- $rules := list }}
{{- if $file }}
{{- if gt (len (regexFindAll "(?m)^kind:" $file -1)) 1 }}
{{- fail (printf "%s holds several objects (a namespace= rbac marker?); the chart reads one ClusterRole" .path) }}
{{- end }}
{{- $doc := fromYaml $file }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "%s: %s" .path $doc.Error) }}
{{- end }}
{{- if ne (default "" $doc.kind) "ClusterRole" }}
{{- fail (printf "%s: want one ClusterRole as controller-gen writes it, found kind %q" .path (default "" $doc.kind)) }}
{{- end }}
{{- $rules = default list $doc.rules }}
{{- end }}
{{- dict "rules" $rules | toJson }}
{{- end }}

{{/*
Every rule the manager needs: the generated manager role, plus the Pods source's
generated role when podsSource.enabled. Returns {"rules": [...]} as JSON.
*/}}
{{- define "election-manager.managerRules" -}}
{{- $rules := (include "election-manager.rulesFrom" (dict "root" . "path" "files/rbac/manager-role.yaml") | fromJson).rules }}
{{- if .Values.podsSource.enabled }}
{{- if not (.Files.Get "files/rbac/pods-role.yaml") }}
{{- fail "podsSource.enabled: this chart version has no files/rbac/pods-role.yaml, so there are no Pods-source permissions to grant" }}
{{- end }}
{{- $pods := (include "election-manager.rulesFrom" (dict "root" . "path" "files/rbac/pods-role.yaml") | fromJson).rules }}
{{- $rules = concat $rules $pods }}
{{- end }}
{{- range $rules }}
{{- if or (has "*" (default list .verbs)) (has "*" (default list .resources)) (has "*" (default list .apiGroups)) }}
{{- fail (printf "generated RBAC has a wildcard rule, refused: %v" .) }}
{{- end }}
{{- end }}
{{- dict "rules" $rules | toJson }}
{{- end }}

{{/*
Splits the manager's rules for rbac.scope=namespace: "cluster" holds what cannot be
namespaced (tokenreviews in authentication.k8s.io, subjectaccessreviews in
authorization.k8s.io, and any nonResourceURLs), "namespaced" the rest. A rule naming
several apiGroups is split by group. Returns {"cluster": [...], "namespaced": [...]}.
*/}}
{{- define "election-manager.splitRules" -}}
{{- $clusterGroups := list "authentication.k8s.io" "authorization.k8s.io" }}
{{- $cluster := list }}
{{- $namespaced := list }}
{{- range (include "election-manager.managerRules" . | fromJson).rules }}
{{- if .nonResourceURLs }}
{{- $cluster = append $cluster . }}
{{- else }}
{{- $rule := . }}
{{- range $group := .apiGroups }}
{{- $one := omit $rule "apiGroups" | merge (dict "apiGroups" (list $group)) }}
{{- if has $group $clusterGroups }}
{{- $cluster = append $cluster $one }}
{{- else }}
{{- $namespaced = append $namespaced $one }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- dict "cluster" $cluster "namespaced" $namespaced | toJson }}
{{- end }}

{{/*
The Lease rules among the given rules ({"rules": [...], "readOnly": bool}), narrowed to
coordination.k8s.io leases and, with readOnly, to get, list and watch. Returns
{"rules": [...]}.
*/}}
{{- define "election-manager.leaseRules" -}}
{{- $out := list }}
{{- range .rules }}
{{- if and (has "coordination.k8s.io" (default list .apiGroups)) (has "leases" (default list .resources)) }}
{{- $verbs := .verbs }}
{{- if $.readOnly }}
{{- $verbs = list }}
{{- range .verbs }}
{{- if has . (list "get" "list" "watch") }}
{{- $verbs = append $verbs . }}
{{- end }}
{{- end }}
{{- end }}
{{- if $verbs }}
{{- $out = append $out (merge (dict "apiGroups" (list "coordination.k8s.io") "resources" (list "leases") "verbs" $verbs) (omit . "apiGroups" "resources" "verbs")) }}
{{- end }}
{{- end }}
{{- end }}
{{- dict "rules" $out | toJson }}
{{- end }}

{{- define "election-manager.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

#!/usr/bin/env bash
# Points every staging module that k8s.io/kubernetes requires at v0.0.0 to its
# published release, since k8s.io/kubernetes's own replaces (./staging/...) do
# not apply to a module that depends on it. Run after changing the version in go.mod.
set -euo pipefail
cd "$(dirname "$0")"
kver=$(go mod edit -json | awk '/"Path": "k8s.io\/kubernetes"/{getline; gsub(/[",]/,"",$2); print $2; exit}')
[ -n "$kver" ] || { echo "sync.sh: cannot read the k8s.io/kubernetes version from go.mod" >&2; exit 1; }
staging="v0.${kver#v1.}"
modfile=$(go mod download -json "k8s.io/kubernetes@${kver}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
for m in $(go mod edit -json "$modfile" | awk '/"Path":/{p=$2} /"Version": "v0.0.0"/{gsub(/[",]/,"",p); print p}'); do
  go mod edit -replace "${m}=${m}@${staging}"
done
go mod tidy

#!/usr/bin/env bash
# Fails when a generated file differs from what `make generate manifests` writes.
# It compares against the working tree, not HEAD, so it also works before a commit;
# on a clean clone (CI) the two are the same.
set -euo pipefail
cd "$(dirname "$0")/.."

generated=(api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/rbac/pods
  charts/election-manager/files/crds charts/election-manager/files/rbac)
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
for path in "${generated[@]}"; do
  if [ -e "$path" ]; then
    mkdir -p "$before/$(dirname "$path")" && cp -R "$path" "$before/$path"
  fi
done

make --no-print-directory generate manifests >/dev/null

stale=0
for path in "${generated[@]}"; do
  if [ ! -e "$before/$path" ] && [ ! -e "$path" ]; then
    continue # optional and absent both times (config/rbac/pods before the Pods source exists)
  fi
  if ! diff -ru "$before/$path" "$path" >/dev/null 2>&1; then
    diff -ru "$before/$path" "$path" || true
    echo "verify: $path was stale" >&2
    stale=1
  fi
done
if [ "$stale" = 1 ]; then
  echo "verify: generated files were stale; they are regenerated now: review and commit them" >&2
  exit 1
fi
echo "verify: generated files are up to date"

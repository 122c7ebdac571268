#!/usr/bin/env bash
# Regenerates the replace block of go.mod from k8s.io/kubernetes' own go.mod.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0
# and replaces them with ./staging/src/... paths, which mean nothing outside its repository.
# A module that depends on k8s.io/kubernetes must replace each of them with the published
# release of the same minor: v1.X.Y of kubernetes goes with v0.X.Y of every staging module.
#
# Usage: gen-replaces.sh [KUBERNETES_VERSION]   (default: the version pinned in go.mod)
set -euo pipefail
cd "$(dirname "$0")"
k8s_version="${1:-$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)}"
staging_version="v0.${k8s_version#v1.}"
k8s_mod="$(go mod download -json "k8s.io/kubernetes@${k8s_version}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')"

# Only staging modules that kubernetes actually requires; the sample ones are never published.
required="$(awk '/^require \(/ {in_req = 1; next} in_req && /^\)/ {in_req = 0}
  in_req && $2 == "v0.0.0" {print $1}' "$k8s_mod")"
{
  sed '/^\/\/ BEGIN generated replaces/,/^\/\/ END generated replaces/d' go.mod
  echo "// BEGIN generated replaces (gen-replaces.sh from k8s.io/kubernetes@${k8s_version})"
  echo "replace ("
  for m in $required; do
    if grep -q "^[[:space:]]*${m} => ./staging/" "$k8s_mod"; then
      printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"
    fi
  done
  echo ")"
  echo "// END generated replaces"
} >go.mod.new
mv go.mod.new go.mod
echo "go.mod: replaces for $(echo "$required" | wc -w) staging modules at ${staging_version}"

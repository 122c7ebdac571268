#!/usr/bin/env bash
# Builds the test control plane's binaries (etcd, kube-apiserver, kube-controller-manager,
# kubectl) from Go modules, or reuses a complete earlier build from the cache outside the
# checkout (${KATIB_CLUSTER_CACHE:-$HOME/.cache/katib-local/cluster}). Idempotent.
# Prints how long it took and the bin folder; exits non-zero with the error on failure.
# A cold build takes about 20 minutes on 2 cores (see tests/cluster/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null; then
  echo "cluster.sh: go is not on PATH; Go >= 1.26 is needed to build the test control plane" >&2
  exit 1
fi
start=$(date +%s)
if ! bin="$(bash tests/cluster/build.sh)"; then
  echo "cluster.sh: building the test control plane failed (output above)" >&2
  exit 1
fi
elapsed=$(($(date +%s) - start))
echo "cluster.sh: test control plane binaries ready in ${elapsed}s: ${bin}"
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [[ -x "${bin}/${b}" ]] || { echo "cluster.sh: ${bin}/${b} is missing" >&2; exit 1; }
done
kubectl_version="$("${bin}/kubectl" version --client 2>/dev/null || true)"
echo "cluster.sh: ${kubectl_version%%$'\n'*}"

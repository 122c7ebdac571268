#!/usr/bin/env bash
# Kubeflow's Training Operator v1.8.1 (PyTorchJob, TFJob, XGBoostJob, ... controllers) built
# from its Go module, for the tests that run training-job trials on the test control plane
# (tests/trial_runner/kubernetes/test_training_operator.py). Prints the binary's path on the
# last line; reuses a complete build in <1 s (cold: ~10 min on 2 shared cores).
# KATIB_TRAINING_OPERATOR_CACHE moves it (default: ~/.cache/katib-local/training-operator).
set -euo pipefail
version=v1.8.1
dir="${KATIB_TRAINING_OPERATOR_CACHE:-$HOME/.cache/katib-local/training-operator}/${version}"
bin="${dir}/training-operator.v1"
if [ ! -x "${bin}" ] || [ ! -f "${dir}/complete.stamp" ]; then
  mkdir -p "${dir}"
  start=$SECONDS
  echo "building github.com/kubeflow/training-operator/cmd/training-operator.v1@${version}" >&2
  GOBIN="${dir}" GOFLAGS=-mod=mod nice -n 10 \
    go install "github.com/kubeflow/training-operator/cmd/training-operator.v1@${version}" >&2
  touch "${dir}/complete.stamp"
  echo "built in $((SECONDS - start))s" >&2
fi
# Its CRDs, from the module the binary was built from.
crds="$(go env GOMODCACHE)/github.com/kubeflow/training-operator@${version}/manifests/base/crds"
echo "${crds}"
echo "${bin}"

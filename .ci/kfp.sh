#!/usr/bin/env bash
# The Kubeflow Pipelines SDK (kfp 2.17.3) in a virtual environment of its own, with
# katib-local installed beside it (its core dependencies only), for the tests of the tuner as
# a pipeline step (tests/examples/test_pipelines.py): compiling the components and pipelines of
# examples/pipelines/ and running them with kfp.local. kfp pins kubernetes<31, which clashes
# with the kubernetes 37 of our test lock, so it never shares our environment. katib-local's
# own code is not installed there (only its core dependencies): the tests put the checkout
# on PYTHONPATH, so the venv serves every checkout.
#
# Prints the venv's python on the last line. Reuses a complete venv (a stamp file) in <1 s.
# KATIB_KFP_VENV moves it (default: ~/.cache/katib-local/kfp-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${KATIB_KFP_VENV:-$HOME/.cache/katib-local/kfp-venv}"
stamp="${venv}/.kfp-2.17.3-deps-$(sha256sum pyproject.toml | cut -c1-12)"
if [ ! -f "${stamp}" ]; then
  rm -rf "${venv}"
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install -q --disable-pip-version-check "kfp==2.17.3" .
  "${venv}/bin/pip" uninstall -q -y katib-local
  PYTHONPATH="$PWD" "${venv}/bin/python" -c "import kfp, katib; print('kfp', kfp.__version__)" >&2
  touch "${stamp}"
fi
echo "${venv}/bin/python"

#!/usr/bin/env bash
# Kubeflow's own Katib Python SDK in a virtual environment of its own, for the tests that read
# katib-local's Experiment status with it (tests/katib/operator/). kubeflow-katib 0.19.0 was
# released against kubernetes 30 (it asks for kubernetes>=27.2.0, so pip now picks 37, whose
# pydantic models the SDK's deserializer cannot read: "no attribute 'Dict[str, str]'"), and
# pulls kubeflow-training; unpinned, pip backtracks to an old sdist that does not build, and
# its pins clash with ours, so it never shares our environment.
#
# Prints the venv's python on the last line. Reuses a complete venv (a stamp file) in <1 s.
# KATIB_SDK_VENV moves it (default: ~/.cache/katib-local/katib-sdk-venv).
set -euo pipefail
venv="${KATIB_SDK_VENV:-$HOME/.cache/katib-local/katib-sdk-venv}"
stamp="${venv}/.katib-sdk-0.19.0-k8s-30.1.0"
if [ ! -f "${stamp}" ]; then
  rm -rf "${venv}"
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install -q --disable-pip-version-check "kubeflow-katib==0.19.0" \
    "kubeflow-training==1.9.0" "kubernetes==30.1.0"
  "${venv}/bin/python" -c "import kubeflow.katib, kubernetes; print(kubernetes.__version__)" >&2
  touch "${stamp}"
fi
echo "${venv}/bin/python"

#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from
# their Go modules into a cache folder outside the checkout, or reuses a complete earlier build.
#
#   tests/cluster/build.sh            build if needed; print the bin folder on stdout
#   tests/cluster/build.sh --print    print the bin folder if a complete build exists, else fail
#
# Cache: ${KATIB_CLUSTER_CACHE:-$HOME/.cache/katib-local/cluster}/<version>/bin/, where
# <version> names the pinned Kubernetes and etcd releases. A stamp file is written only after
# every binary built; it holds a digest of this recipe, so changing go.mod, go.sum or this
# script builds again. Progress goes to stderr; the only stdout line is the bin folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

die() { echo "build.sh: $*" >&2; exit 1; }

mod_version() {
  awk -v m="$1" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' go.mod
}
k8s_version="$(mod_version k8s.io/kubernetes)"
etcd_version="$(mod_version go.etcd.io/etcd/server/v3)"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || die "go.mod pins no k8s.io/kubernetes or etcd"
version="k8s-${k8s_version}_etcd-${etcd_version}"
cache_root="${KATIB_CLUSTER_CACHE:-$HOME/.cache/katib-local/cluster}"
dest="${cache_root}/${version}"
bin="${dest}/bin"
stamp="${dest}/complete.stamp"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

# The version variables that Kubernetes' own build (hack/lib/version.sh) sets, so that the
# binaries and kubectl report the release they were built from instead of v0.0.0.
minor="${k8s_version#v1.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${k8s_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
build_flags=(-mod=readonly -trimpath "-ldflags=${ldflags}")
# What decides the binaries: the module graph, the etcd main and the build flags (editing
# comments here does not rebuild).
recipe_digest="$(cat go.mod go.sum cmd/etcd/main.go <(echo "CGO_ENABLED=0 ${build_flags[*]}") |
  sha256sum | cut -d' ' -f1)"

is_complete() {
  [[ -f "$stamp" ]] && [[ "$(head -n1 "$stamp")" == "$recipe_digest" ]] || return 1
  local b
  for b in "${binaries[@]}"; do [[ -x "${bin}/${b}" ]] || return 1; done
}

if [[ "${1:-}" == "--print" ]]; then
  is_complete || die "no complete build in ${dest}"
  echo "$bin"
  exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument: $1 (usage: build.sh [--print])"

if is_complete; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (Go >= 1.26 is needed; see tests/cluster/README.md)"
mkdir -p "$dest"
# One build at a time per cache folder: a second caller waits, then reuses the result.
exec 9>"${dest}/build.lock"
flock 9
if is_complete; then
  echo "$bin"
  exit 0
fi

echo "build.sh: building ${version} into ${bin} (a cold build takes about 20 minutes on 2 cores)" >&2
tmp="$(mktemp -d "${dest}/bin.partial.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
rm -f "$stamp"


# CGO off, as Kubernetes builds its control-plane binaries; one go build for all four so that
# shared packages compile once.
packages=(
  ./cmd/etcd
  k8s.io/kubernetes/cmd/kube-apiserver
  k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kubectl
)
command=(go build "${build_flags[@]}" -o "$tmp/" "${packages[@]}")
echo "build.sh: in ${here}: CGO_ENABLED=0 nice -n 10 ${command[*]}" >&2
if ! CGO_ENABLED=0 nice -n 10 "${command[@]}"; then
  die "go build failed with $(go version) (command above); see tests/cluster/README.md"
fi
for b in "${binaries[@]}"; do [[ -x "$tmp/$b" ]] || die "go build produced no $b"; done

rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
{
  echo "$recipe_digest"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $(go version)"
} >"$stamp"
echo "$bin"

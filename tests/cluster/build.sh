#!/usr/bin/env bash
# Build the node binaries (kube-controller-manager, kube-scheduler, kubelet, kube-proxy) from
# the Kubernetes module pinned in tests/harness/controlplane/go.mod, into a cache beside the control
# plane's, keyed by version. A second run with the same version builds nothing.
#
# The build runs in a copy of that go.mod/go.sum, so the node's extra dependencies (cadvisor,
# the CRI client, ...) are resolved there and the pinned control plane module stays untouched.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pinned="$here/../harness/controlplane"
k8s_version="$(awk '/^require k8s.io\/kubernetes/ {print $3}' "$pinned/go.mod")"
cache_root="${ZEN_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-watcher/controlplane}"
out="$cache_root/node-k8s-${k8s_version}"
binaries=(kube-controller-manager kube-scheduler kubelet kube-proxy)

complete=1
for binary in "${binaries[@]}"; do
  [[ -x "$out/$binary" ]] || complete=0
done
if (( complete )); then
  echo "$out"
  exit 0
fi

major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
# Stamp the version the way the Kubernetes release build does (the kubelet reports it on the
# Node object, and the API server's version skew checks read it).
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

module="$out.module"
rm -rf "$out.partial" "$module"
mkdir -p "$out.partial" "$module"
cp "$pinned/go.mod" "$pinned/go.sum" "$module/"
cd "$module"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=mod"
echo "building ${binaries[*]} ($k8s_version) into $out" >&2
for binary in "${binaries[@]}"; do
  go build -trimpath -ldflags "$ldflags" -o "$out.partial/$binary" "k8s.io/kubernetes/cmd/$binary"
done
rm -rf "$out" "$module"
mv "$out.partial" "$out"
echo "$out"

#!/usr/bin/env bash
# Build kube-apiserver, kubectl and etcd from the pinned Go modules into a cache
# outside the repository, keyed by version. A second run with the same versions
# finds the binaries and builds nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_version="$(awk '/^require k8s.io\/kubernetes/ {print $3}' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit}' "$here/go.mod")"
cache_root="${ZEN_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-watcher/controlplane}"
out="$cache_root/k8s-${k8s_version}-etcd-${etcd_version}"

if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi

# One build at a time: two test runs starting together would share the .partial folder.
mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
flock 9
if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" && -x "$out/etcd" ]]; then
  echo "$out"  # built by the run we waited for
  exit 0
fi
rm -rf "$out.partial"
mkdir -p "$out.partial"
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
# Stamp the version the way the Kubernetes release build does, so /version and
# `kubectl version` report the release rather than v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

cd "$here"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=mod"
echo "building kube-apiserver, kubectl ($k8s_version) and etcd ($etcd_version) into $out" >&2
go build -trimpath -ldflags "$ldflags" -o "$out.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "$ldflags" -o "$out.partial/kubectl" k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w" -o "$out.partial/etcd" go.etcd.io/etcd/server/v3
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out"

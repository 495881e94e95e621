#!/usr/bin/env bash
# What the cluster tests need from Debian (bookworm): the container runtime, CNI plugins, the
# image tools, and what kube-proxy and the tests call. Installs only what is missing.
set -euo pipefail
packages=(containerd runc containernetworking-plugins buildah mmdebstrap iptables conntrack curl)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if (( ${#missing[@]} )); then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

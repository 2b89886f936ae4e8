#!/usr/bin/env bash
# Installs, from Debian, what a real kubelet node needs on this machine:
# containerd + runc (the container runtime), the CNI plugins (bridge,
# host-local, portmap, loopback), iptables (kube-proxy's mode) and conntrack
# (kube-proxy clears stale UDP entries with it). Idempotent: packages already
# present are not touched, and nothing is fetched when all are there.
set -euo pipefail

# package -> a file that proves it is installed
declare -A need=(
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=/usr/sbin/iptables
  [conntrack]=/usr/sbin/conntrack
  [iproute2]=/usr/sbin/ip
)
missing=()
for pkg in "${!need[@]}"; do
  [ -e "${need[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root (apt-get install)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists are refreshed only when the install fails with the ones
# the machine has (none, or stale ones naming files the mirror no longer has).
install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
install || { apt-get update -qq >&2 && install; }

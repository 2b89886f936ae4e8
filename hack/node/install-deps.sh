#!/usr/bin/env bash
# Installs, from Debian, what a real kubelet node needs on this machine:
# containerd + runc (the container runtime), the CNI plugins (bridge,
# host-local, portmap, loopback), iptables (kube-proxy's mode) and conntrack
# (kube-proxy clears stale UDP entries with it). Idempotent: packages already
# present are not touched, and nothing is fetched when all are there.
set -euo pipefail
. "$(dirname "$0")/../lib/debian-packages.sh"
install_missing install-deps \
  containerd=/usr/bin/containerd \
  runc=/usr/sbin/runc \
  containernetworking-plugins=/usr/lib/cni/bridge \
  iptables=/usr/sbin/iptables \
  conntrack=/usr/sbin/conntrack \
  iproute2=/usr/sbin/ip

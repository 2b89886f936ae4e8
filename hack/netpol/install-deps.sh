#!/usr/bin/env bash
# Installs, from Debian, what kube-router's network policy controller execs on
# the real node: ipset (its sets of pod addresses) beside iptables (which
# hack/node/install-deps.sh installs for kube-proxy). Idempotent: nothing is
# fetched when it is there.
set -euo pipefail
[ -x /usr/sbin/ipset ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "netpol-deps: ipset missing; run as root (apt-get install ipset)" >&2
  exit 1
fi
echo "netpol-deps: installing ipset" >&2
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends ipset >&2; }
install || { apt-get update -qq >&2 && install; }

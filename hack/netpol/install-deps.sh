#!/usr/bin/env bash
# Installs, from Debian, what kube-router's network policy controller execs on
# the real node: ipset (its sets of pod addresses) beside iptables (which
# hack/node/install-deps.sh installs for kube-proxy). Idempotent: nothing is
# fetched when it is there.
set -euo pipefail
. "$(dirname "$0")/../lib/debian-packages.sh"
install_missing netpol-deps ipset=/usr/sbin/ipset

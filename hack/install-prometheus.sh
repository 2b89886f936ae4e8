#!/usr/bin/env bash
# Install Prometheus and promtool (Debian's `prometheus` package) unless both are
# already on PATH. Idempotent; tests/ops needs them (promtool check/test rules, and a
# real Prometheus evaluating deploy/monitoring/prometheusrule.yaml).
#
# The package's service is not started: the tests run their own prometheus on a
# free localhost port.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-prometheus: run as root or install sudo" >&2; exit 1; }
  SUDO=(sudo)
fi
command -v apt-get >/dev/null || {
  echo "install-prometheus: no apt-get; install prometheus and promtool (>= 2.37) yourself" >&2
  exit 1
}

# Keep the Debian package from starting (and enabling) a prometheus service on :9090,
# unless the machine already has a policy of its own.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 0755 "$POLICY"
  trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null

promtool --version | head -n 1

#!/usr/bin/env bash
# Installs, from Debian, what building and testing the images needs on this
# machine: mmdebstrap (the images' Debian base, hack/images/build.sh) and
# podman (tests/images run each image as a container; no daemon). Idempotent:
# packages already present are not touched, and nothing is fetched when all
# are there. A fresh machine has neither, so `make images` (and with it
# `make dev` and `make test`) installs them instead of stopping.
set -euo pipefail

# package -> a file that proves it is installed
declare -A need=(
  [mmdebstrap]=/usr/bin/mmdebstrap
  [podman]=/usr/bin/podman
)
missing=()
for pkg in "${!need[@]}"; do
  [ -e "${need[$pkg]}" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "images-deps: missing ${missing[*]}; run as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "images-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists are refreshed only when the install fails with the ones
# the machine has (none, or stale ones naming files the mirror no longer has).
install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
install || { apt-get update -qq >&2 && install; }

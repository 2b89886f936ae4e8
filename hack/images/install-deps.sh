#!/usr/bin/env bash
# Installs, from Debian, what building and testing the images needs on this
# machine: mmdebstrap (the images' Debian base, hack/images/build.sh) and
# podman (tests/images run each image as a container; no daemon). A fresh
# machine has neither, so `make images` (and with it `make dev` and
# `make test`) installs them instead of stopping. Idempotent.
set -euo pipefail
. "$(dirname "$0")/../lib/debian-packages.sh"
install_missing images-deps mmdebstrap=/usr/bin/mmdebstrap podman=/usr/bin/podman

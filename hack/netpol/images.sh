#!/usr/bin/env bash
# Builds the NetworkPolicy e2e's image without a container engine and prints
# the directory that holds it: netcheck.tar (an OCI archive, packed by
# hack/node/oci.py) and images.env (NETCHECK_IMAGE=<reference>).
#
#   netcheck   serves HTTP/1.1 + h2c on several ports and probes other pods (images/netcheck)
#
# The reference's tag is the content key (a changed program is a new name, so
# the kubelet's IfNotPresent never runs a stale one). Cached by that key.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
oci="$here/../node/oci.py"
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
log() { echo "netpol-images: $*" >&2; }

key=$(cat "$here/images.sh" "$oci" "$here/images/go.mod" "$here"/images/*/*.go <(go version) | sha256sum | cut -c1-12)
out="$CACHE/netpol/images-$key"
if [ -f "$out/images.env" ]; then
  echo "$out"
  exit 0
fi

start=$(date +%s)
work="$out.partial"
rm -rf "$work" && mkdir -p "$work/go" "$work/rootfs"/{dev,proc,sys,etc,tmp,var/run/secrets}
(cd "$here/images" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/go/" ./netcheck)
cp "$work/go/netcheck" "$work/rootfs/netcheck"
printf 'root:x:0:0:root:/:/netcheck\nnonroot:x:65532:65532:nonroot:/:/netcheck\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$work/rootfs/etc/group"
ref="modelops.local/netcheck:$key"
python3 "$oci" "$work/rootfs" "$work/netcheck.tar" --name "$ref" --entrypoint /netcheck --user 65532 >/dev/null
echo "NETCHECK_IMAGE=$ref" > "$work/images.env"
rm -rf "$work/go" "$work/rootfs"
rm -rf "$out" && mv "$work" "$out"
log "built in $(( $(date +%s) - start ))s: $(du -sh "$out" | cut -f1)"
echo "$out"

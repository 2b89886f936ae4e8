#!/usr/bin/env bash
# Builds the real node's images without a container engine and prints the
# directory that holds them: one OCI archive per image (hack/node/oci.py packs
# a root filesystem) and images.env, which names each image's reference.
#
#   pause      the pod sandbox process (images/pause), containerd's sandbox_image
#   nodeprobe  the real-node e2e's HTTP/probe program (images/nodeprobe)
#   coredns    the cluster DNS (hack/node/build.sh)
#
# A reference's tag is the content key, so a changed image is a new name and
# the kubelet's IfNotPresent never runs a stale one. Cached by that key.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
log() { echo "node-images: $*" >&2; }

coredns="$("$here/build.sh" coredns)/coredns"
key=$(cat "$here/images.sh" "$here/oci.py" "$here"/images/go.mod "$here"/images/*/*.go <(go version) <(echo "$coredns") \
      | sha256sum | cut -c1-12)
out="$CACHE/node/images-$key"
if [ -f "$out/images.env" ]; then
  echo "$out"
  exit 0
fi

start=$(date +%s)
work="$out.partial"
rm -rf "$work" && mkdir -p "$work/go"
(cd "$here/images" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/go/" ./pause ./nodeprobe)

# pack NAME ENTRYPOINT USER: a root filesystem with the one binary and the
# directories a container runtime expects to mount over.
pack() {
  local name=$1 binary=$2 user=$3 rootfs="$work/rootfs-$1"
  mkdir -p "$rootfs"/{dev,proc,sys,etc,tmp,var/run/secrets}
  cp "$binary" "$rootfs/$name"
  printf 'root:x:0:0:root:/:/%s\nnonroot:x:65532:65532:nonroot:/:/%s\n' "$name" "$name" > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
  local ref="modelops.local/$name:$key"
  python3 "$here/oci.py" "$rootfs" "$work/$name.tar" --name "$ref" --entrypoint "/$name" --user "$user" >/dev/null
  echo "${name^^}_IMAGE=$ref" >> "$work/images.env"
}
pack pause "$work/go/pause" 65532
# nodeprobe runs as root by default: the read-only root filesystem test must
# fail on the mount, not on file permissions.
pack nodeprobe "$work/go/nodeprobe" 0
pack coredns "$coredns" 65532
rm -rf "$work/go" "$work"/rootfs-*
rm -rf "$out" && mv "$work" "$out"
log "built in $(( $(date +%s) - start ))s: $(du -sh "$out" | cut -f1)"
echo "$out"

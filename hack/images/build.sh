#!/usr/bin/env bash
# Builds the project's OCI images without a container engine, reproducibly:
#
#   hack/images/build.sh [operator|runtime|trainer|all]   (default: all)
#
#   operator  the project wheel on Debian bookworm; `modelops run`; no torch
#   runtime   + tritonserver 2.51 from the nvidia-pytriton wheel with its python
#             backend laid out as /opt/tritonserver (Triton's default paths);
#             also runs `modelops pull-model` and `modelops drift-monitor`, and
#             has the trainer's torch (CPU-pruned) so that TorchScript models load
#   trainer   + PyTorch; `modelops train`. CPU by default: the CUDA libraries
#             torch links stay (it cannot import without them), those it only
#             dlopens on a GPU go (prune_cuda.py); MODELOPS_TRAINER_CUDA=full keeps all
#
# Inputs, all pinned: the Debian base (mmdebstrap, suite bookworm, checked
# against the package list hack/images/debian.txt), the Python packages
# (hack/images/<image>.lock, hashes required, see lock.sh), the project wheel
# (built from this tree with the locked setuptools). SOURCE_DATE_EPOCH fixes
# every timestamp, so two builds from the same inputs give the same digest.
#
# Three layers, each cached by a hash of its own inputs, so that a change to the
# project (operator/) rebuilds only the thin top layer (seconds, not minutes):
#   1. the Debian base                      key: debian.txt, suite, packages
#   2. the locked dependencies in the venv  key: the base, <image>.lock, build.lock and
#      /opt/modelops (+ /opt/tritonserver,       the steps that install them; not the
#      the CUDA pruning)                         project's source, not its revision
#   3. the project wheel, `pip install --no-deps` into that same venv
#                                           key: layer 2, the source hash, the revision
# Layer 2 is kept as its gzip'ed blob with its digests (layer.json) and as the
# unpacked root that layer 3 is installed over (an overlay mount, or a copy):
#   ~/.cache/modelops/images/deps/<image>-<key>/{layer.tar.gz,layer.json,rootfs/}
#
# Output, cached by a hash of every input (a warm run only prints):
#   ~/.cache/modelops/images/<image>-<version>-<key>/image.oci.tar   OCI archive
#   ~/.cache/modelops/images/<image>-<version>-<key>/sbom.spdx.json  SBOM (syft)
#   ~/.cache/modelops/images/images.json   name -> ref, digest, size, archive, sbom
# The path of images.json is the last line on stdout. Import an archive with
#   ctr -n k8s.io images import <archive>      (named by io.containerd.image.name)
#   podman load -i <archive>                    (or run oci-archive:<archive>)
#
# Needs root (chroot) and Debian's mmdebstrap; builds syft from its Go module.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
out="$CACHE/images"
# 2026-12-07T00:00:00Z, the 0.2.0 release date: every file and config time in the images.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1796601600}
UV_VERSION=0.9.5
SYFT_VERSION=v1.57.2
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# What the base needs beyond Debian's essential set: the interpreter with its
# shared libpython (the python-backend stub embeds it), CA certificates, and the
# C++ runtime and zlib that manylinux wheels and tritonserver link against.
BASE_PACKAGES=python3.11,libpython3.11,ca-certificates,libstdc++6,zlib1g
PY=python3.11
VENV=/opt/modelops
SITE=$VENV/lib/python3.11/site-packages

log() { echo "images: $*" >&2; }
die() { log "$*"; exit 1; }

targets=("${@:-all}")
[ "${targets[0]}" = all ] && targets=(operator runtime trainer)
for t in "${targets[@]}"; do
  case $t in operator | runtime | trainer) ;; *) die "unknown image '$t' (operator|runtime|trainer|all)" ;; esac
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml")
[ -n "$version" ] || die "no version in pyproject.toml"

# The project wheel's inputs: what setuptools reads (pyproject, README, the package).
source_files() {
  (cd "$root" && { echo pyproject.toml; echo docs/package.md; echo LICENSE;
    find operator -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*'; } | LC_ALL=C sort)
}
# One sha256sum for all the files (name and content of each): a process per file
# made this the slowest step of a warm build.
source_hash=$(cd "$root" && source_files | xargs -d '\n' sha256sum -- | sha256sum | cut -c1-16)

# The revision label: the last commit of the image inputs, "-dirty" when they
# have uncommitted changes (the key covers content, so the label stays true).
revision=unknown
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  paths=(pyproject.toml docs/package.md LICENSE operator hack/images)
  revision=$(git -C "$root" log -1 --format=%H -- "${paths[@]}")
  if [ -n "$(git -C "$root" status --porcelain -- "${paths[@]}")" ]; then revision="$revision-dirty"; fi
fi

# The dependency layer's key: what goes into it and the steps that make it
# (these functions' own text, not the whole script; of oci.py the compression),
# never the project's source.
deps_key() {
  cat <(declare -f base_tar download_wheels build_deps deps_layer_paths) "$here/debian.txt" \
      "$here/build.lock" "$here/$1.lock" "$here/triton-layout.sh" "$here/prune_cuda.py" \
      <(sed -n '/^def gzip_layer/,/^def /p' "$here/oci.py") \
      <(echo "$1 $SOURCE_DATE_EPOCH $SUITE $MIRROR $BASE_PACKAGES $PY $VENV ${MODELOPS_TRAINER_CUDA:-cpu}") \
    | sha256sum | cut -c1-12
}
deps_dir() { echo "$out/deps/$1-$(deps_key "$1")"; }
# The image's key: its dependency layer, the project's source and the revision
# (which only the labels carry).
image_key() {
  cat <(deps_key "$1") "$here/build.sh" "$here/oci.py" \
      <(echo "$version $revision $source_hash $SOURCE_DATE_EPOCH") | sha256sum | cut -c1-12
}
image_dir() { echo "$out/$1-$version-$(image_key "$1")"; }

mkdir -p "$out"
work=""
mounted=()
cleanup() {
  local m
  for m in "${mounted[@]}"; do
    mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }
  done
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT

# --- tools ---------------------------------------------------------------------
uv_bin() {
  local dir="$CACHE/tools/uv-$UV_VERSION"
  [ -x "$dir/bin/uv" ] || { "$PY" -m venv "$dir" && "$dir/bin/pip" install --quiet "uv==$UV_VERSION"; }
  echo "$dir/bin/uv"
}
syft_bin() {
  local dir="$CACHE/tools/syft-$SYFT_VERSION"
  if [ ! -x "$dir/bin/syft" ]; then
    log "building syft $SYFT_VERSION from its Go module (cold: several minutes)"
    CGO_ENABLED=0 GOFLAGS=-trimpath GOBIN="$dir/bin" \
      go install -ldflags "-s -w -X main.version=$SYFT_VERSION" "github.com/anchore/syft/cmd/syft@$SYFT_VERSION"
  fi
  echo "$dir/bin/syft"
}

# --- Debian base (shared by the three images) -----------------------------------
base_tar() {
  local key tar manifest partial
  # Keyed by this function's own text (not the whole script), so editing the
  # image steps does not rebuild the base.
  key=$(cat <(declare -f base_tar) "$here/debian.txt" \
            <(echo "$SOURCE_DATE_EPOCH $SUITE $MIRROR $BASE_PACKAGES") | sha256sum | cut -c1-12)
  tar="$out/base/$SUITE-$key.tar"
  if [ ! -f "$tar" ]; then
    command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install -y mmdebstrap"
    mkdir -p "$out/base"
    manifest="$out/base/$SUITE-$key.packages"
    partial="$out/base/partial-$SUITE-$key.tar"  # mmdebstrap picks the format by the .tar name
    log "base: mmdebstrap $SUITE ($BASE_PACKAGES)"
    # uid/gid 1000 as the pods' securityContext expects; its home is the only
    # directory it owns (the pods mount /tmp and point HOME there).
    mmdebstrap --quiet --variant=essential --mode=root --include="$BASE_PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --skip=output/dev \
      --customize-hook='echo "modelops:x:1000:1000:modelops:/home/modelops:/usr/sbin/nologin" >> "$1/etc/passwd"' \
      --customize-hook='echo "modelops:x:1000:" >> "$1/etc/group"' \
      --customize-hook='echo "modelops:!:$((SOURCE_DATE_EPOCH / 86400)):0:99999:7:::" >> "$1/etc/shadow"' \
      --customize-hook='install -d -m 0755 -o 1000 -g 1000 "$1/home/modelops"' \
      --customize-hook="chroot \"\$1\" dpkg-query -W -f '\${Package}=\${Version}\\n' | LC_ALL=C sort > '$manifest'" \
      "$SUITE" "$partial" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb http://deb.debian.org/debian-security $SUITE-security main"
    if [ "${MODELOPS_IMAGES_RELOCK:-}" = 1 ]; then
      { sed -n '/^#/p' "$here/debian.txt"; cat "$manifest"; } > "$here/debian.txt.new"
      mv "$here/debian.txt.new" "$here/debian.txt"
      rm -f "$partial"
      die "wrote hack/images/debian.txt from what $SUITE has today; rerun to build with it"
    fi
    if ! diff <(grep -v '^#' "$here/debian.txt") "$manifest" >&2; then
      rm -f "$partial"
      die "the Debian packages differ from hack/images/debian.txt (a Debian point or security release?); review and refresh with MODELOPS_IMAGES_RELOCK=1 $0"
    fi
    mv "$partial" "$tar"
  fi
  echo "$tar"
}

# The base as an OCI layer: gzip'ed once, beside its tar.
base_layer() {  # -> the layer's JSON (digests, sizes) for oci.py; the blob is beside it
  local tar json
  tar=$(base_tar)
  json="${tar%.tar}.layer.json"
  if [ ! -f "$json" ]; then
    "$PY" "$here/oci.py" gzip "$tar" "${tar%.tar}.layer.tar.gz" > "$json.partial"
    mv "$json.partial" "$json"
  fi
  echo "$json"
}

# --- Python wheels ---------------------------------------------------------------
download_wheels() {  # lock -> $out/wheels (pip checks every hash)
  mkdir -p "$out/wheels"
  local opts=(--quiet --disable-pip-version-check --require-hashes --no-deps --only-binary=:all:)
  # The wheels already here first (offline); the index only when some are missing.
  "$PY" -m pip download "${opts[@]}" --no-index --find-links "$out/wheels" --dest "$out/wheels" \
      -r "$1" >/dev/null 2>&1 ||
    "$PY" -m pip download "${opts[@]}" --dest "$out/wheels" -r "$1"
}

project_wheel() {  # builds the project wheel from a copy of its inputs
  local dist="$out/dist/$source_hash" src
  if ! compgen -G "$dist/modelops-$version-*.whl" >/dev/null; then
    src="$work/src"
    mkdir -p "$src" "$dist"
    # A copy with modes 0644/0755 whatever the checkout's umask (the wheel records them).
    (cd "$root" && source_files | tar --no-recursion -cf - -T - | tar -C "$src" --no-same-permissions -xf -)
    find "$src" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
    "$(uv_bin)" build --quiet --wheel --python "$PY" --build-constraints "$here/build.lock" \
      --require-hashes --out-dir "$dist" "$src" >&2
  fi
  compgen -G "$dist/modelops-$version-*.whl"
}

# --- the dependency layer ----------------------------------------------------------
deps_layer_paths() {  # name -> what layer 2 holds, under the root
  echo ./opt/modelops
  [ "$1" != runtime ] || echo ./opt/tritonserver
}

build_deps() {  # name: the locked wheels in the venv over the base; cached by deps_key
  local name=$1 dir partial rootfs pip_wheel start
  dir=$(deps_dir "$name")
  [ -f "$dir/layer.json" ] && return 0
  start=$(date +%s)
  log "$name: building the dependency layer (key $(basename "$dir"))"
  partial="$dir.partial"
  rm -rf "$partial"
  rootfs="$partial/rootfs"
  mkdir -p "$rootfs"
  tar -C "$rootfs" --same-owner --numeric-owner -xf "$(base_tar)"

  download_wheels "$here/build.lock"
  download_wheels "$here/$name.lock"
  pip_wheel=$(compgen -G "$out/wheels/pip-*.whl" | head -1)
  # The wheels enter the chroot as hard links (same file system) and leave with it.
  mkdir -p "$rootfs/tmp/wheels"
  cp -l "$out/wheels"/*.whl "$rootfs/tmp/wheels/" 2>/dev/null || cp "$out/wheels"/*.whl "$rootfs/tmp/wheels/"
  cp "$here/$name.lock" "$rootfs/tmp/requirements.txt"

  # The venv uses the image's own interpreter; pip runs from its wheel and is
  # not installed (nothing in the image installs packages at run time).
  chroot "$rootfs" /usr/bin/$PY -m venv --without-pip $VENV
  chroot "$rootfs" /usr/bin/env -i PATH=/usr/bin:/bin SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
    HOME=/tmp PYTHONHASHSEED=0 \
    $VENV/bin/python "/tmp/wheels/$(basename "$pip_wheel")/pip" install --quiet \
    --no-index --find-links /tmp/wheels --no-deps --require-hashes --only-binary=:all: \
    --no-cache-dir --disable-pip-version-check --no-warn-script-location -r /tmp/requirements.txt
  rm -rf "$rootfs/tmp/wheels" "$rootfs/tmp/requirements.txt"
  if [ "$name" = runtime ]; then
    # Triton's default paths pointing into the wheel (see the script).
    "$here/triton-layout.sh" "$rootfs"
  fi
  if [ "$name" != operator ] && [ "${MODELOPS_TRAINER_CUDA:-cpu}" != full ]; then
    "$PY" "$here/prune_cuda.py" "$rootfs$SITE" >&2
  fi

  # /opt only, root-owned (read-only for uid 1000), fixed mtimes.
  local paths
  mapfile -t paths < <(deps_layer_paths "$name")
  tar -C "$rootfs" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -cf - "${paths[@]}" | "$PY" "$here/oci.py" gzip - "$partial/layer.tar.gz" > "$partial/layer.json"
  rm -rf "$dir" && mv "$partial" "$dir"
  log "$name: dependency layer built in $(( $(date +%s) - start ))s"
}

# The root the project is installed into: an overlay over the cached dependency
# root (nothing copied, the cache never written), or a copy of it where
# overlayfs cannot be mounted.
project_root() {  # lower dir -> merged root
  local lower=$1 dir=$2
  mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
  if mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" \
      "$dir/merged" 2>/dev/null; then
    echo "$dir/merged"
    return 0
  fi
  log "overlayfs cannot be mounted here: copying the dependency root instead (slower)"
  cp -a "$lower/." "$dir/merged/"
  echo "$dir/merged"
}

# --- one image -------------------------------------------------------------------
build_image() {
  local name=$1 dir deps mnt wheel pip_wheel spec start files
  dir=$(image_dir "$name")
  if [ -f "$dir/image.json" ]; then return 0; fi
  build_deps "$name"
  start=$(date +%s)
  log "$name: building (key $(basename "$dir"))"
  deps=$(deps_dir "$name")
  touch "$deps"  # in use (see prune)
  mnt=$(project_root "$deps/rootfs" "$work/$name")
  mountpoint -q "$mnt" && mounted+=("$mnt")
  files="$work/$name/files"
  (cd "$mnt" && find ./opt | LC_ALL=C sort) > "$files.before"

  wheel=$(project_wheel)
  # pip runs from its locked wheel (build.lock), fetched for layer 2 already.
  compgen -G "$out/wheels/pip-*.whl" >/dev/null || download_wheels "$here/build.lock"
  pip_wheel=$(compgen -G "$out/wheels/pip-*.whl" | head -1)
  mkdir -p "$mnt/tmp/wheels"
  cp "$pip_wheel" "$wheel" "$mnt/tmp/wheels/"
  echo "modelops @ file:///tmp/wheels/$(basename "$wheel") --hash=sha256:$(sha256sum < "$wheel" | cut -d' ' -f1)" \
    > "$mnt/tmp/requirements.txt"
  # The project alone, into the venv that holds its locked dependencies.
  chroot "$mnt" /usr/bin/env -i PATH=/usr/bin:/bin SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
    HOME=/tmp PYTHONHASHSEED=0 \
    $VENV/bin/python "/tmp/wheels/$(basename "$pip_wheel")/pip" install --quiet \
    --no-index --no-deps --require-hashes --only-binary=:all: \
    --no-cache-dir --disable-pip-version-check --no-warn-script-location -r /tmp/requirements.txt
  check_image "$name" "$mnt"

  # The project's layer: what the install added under /opt, with its parent
  # directories (the same metadata as in layer 2), in name order.
  (cd "$mnt" && find ./opt | LC_ALL=C sort) > "$files.after"
  LC_ALL=C comm -13 "$files.before" "$files.after" | "$PY" -c '
import sys
paths = set()
for line in sys.stdin:
    parts = line.rstrip("\n").split("/")
    paths.update("/".join(parts[:i]) for i in range(2, len(parts) + 1))
print("\n".join(sorted(paths)))' | LC_ALL=C sort > "$files.layer"
  grep -q '/site-packages/modelops/' "$files.layer" || die "$name: the project's install added no modelops package"
  tar -C "$mnt" --no-recursion --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -cf "$work/$name/project.tar" -T "$files.layer"

  rm -rf "$dir.partial"
  mkdir -p "$dir.partial"
  spec="$work/$name/spec.json"
  image_spec "$name" "$(base_layer)" "$deps/layer.json" "$work/$name/project.tar" > "$spec"
  "$PY" "$here/oci.py" "$spec" "$dir.partial/image.oci.tar" > "$dir.partial/result.json"
  # The SBOM of the final image's file system (the three layers as mounted),
  # with syft's image catalogers; scanning the archive would unpack it again.
  SYFT_CHECK_FOR_APP_UPDATE=false "$(syft_bin)" scan --quiet "dir:$mnt" --override-default-catalogers image \
    --source-name "modelops-$name" --source-version "$version" \
    -o "spdx-json=$dir.partial/sbom.spdx.json" >&2
  if mountpoint -q "$mnt"; then umount "$mnt"; fi
  "$PY" - "$dir" "$name" "$version" "$(( $(date +%s) - start ))" <<'EOF' > "$dir.partial/image.json"
import json, sys
d, name, version, secs = sys.argv[1:]
r = json.load(open(f"{d}.partial/result.json"))
json.dump({"name": f"modelops-{name}", "ref": f"localhost/modelops-{name}:{version}",
           "digest": r["digest"], "size": r["size"], "uncompressed_size": r["uncompressed_size"],
           "archive": f"{d}/image.oci.tar", "sbom": f"{d}/sbom.spdx.json",
           "build_seconds": int(secs)}, sys.stdout, indent=2)
EOF
  rm -rf "$dir" && mv "$dir.partial" "$dir"
  rm -rf "${work:?}/$name"
  log "$name: built in $(( $(date +%s) - start ))s"
}

# Guards, in the image's own root: the CLI starts, torch in the trainer and the
# runtime (TorchScript), never in the operator.
check_image() {
  local name=$1 r=$2 want=0
  [ "$name" != operator ] && want=1
  chroot "$r" /usr/bin/env -i PATH=$VENV/bin:/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 \
    $VENV/bin/modelops crds > /dev/null || die "$name: 'modelops crds' fails in the image"
  chroot "$r" /usr/bin/env -i PYTHONDONTWRITEBYTECODE=1 $VENV/bin/python -c \
    "import importlib.util as u, sys; sys.exit(0 if (u.find_spec('torch') is not None) == bool($want) else 'torch presence is wrong in the $name image')"
  rm -rf "$r/tmp/wheels" "$r/tmp/requirements.txt"
}

cached_layer() {  # layer.json created_by -> a spec layer naming its cached blob
  "$PY" -c 'import json, sys
layer = json.load(open(sys.argv[1]))
blob = sys.argv[1].removesuffix(".json") + ".tar.gz"
print(json.dumps({**layer, "blob": blob, "created_by": sys.argv[2]}))' "$1" "$2"
}

image_spec() {  # name base-layer.json deps-layer.json project.tar -> the oci.py spec
  local name=$1 env cmd entry desc
  env='"PATH=/opt/modelops/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"'
  case $name in
    operator)
      entry='["modelops"]'; cmd='["run"]'
      desc="modelops operator (modelops run); also runs the serving pods' init containers and drift-monitor sidecar" ;;
    runtime)
      env='"PATH=/opt/modelops/bin:/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH=/opt/tritonserver/lib", "HOME=/tmp", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"'
      entry='[]'; cmd='["tritonserver", "--model-repository=/models"]'
      desc="Triton Inference Server 2.51 (CPU, python backend, from nvidia-pytriton) with torch for TorchScript models and the modelops CLI (pull-model, drift-monitor)" ;;
    trainer)
      entry='["modelops"]'; cmd='["train", "--help"]'
      desc="modelops trainer (modelops train) with PyTorch" ;;
  esac
  cat <<EOF
{
  "epoch": $SOURCE_DATE_EPOCH,
  "ref": "localhost/modelops-$name:$version",
  "layers": [
    $(cached_layer "$2" "mmdebstrap $SUITE essential + $BASE_PACKAGES (hack/images/debian.txt)"),
    $(cached_layer "$3" "pip install --require-hashes -r hack/images/$name.lock"),
    {"path": "$4", "created_by": "pip install --no-deps modelops $version"}
  ],
  "config": {
    "User": "1000:1000",
    "Env": [$env],
    "Entrypoint": $entry,
    "Cmd": $cmd,
    "WorkingDir": "/home/modelops",
    "Labels": {
      "org.opencontainers.image.title": "modelops-$name",
      "org.opencontainers.image.description": "$desc",
      "org.opencontainers.image.version": "$version",
      "org.opencontainers.image.revision": "$revision",
      "org.opencontainers.image.source": "https://github.com/modelops/modelops",
      "org.opencontainers.image.licenses": "Apache-2.0",
      "org.opencontainers.image.created": "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)",
      "org.opencontainers.image.base.name": "debian:$SUITE"
    }
  }
}
EOF
}

# The cache is on a shared disk, and each runtime or trainer archive is ~2 GB
# (its dependency root ~4 GB): superseded builds of an image go once nobody has
# used them for a while (a test may be importing one; a build may be reading a
# dependency root). The mtime of a directory is its last use (touched below).
prune() {  # name
  local d n=0
  while read -r d; do
    n=$((n + 1))
    [ "$n" -le 3 ] && continue  # the newest three builds of the image stay
    [ -z "$(find "$d" -maxdepth 0 -mmin +15)" ] || rm -rf "$d"
  done < <(find "$out" -maxdepth 1 -type d -name "$1-$version-*" ! -name '*.partial' -printf '%T@ %p\n' \
           | sort -rn | cut -d' ' -f2-)
  # Dependency layers other than this one, unused for an hour; partial leftovers of a day.
  find "$out/deps" -maxdepth 1 -type d -name "$1-*" ! -name '*.partial' ! -path "$(deps_dir "$1")" \
    -mmin +60 -exec rm -rf {} + 2>/dev/null || true
  find "$out" "$out/deps" -maxdepth 1 -type d -name "$1-*.partial" -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
}

built=()
for t in "${targets[@]}"; do
  dir=$(image_dir "$t")
  if [ ! -f "$dir/image.json" ]; then
    [ "$(id -u)" = 0 ] || die "building an image needs root (chroot, mmdebstrap --mode=root)"
    [ -n "$work" ] || work=$(mktemp -d "$out/work.XXXXXX")
    build_image "$t"
  fi
  touch "$dir"
  [ ! -d "$(deps_dir "$t")" ] || touch "$(deps_dir "$t")"
  prune "$t"
  built+=("$dir/image.json")
done

# images.json: every image whose current build exists, merged with the old index
# (so `build.sh runtime` keeps the operator's entry).
"$PY" - "$out/images.json" "${built[@]}" <<'EOF'
import json, os, sys
index_path, entries = sys.argv[1], sys.argv[2:]
index = {}
if os.path.exists(index_path):
    index = json.load(open(index_path))
for path in entries:
    entry = json.load(open(path))
    index[entry["name"]] = entry
    print(f"{entry['ref']}  {entry['digest']}  {entry['size'] / 1e6:.0f} MB  {entry['archive']}", file=sys.stderr)
tmp = index_path + ".tmp"
with open(tmp, "w") as f:
    json.dump(index, f, indent=2, sort_keys=True)
os.replace(tmp, index_path)
EOF
echo "$out/images.json"

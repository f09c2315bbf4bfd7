#!/usr/bin/env bash
# Builds, without any registry, the container images a local mom cluster runs:
#   mom-base:bookworm      a Debian bookworm root filesystem (debootstrap, minbase) with curl and CA
#                          certificates only, imported once; the broker image is this plus its binary
#   mom-redis:7            mom-base + Debian's redis-server              (images/redis.Dockerfile)
#   mom-zookeeper:3.8      mom-base + Debian's zookeeper and a headless JRE (images/zookeeper.Dockerfile)
#   mom-nginx:1.22         mom-base + Debian's nginx-light               (images/nginx.Dockerfile)
# Each image holds only what its service runs (the broker needs no JRE, Redis and NGINX need no
# ZooKeeper); the base layer is shared, so the four images cost the disk of about one.
# The broker image (mom-broker:<version>) is built by `momctl build` through the Docker API.
# The service images install their packages from the same Debian mirror as this host's apt
# (their builds use the host's network), the three builds at once.
#
# Idempotent and fast when cached: an image that already exists (of this layout, IMAGES below) is
# kept. Set MOM_IMAGES_REBUILD=1 to rebuild the service images.
# Needs root (debootstrap) and the docker CLI (this script only; momctl uses the Docker API).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MOM_IMAGES_CACHE:-/var/cache/mom-images}"
BASE=mom-base:bookworm
PACKAGES=ca-certificates,curl
# The layout of these images, as a label: images of an older layout (one fat base with every
# service's packages) are rebuilt.
IMAGES=2

log() { echo "[images] $*"; }
have_image() {
  [ "$(docker image inspect -f '{{ index .Config.Labels "mom.images" }}' "$1" 2>/dev/null)" = "$IMAGES" ]
}

# debian_mirror, shared with tests/multihost/hosts.sh
. "$ROOT/scripts/lib.sh"

if ! have_image "$BASE"; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  rootfs="$CACHE/rootfs-bookworm"
  mirror="$(debian_mirror)"
  log "debootstrap bookworm (minbase, $PACKAGES) from $mirror into $rootfs (about a minute)"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  start=$SECONDS
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -30 "$CACHE/debootstrap.log"; exit 1; }
  # No package cache or service state in the image; services run in the foreground under Docker.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  log "debootstrap took $((SECONDS - start)) s; importing as $BASE"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' --change "LABEL mom.images=$IMAGES" - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

# Service images: the base plus one service's packages and its command, from tiny Dockerfiles (no
# build context needed), built at once.
build() {
  local tag="$1" dockerfile="$2"
  if have_image "$tag" && [ "${MOM_IMAGES_REBUILD:-0}" != 1 ]; then
    return 0
  fi
  log "building $tag from ${dockerfile#"$ROOT"/}"
  local start=$SECONDS out
  # The classic builder needs no buildx plugin; its deprecation notice is noise unless it fails.
  out="$(DOCKER_BUILDKIT=0 docker build -q --network host --label "mom.images=$IMAGES" \
    --build-arg "MIRROR=$(debian_mirror)" -t "$tag" - <"$dockerfile" 2>&1)" \
    || { echo "$out"; log "building $tag failed"; return 1; }
  log "$tag built in $((SECONDS - start)) s"
}
pids=()
build mom-redis:7 "$ROOT/images/redis.Dockerfile" & pids+=($!)
build mom-zookeeper:3.8 "$ROOT/images/zookeeper.Dockerfile" & pids+=($!)
build mom-nginx:1.22 "$ROOT/images/nginx.Dockerfile" & pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || exit 1
log "images ready: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
  | grep -E '^mom-(base|redis|zookeeper|nginx):' | sort | paste -sd, | sed 's/,/, /g')"

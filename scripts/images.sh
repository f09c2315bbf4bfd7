#!/usr/bin/env bash
# Builds, without any registry, the container images a local mom cluster runs:
#   mom-base:bookworm      a Debian bookworm root filesystem (debootstrap, minbase) with redis-server,
#                          nginx-light, zookeeper, a headless JRE, curl and CA certificates, imported once
#   mom-redis:7            mom-base with redis-server as its command      (images/redis.Dockerfile)
#   mom-zookeeper:3.8      mom-base with one ZooKeeper node               (images/zookeeper.Dockerfile)
#   mom-nginx:1.22         mom-base with nginx in the foreground          (images/nginx.Dockerfile)
# The broker image (mom-broker:<version>) is built by `momctl build` through the Docker API.
#
# Idempotent and fast when cached: an image that already exists is kept. Set MOM_IMAGES_REBUILD=1 to
# rebuild the service images (the base is only rebuilt when it is missing).
# Needs root (debootstrap) and the docker CLI (this script only; momctl uses the Docker API).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MOM_IMAGES_CACHE:-/var/cache/mom-images}"
BASE=mom-base:bookworm
PACKAGES=redis-server,nginx-light,zookeeper,default-jre-headless,ca-certificates,curl

log() { echo "[images] $*"; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# debian_mirror, shared with tests/multihost/hosts.sh
. "$ROOT/scripts/lib.sh"

if ! have_image "$BASE"; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  rootfs="$CACHE/rootfs-bookworm"
  mirror="$(debian_mirror)"
  log "debootstrap bookworm from $mirror into $rootfs (about a minute)"
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
    --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

# Service images: the base plus a command, from tiny Dockerfiles (no build context needed).
build() {
  local tag="$1" dockerfile="$2"
  if have_image "$tag" && [ "${MOM_IMAGES_REBUILD:-0}" != 1 ]; then
    return 0
  fi
  log "building $tag from ${dockerfile#"$ROOT"/}"
  # The classic builder needs no buildx plugin; its deprecation notice is noise unless it fails.
  local out
  out="$(DOCKER_BUILDKIT=0 docker build -q -t "$tag" - <"$dockerfile" 2>&1)" || { echo "$out"; return 1; }
}
build mom-redis:7 "$ROOT/images/redis.Dockerfile"
build mom-zookeeper:3.8 "$ROOT/images/zookeeper.Dockerfile"
build mom-nginx:1.22 "$ROOT/images/nginx.Dockerfile"
log "images ready: $BASE mom-redis:7 mom-zookeeper:3.8 mom-nginx:1.22"

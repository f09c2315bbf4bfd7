#!/usr/bin/env bash
# The main job: brings up the local cluster of ./mom.yaml (3 brokers, Redis, ZooKeeper, NGINX on
# this machine's Docker engine). Makes what is missing first: the local images (no registry
# needed), a release broker and momctl (without the aws provider: the local path never compiles
# aws-sdk-ec2). The image build runs while cargo compiles. Installs momctl as
# /usr/local/bin/momctl (a symlink into the target directory). Prints each phase's duration.
# Idempotent: run it again after changing mom.yaml and only the difference is applied.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[cluster-up] $*"; }
fail() { echo "cluster-up: $*" >&2; exit 2; }

# --- prerequisites: one line each -----------------------------------------------------------
if [ -z "${MOM_ADMIN_PASSWORD:-}" ]; then
  echo "cluster-up: set MOM_ADMIN_PASSWORD (12+ characters) for the first admin, e.g." >&2
  echo "  MOM_ADMIN_PASSWORD='choose-a-long-one' $0" >&2
  exit 2
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
    || fail "needs root or password-less sudo (debootstrap and apt-get build the images)"
  SUDO=sudo
fi
command -v apt-get >/dev/null 2>&1 || fail "needs apt-get (a Debian or Ubuntu host) to install debootstrap"
command -v cargo >/dev/null 2>&1 || fail "needs cargo (a Rust toolchain, 1.89 or newer: https://rustup.rs)"
command -v docker >/dev/null 2>&1 || fail "needs the docker CLI and a Docker engine (apt-get install docker.io)"
docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (docker info); start it (service docker start)"

# --- phases ---------------------------------------------------------------------------------
PHASES=()
run_start=$SECONDS
took() { PHASES+=("$(printf '%5d s  %s' "$1" "$2")"); log "$2: $1 s"; }
summary() {
  local code=$?
  log "phase durations (total $((SECONDS - run_start)) s, exit $code):"
  for p in "${PHASES[@]}"; do echo "    $p"; done
}
trap summary EXIT

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null 2>&1; then
  start=$SECONDS
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq debootstrap >/dev/null
  took $((SECONDS - start)) "install debootstrap"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mom-target}"

# The images (debootstrap: network and disk) while cargo compiles (CPU).
start=$SECONDS
images_log="$(mktemp)"
$SUDO env ${MOM_IMAGES_CACHE:+MOM_IMAGES_CACHE="$MOM_IMAGES_CACHE"} scripts/images.sh >"$images_log" 2>&1 &
images_pid=$!
build_start=$SECONDS
# One build, one target directory: the broker and momctl (local provider only).
cargo build -q --release -p mom-broker --bin mom-broker -p mom-operator --bin momctl
took $((SECONDS - build_start)) "cargo build --release (mom-broker, momctl)"
if ! wait "$images_pid"; then
  cat "$images_log" >&2
  fail "scripts/images.sh failed (its output is above)"
fi
cat "$images_log"
rm -f "$images_log"
took $((SECONDS - start)) "images and build, overlapped"

momctl="$CARGO_TARGET_DIR/release/momctl"
# momctl where the shell finds it.
if [ "$(readlink /usr/local/bin/momctl 2>/dev/null)" != "$momctl" ]; then
  $SUDO ln -sfn "$momctl" /usr/local/bin/momctl && log "momctl installed: /usr/local/bin/momctl -> $momctl" \
    || log "momctl is $momctl (could not link it into /usr/local/bin)"
fi

# The broker image, unless it already holds this very binary (a stamp: the binary's sha256, then
# the tag and the image id `momctl build` made from it).
start=$SECONDS
broker="$CARGO_TARGET_DIR/release/mom-broker"
stamp="$CARGO_TARGET_DIR/release/.mom-broker-image"
sum="$(sha256sum "$broker" | cut -d' ' -f1)"
read -r stamp_sum stamp_tag stamp_id 2>/dev/null <"$stamp" || true
if [ "${stamp_sum:-}" = "$sum" ] && [ -n "${stamp_tag:-}" ] \
  && [ "$(docker image inspect -f '{{.Id}}' "$stamp_tag" 2>/dev/null)" = "${stamp_id:-}" ]; then
  log "$stamp_tag already holds this mom-broker ($stamp_id)"
else
  built="$("$momctl" -c mom.yaml build --binary "$broker" | tee /dev/stderr | tail -1)"
  # The last line: "<tag> is <image id>".
  read -r built_tag built_is built_id <<<"$built"
  if [ "$built_is" = is ]; then echo "$sum $built_tag $built_id" >"$stamp"; fi
fi
took $((SECONDS - start)) "momctl build (broker image)"
start=$SECONDS
"$momctl" -c mom.yaml up "$@"
took $((SECONDS - start)) "momctl up"

#!/usr/bin/env bash
# Called by .ci/run before the tests: what the operator's (momctl's) tests need.
#   - nginx (for `nginx -t`; .ci/run installs it) and docker-compose (for `docker-compose config`)
#   - the local images: mom-base, mom-redis, mom-zookeeper, mom-nginx (scripts/images.sh, cached)
#     and mom-broker:<version> from the release broker binary just built (`momctl build`, Docker API)
#   - mom-host:latest, the simulated EC2 hosts (Docker-in-Docker) of operator/tests/aws_moto.rs
#     (tests/multihost/hosts.sh image: debootstrap, cached; the hosts run only after `hosts.sh up`)
# Idempotent; fast when the images exist (the broker image is rebuilt: its binary changes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[.ci/images] $*"; }
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "the Docker engine does not answer (docker info); the operator's end-to-end test needs it"
  exit 1
fi

start=$SECONDS
scripts/images.sh
step=$SECONDS
tests/multihost/hosts.sh image
log "host image mom-host:latest ready in $((SECONDS - step)) s"
# Built as `cargo nextest run --workspace --all-features` builds them (same features: momctl
# with its aws provider), so the test run reuses them.
log "building mom-broker and momctl"
cargo test -q --workspace --all-features --no-run
# The image's broker and the load generator are release builds, as `scripts/cluster-up.sh` and
# BENCHMARKS.md use them: the rolling-upgrade test loads 3 brokers, NGINX, Redis and ZooKeeper
# through mom-bench on this machine's 2 cores, and debug builds spend most of those cores.
log "building mom-broker and mom-bench (release)"
cargo build -q --release -p mom-broker --bin mom-broker -p mom-tests --bin mom-bench
target="${CARGO_TARGET_DIR:-$ROOT/target}"
"$target/debug/momctl" -c "$ROOT/mom.yaml" build --binary "$target/release/mom-broker"
log "images ready in $((SECONDS - start)) s"

#!/usr/bin/env bash
# The main job: brings up the local cluster of ./mom.yaml (3 brokers, Redis, ZooKeeper, NGINX on
# this machine's Docker engine). Makes what is missing first: Debian packages for the image
# build, the local images (no registry needed), a release broker and momctl. Idempotent: run it
# again after changing mom.yaml and only the difference is applied.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${MOM_ADMIN_PASSWORD:-}" ]; then
  echo "cluster-up: set MOM_ADMIN_PASSWORD (12+ characters) for the first admin, e.g." >&2
  echo "  MOM_ADMIN_PASSWORD='choose-a-long-one' $0" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mom-target}"
scripts/images.sh
cargo build --release -p mom-broker -p mom-operator
momctl="$CARGO_TARGET_DIR/release/momctl"
"$momctl" -c mom.yaml build --binary "$CARGO_TARGET_DIR/release/mom-broker"
exec "$momctl" -c mom.yaml up "$@"

#!/usr/bin/env bash
# Runs one broker on this machine against a local Redis and ZooKeeper (started by .ci/run's
# service step when they are not running). Set MOM_ADMIN_PASSWORD to create the first admin.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${MOM_ADMIN_PASSWORD:-}" ]; then
  echo "run-local: set MOM_ADMIN_PASSWORD (12+ characters) for the first admin, e.g." >&2
  echo "  MOM_ADMIN_PASSWORD='choose-a-long-one' $0" >&2
  exit 2
fi
"$ROOT/.ci/run" --services-only
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mom-target}"
exec cargo run --release -p mom-broker -- "$@"

#!/usr/bin/env bash
# Runs the cargo-fuzz targets for SECONDS each (default 30), one after another, each from a
# scratch corpus seeded with fuzz/corpus/<target> (the seeds in the repo stay as they are).
# Fails on the first crash, leak, timeout or out-of-memory, printing the input that caused it.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      all targets when none are named
#
# Environment: CARGO_TARGET_DIR (default /work/target-fuzz, outside the repo),
# MOM_FUZZ_SCRATCH (default /tmp/mom-fuzz: corpora grown by the runs and logs).
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a nightly toolchain, or stable with
# RUSTC_BOOTSTRAP=1 (used automatically when no nightly is installed).
set -euo pipefail

FUZZ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ"
SECS="${1:-30}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-fuzz}"
SCRATCH="${MOM_FUZZ_SCRATCH:-/tmp/mom-fuzz}"

if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz() { cargo +nightly fuzz "$@"; }
else
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(fuzz list)
fi

# -a: debug assertions (and overflow checks) on, as in a dev build.
fuzz build -a

mkdir -p "$SCRATCH/logs"
for t in "${targets[@]}"; do
  corpus="$SCRATCH/corpus/$t"
  mkdir -p "$corpus"
  log="$SCRATCH/logs/$t.log"
  echo "[fuzz] $t: ${SECS}s (log: $log)"
  start=$(date +%s)
  if ! fuzz run -a "$t" "$corpus" "corpus/$t" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    echo "[fuzz] $t FAILED after $(($(date +%s) - start))s; the end of its log:"
    tail -40 "$log"
    grep -h "Test unit written to\|Failing input" "$log" || true
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "[fuzz] $t ok: $runs executions in $(($(date +%s) - start))s, coverage $cov, corpus $(ls "$corpus" | wc -l) files"
done

#!/usr/bin/env bash
# Idle connections against other clients (issue 13: "5,000 idle connections do not slow other
# clients' requests by more than 2x"), the measurement behind BENCHMARKS.md's section of that name:
#
#   bench/idle.sh
#
# Builds the broker and mom-bench in release (unless BROKER_BIN and BENCH_BIN are given), starts a
# broker with its default limits on the Redis at 127.0.0.1:6379 and the ZooKeeper at
# 127.0.0.1:2181 (as `.ci/run --services-only` starts them), each in a namespace of its own, runs
# `mom-bench idle` against it and stops it. mom-bench raises its own open-files limit to fit the
# connections (the hard limit must allow IDLE + 1024: `ulimit -Hn`).
#
# Knobs: IDLE (5000), RATE (1000 sends/s of the measured client), CONCURRENCY (10), DURATION (8 s
# per run), BENCH_BROKER_ENV ("K=V ..." added to the broker's environment), JSON (write the report).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -z ${BROKER_BIN:-} || -z ${BENCH_BIN:-} ]]; then
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p mom-broker -p mom-tests --bin mom-broker --bin mom-bench
    BROKER_BIN=$TARGET_DIR/release/mom-broker
    BENCH_BIN=$TARGET_DIR/release/mom-bench
fi

WORK=$(mktemp -d /tmp/mom-idle.XXXXXX)
BROKER_PID=
cleanup() {
    local rc=$?
    if [[ -n $BROKER_PID ]]; then kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null; fi
    if [[ $rc -ne 0 ]]; then echo "bench/idle.sh: failed (exit $rc); broker log in $WORK/broker.log" >&2; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
URL=http://127.0.0.1:$PORT
PASSWORD=idle-bench-$$-$RANDOM-password
read -r -a broker_env <<<"${BENCH_BROKER_ENV:-}"
# The per-user rate limit is set out of reach, as in bench/run.sh: it is not what is measured.
env ${broker_env[@]+"${broker_env[@]}"} MOM_LOG=${MOM_LOG:-warn} MOM_ADMIN_USER=admin MOM_ADMIN_PASSWORD="$PASSWORD" \
    MOM_RATE_LIMIT_RPS=1000000000 MOM_RATE_LIMIT_BURST=1000000000 \
    "$BROKER_BIN" --listen "127.0.0.1:$PORT" --zk-root "/mom-idle-$$" --redis-prefix "idle$$" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 300); do
    curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/broker.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$URL/readyz" >/dev/null

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -h | awk '/Mem:/{print $2}') RAM, $(uname -sr); load $(cut -d' ' -f1-3 /proc/loadavg); broker at $(git -C "$ROOT" rev-parse --short HEAD)"
MOM_BENCH_PASSWORD="$PASSWORD" "$BENCH_BIN" idle --url "$URL" --user admin --idle "${IDLE:-5000}" \
    --rate "${RATE:-1000}" --concurrency "${CONCURRENCY:-10}" --duration "${DURATION:-8}" ${JSON:+--json "$JSON"}

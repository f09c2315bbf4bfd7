#!/usr/bin/env bash
# The one command behind BENCHMARKS.md:
#
#   bench/run.sh
#
# (CARGO_TARGET_DIR as for any cargo build; a target directory outside the clone is reused.)
# Builds the broker and mom-bench in release; starts its own redis-server (appendonly yes,
# appendfsync everysec), uses the ZooKeeper on 127.0.0.1:2181 or starts its own, starts a release
# broker and its own RabbitMQ node (installing Debian's rabbitmq-server if missing); runs the
# redis-benchmark baselines and mom-bench against the broker and RabbitMQ at equal concurrency and
# body size, each BENCH_REPEAT times; rewrites the generated part of BENCHMARKS.md and
# bench/results.json (or of copies in BENCH_OUT_DIR). Every figure in the tables is the median of
# the repeats with their range (min–max), and the ratios are of medians (tests/src/bench/report.rs);
# bench/results.json keeps every run. Stops everything it started, on success or failure.
#
# Knobs (environment): BENCH_REDIS_ARGS (extra redis-server flags, after the AOF rewrite, lazy-free and encoding settings
# momctl deploys, which they override: e.g. "--auto-aof-rewrite-min-size 64mb" for Redis's default), BENCH_CONCURRENCY (50), BENCH_DURATION (10 s), BENCH_WARMUP (2 s),
# BENCH_BODY_BYTES (1024), BENCH_BATCH (100), BENCH_REDIS_REQUESTS (200000),
# BENCH_SCENARIOS (send,batch,lifecycle), BENCH_REPEAT (3: runs of each benchmark, redis-benchmark
# baselines included; the report gives their median and range), BENCH_OUT_DIR (write BENCHMARKS.md
# and results.json there, starting from a copy of the committed BENCHMARKS.md, instead of over the
# committed ones; for trial runs), BENCH_SKIP_AMQP=1, BENCH_SKIP_GRPC=1, BENCH_KEEP=1 (keep the work dir), BROKER_BIN (use this broker binary
# instead of building one), BENCH_BROKER_ENV ("K=V ..." added to the broker's environment, e.g.
# "TOKIO_WORKER_THREADS=1"), BENCH_AMQP_CONNECTIONS (4: connections the 50 AMQP channels share),
# BENCH_PROFILE=1 (perf-record the broker during a closed-loop send run; BENCH_PROFILE=lifecycle: during a lifecycle run), BENCH_LOADGEN_NICE (0: the
# niceness of `mom-bench http`, so that the load generator yields the cores to Redis and the broker).
# FIFO and fair queues (issue 21), after the HTTP and gRPC runs, each BENCH_REPEAT times:
# BENCH_FIFO_SCENARIOS (fifo,fair; set it empty to skip both): `fifo` is throughput on a standard
# queue and on FIFO queues with BENCH_FIFO_GROUPS (1,10,1000) groups, for each send size of
# BENCH_FIFO_BATCHES (1,10), with BENCH_FIFO_PRODUCERS (8) producers and BENCH_FIFO_CONSUMERS (8)
# consumers, BENCH_FIFO_WARMUP (1 s) + BENCH_FIFO_DURATION (3 s) measured per run; `fair` is the
# wait of a small group's messages while BENCH_FAIR_BACKLOG (100000) messages of another group
# drain, probed for BENCH_FAIR_DURATION (3 s), with groups and then without.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CONC=${BENCH_CONCURRENCY:-50}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
BODY=${BENCH_BODY_BYTES:-1024}
BATCH=${BENCH_BATCH:-100}
REDIS_N=${BENCH_REDIS_REQUESTS:-200000}
SCENARIOS=${BENCH_SCENARIOS:-send,batch,lifecycle,stream}
# The lifecycle through consume streams (issue 25), the scenario `stream` of BENCH_SCENARIOS: for each
# prefetch of BENCH_STREAM_PREFETCH (1,10,100), HTTP/SSE and gRPC `Consume` on the broker, then
# RabbitMQ's basic.consume, BENCH_CONCURRENCY producers and BENCH_STREAM_CONSUMERS (4) consumers,
# BENCH_STREAM_WARMUP (1 s) + BENCH_STREAM_DURATION (5 s) per run, closed loop then open loop at half.
STREAM_PREFETCH=${BENCH_STREAM_PREFETCH:-1,10,100}
STREAM_CONSUMERS=${BENCH_STREAM_CONSUMERS:-4}
STREAM_WARMUP=${BENCH_STREAM_WARMUP:-1}
STREAM_DURATION=${BENCH_STREAM_DURATION:-5}
REPEAT=${BENCH_REPEAT:-3}
FIFO_SCENARIOS=${BENCH_FIFO_SCENARIOS-fifo,fair}
FIFO_GROUPS=${BENCH_FIFO_GROUPS:-1,10,1000}
FIFO_BATCHES=${BENCH_FIFO_BATCHES:-1,10}
FIFO_PRODUCERS=${BENCH_FIFO_PRODUCERS:-8}
FIFO_CONSUMERS=${BENCH_FIFO_CONSUMERS:-8}
FIFO_WARMUP=${BENCH_FIFO_WARMUP:-1}
FIFO_DURATION=${BENCH_FIFO_DURATION:-3}
FAIR_BACKLOG=${BENCH_FAIR_BACKLOG:-100000}
FAIR_DURATION=${BENCH_FAIR_DURATION:-3}
if [[ -n ${BENCH_OUT_DIR:-} ]]; then
    mkdir -p "$BENCH_OUT_DIR"
    OUT_DIR=$(cd "$BENCH_OUT_DIR" && pwd)
    OUT=$OUT_DIR/BENCHMARKS.md
    RESULTS_JSON=$OUT_DIR/results.json
    PROFILE_DIR=$OUT_DIR
    if [[ ! -f $OUT && -f $ROOT/BENCHMARKS.md ]]; then cp "$ROOT/BENCHMARKS.md" "$OUT"; fi
else
    OUT=$ROOT/BENCHMARKS.md
    RESULTS_JSON=$ROOT/bench/results.json
    PROFILE_DIR=$ROOT/bench
fi
WORK=$(mktemp -d /tmp/mom-bench.XXXXXX)
RESULTS=$WORK/results
mkdir -p "$RESULTS"

log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- cleanup: only what this script started, by pid --------------------------------------------
STARTED_PIDS=()
RABBIT_STOP=()
ZK_STOP=()
EPMD_PID=
cleanup() {
    local rc=$?
    set +e
    if ((${#RABBIT_STOP[@]})); then "${RABBIT_STOP[@]}" >/dev/null 2>&1; fi
    if [[ -n $EPMD_PID ]]; then kill "$EPMD_PID" 2>/dev/null; fi
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if ((${#ZK_STOP[@]})); then "${ZK_STOP[@]}" >/dev/null 2>&1; fi
    if [[ $rc -ne 0 ]]; then
        log "failed (exit $rc); logs kept in $WORK"
    elif [[ ${BENCH_KEEP:-0} == 1 ]]; then
        log "logs, MONITOR capture, INFO commandstats and raw results kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # description, seconds, command...
    local what=$1 secs=$2
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    log "$what did not come up in ${secs}s"
    return 1
}

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- build ---------------------------------------------------------------------------------------
log "building release binaries into $TARGET_DIR"
if [[ -n ${BROKER_BIN:-} ]]; then
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p mom-tests --bin mom-bench --manifest-path "$ROOT/Cargo.toml"
else
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p mom-broker -p mom-tests --bin mom-broker --bin mom-bench \
        --manifest-path "$ROOT/Cargo.toml"
    BROKER_BIN=$TARGET_DIR/release/mom-broker
fi
BENCH=$TARGET_DIR/release/mom-bench

# --- Redis: our own, AOF everysec ----------------------------------------------------------------
# The AOF rewrite, lazy-free and encoding settings are momctl's (`REDIS_TUNING` in
# operator/src/desired/services.rs says why; a unit test there keeps this line equal to it): with
# Redis's default 64mb a send load forked a rewrite every few seconds, and each fork made the send
# p99; with the default listpack bounds a queue's small sorted sets cost every ZADD a scan.
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
REDIS_TUNING="--auto-aof-rewrite-min-size 4gb --auto-aof-rewrite-percentage 100 --aof-use-rdb-preamble yes --no-appendfsync-on-rewrite no --lazyfree-lazy-user-del yes --zset-max-listpack-entries 16 --hash-max-listpack-entries 16"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no --protected-mode no $REDIS_TUNING ${BENCH_REDIS_ARGS:-} \
    >"$WORK/redis/redis.log" 2>&1 &
REDIS_PID=$!
STARTED_PIDS+=("$REDIS_PID")
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
wait_for "redis-server" 10 rcli ping
aof_idle() { rcli INFO persistence | grep -q '^aof_rewrite_in_progress:0' && rcli INFO persistence | grep -q '^aof_rewrite_scheduled:0'; }
log "redis-server $REDIS_PORT (pid $REDIS_PID, appendonly yes, appendfsync everysec, $REDIS_TUNING ${BENCH_REDIS_ARGS:-})"

# --- ZooKeeper: the one on 2181, or our own --------------------------------------------------------
if (exec 3<>/dev/tcp/127.0.0.1/2181) 2>/dev/null; then
    ZK=127.0.0.1:2181
    log "using the ZooKeeper on $ZK"
else
    ZK_PORT=$(free_port)
    mkdir -p "$WORK/zk/data"
    cat >"$WORK/zk/zoo.cfg" <<EOF
tickTime=2000
dataDir=$WORK/zk/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
EOF
    ZOOCFGDIR=$WORK/zk ZOO_LOG_DIR=$WORK/zk /usr/share/zookeeper/bin/zkServer.sh start "$WORK/zk/zoo.cfg" >&2
    ZK_STOP=(env ZOOCFGDIR="$WORK/zk" ZOO_LOG_DIR="$WORK/zk" /usr/share/zookeeper/bin/zkServer.sh stop "$WORK/zk/zoo.cfg")
    ZK=127.0.0.1:$ZK_PORT
    wait_for "ZooKeeper" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT"
    log "started ZooKeeper on $ZK"
fi

# --- the broker ----------------------------------------------------------------------------------
# Auth on, as in production: the benchmark logs in as an ordinary user. The per-user rate limit
# stays on too (its bookkeeping is part of every request) but out of reach. The burst is 4x the
# rate because every request that finds its node's lease empty takes rate/50 tokens from Redis at
# once: with burst = rate, 50 concurrent requests drained the bucket and one answered 429.
BROKER_PORT=$(free_port)
BROKER_URL=http://127.0.0.1:$BROKER_PORT
GRPC_PORT=$(free_port)
ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export MOM_BENCH_USER=bench MOM_BENCH_PASSWORD
MOM_BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
read -r -a broker_env <<<"${BENCH_BROKER_ENV:-}"
env ${broker_env[@]+"${broker_env[@]}"} MOM_LOG=${MOM_LOG:-warn} MOM_ADMIN_USER=admin MOM_ADMIN_PASSWORD=$ADMIN_PASSWORD \
    MOM_RATE_LIMIT_RPS=1000000000 MOM_RATE_LIMIT_BURST=4000000000 \
    MOM_GRPC_LISTEN="127.0.0.1:$GRPC_PORT" \
    "$BROKER_BIN" --listen "127.0.0.1:$BROKER_PORT" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
    --zk "$ZK" --zk-root "/mom-bench-$$" --redis-prefix "bench$$" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
STARTED_PIDS+=("$BROKER_PID")
broker_ready() { kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/broker.log" >&2; exit 1; }; curl -fsS "$BROKER_URL/readyz"; }
wait_for "the broker" 30 broker_ready
token() {
    curl -fsS -X POST "$BROKER_URL/v1/auth/token" -H 'content-type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
api() { # method path [json] -- as the bench user
    curl -fsS -X "$1" "$BROKER_URL$2" -H "authorization: Bearer $BENCH_TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}
}
ADMIN_TOKEN=$(token admin "$ADMIN_PASSWORD")
curl -fsS -X POST "$BROKER_URL/v1/users" -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
    -d "{\"username\":\"$MOM_BENCH_USER\",\"password\":\"$MOM_BENCH_PASSWORD\",\"role\":\"user\"}" >/dev/null
BENCH_TOKEN=$(token "$MOM_BENCH_USER" "$MOM_BENCH_PASSWORD")
log "broker $BROKER_URL (pid $BROKER_PID), user $MOM_BENCH_USER"

# --- baselines: redis-benchmark at the same concurrency and body size -------------------------------
BODY_STR=$(head -c "$BODY" /dev/zero | tr '\0' x)
rbench() { redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONC" -n "$REDIS_N" --csv "$@"; }
import() { # label rep: $WORK/label-rep.csv into $RESULTS/redis-label-rep.json
    "$BENCH" import-redis --label "$1" --csv "$WORK/$1-$2.csv" --requests "$REDIS_N" \
        --concurrency "$CONC" --body-bytes "$BODY" --json "$RESULTS/redis-$1-$2.json"
}

# receive+ack of one message in one round trip: XREADGROUP of one entry, XACK, XDEL (an acked
# message is gone for good), in a Lua script so redis-benchmark can chain them. Each read+ack run
# reads exactly the REDIS_N entries the XADD run before it wrote.
READ_ACK_SHA=$(rcli SCRIPT LOAD "$(cat "$ROOT/bench/read_ack.lua")")
for rep in $(seq "$REPEAT"); do
    wait_for "an idle AOF (no rewrite running)" 120 aof_idle
    log "redis-benchmark XADD (one message stored), -c $CONC -n $REDIS_N, ${BODY}-byte field ($rep/$REPEAT)"
    rbench XADD bench:stream '*' body "$BODY_STR" >"$WORK/xadd-$rep.csv"
    import xadd "$rep"
    log "redis-benchmark EVALSHA of XREADGROUP+XACK+XDEL (one message received and acked) ($rep/$REPEAT)"
    rcli XGROUP CREATE bench:stream g 0 >/dev/null
    rbench EVALSHA "$READ_ACK_SHA" 1 bench:stream >"$WORK/read_ack-$rep.csv"
    import read_ack "$rep"
    rcli DEL bench:stream >/dev/null
done

# The broker's own send: capture the script call one HTTP send makes and replay it.
log "capturing the broker's send script call (MONITOR) and replaying it in redis-benchmark"
api PUT /v1/queues/probe '{}' >/dev/null
# redis-cli itself (not a function's subshell) so that $! is the process to stop: a MONITOR left
# running would slow every later command several times over.
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" MONITOR >"$WORK/monitor.txt" &
MONITOR_PID=$!
STARTED_PIDS+=("$MONITOR_PID")
sleep 0.3
api POST /v1/queues/probe/messages "{\"body\":\"$BODY_STR\"}" >/dev/null
sleep 0.3
kill "$MONITOR_PID" 2>/dev/null || true
wait "$MONITOR_PID" 2>/dev/null || true
if rcli CLIENT LIST | grep -q 'cmd=monitor'; then
    log "a MONITOR client is still attached; refusing to benchmark under it"
    exit 1
fi
for rep in $(seq "$REPEAT"); do
    wait_for "an idle AOF (no rewrite running)" 120 aof_idle
    log "redis-benchmark of the broker's send script ($rep/$REPEAT)"
    "$BENCH" replay-monitor --monitor "$WORK/monitor.txt" --command evalsha --containing "$BODY_STR" \
        --port "$REDIS_PORT" --requests "$REDIS_N" --concurrency "$CONC" --csv "$WORK/send_script-$rep.csv"
    import send_script "$rep"
    api POST /v1/queues/probe/purge >/dev/null
done
rcli BGREWRITEAOF >/dev/null

# --- mom-bench against the broker, one scenario at a time ----------------------------------------
common=(--concurrency "$CONC" --duration "$DURATION" --warmup "$WARMUP" --body-bytes "$BODY" --batch "$BATCH" --open-at-half)
IFS=, read -r -a scenario_list <<<"$SCENARIOS"
for sc in "${scenario_list[@]}"; do
    [[ $sc == stream ]] && continue
    for rep in $(seq "$REPEAT"); do
        log "mom-bench http $sc ($rep/$REPEAT)"
        wait_for "an idle AOF (no rewrite running)" 120 aof_idle
        rcli CONFIG RESETSTAT >/dev/null
        nice -n "${BENCH_LOADGEN_NICE:-0}" "$BENCH" http --url "$BROKER_URL" --scenario "$sc" "${common[@]}" \
            --watch "broker=$BROKER_PID" --watch "redis=$REDIS_PID" --json "$RESULTS/http-$sc-$rep.json" >&2
        rcli INFO commandstats >"$WORK/commandstats-http-$sc-$rep.txt"
        # Redis's own stalls (fork, fsync, slow scripts), with BENCH_REDIS_ARGS="--latency-monitor-threshold 1".
        { rcli LATENCY LATEST; rcli INFO persistence | grep -E '^(aof_delayed_fsync|latest_fork_usec)'; rcli SLOWLOG GET 5; } \
            >"$WORK/latency-http-$sc-$rep.txt" 2>&1 && rcli LATENCY RESET >/dev/null 2>&1 && rcli SLOWLOG RESET >/dev/null 2>&1 || true
        log "  AOF rewrites started so far: $(grep -c 'Starting automatic rewriting' "$WORK/redis/redis.log" || true)"
    done
done

# The gRPC front door on the same broker: send and lifecycle (BENCH_SKIP_GRPC=1 skips it).
if [[ ${BENCH_SKIP_GRPC:-0} != 1 ]]; then
    for sc in "${scenario_list[@]}"; do
        [[ $sc == batch || $sc == stream ]] && continue
        for rep in $(seq "$REPEAT"); do
            log "mom-bench grpc $sc ($rep/$REPEAT)"
            wait_for "an idle AOF (no rewrite running)" 120 aof_idle
            "$BENCH" grpc --url "$BROKER_URL" --grpc "127.0.0.1:$GRPC_PORT" --scenario "$sc" "${common[@]}" \
                --watch "broker=$BROKER_PID" --watch "redis=$REDIS_PID" --json "$RESULTS/grpc-$sc-$rep.json" >&2
        done
    done
fi

# --- the lifecycle through consume streams (issue 25): HTTP/SSE, then gRPC, on the same broker ----
stream_common=(--concurrency "$CONC" --consumers "$STREAM_CONSUMERS" --prefetch "$STREAM_PREFETCH"
    --warmup "$STREAM_WARMUP" --duration "$STREAM_DURATION" --body-bytes "$BODY" --open-at-half)
STREAM_TARGETS=()
if [[ ,$SCENARIOS, == *,stream,* ]]; then
    STREAM_TARGETS=(http)
    if [[ ${BENCH_SKIP_GRPC:-0} != 1 ]]; then STREAM_TARGETS+=(grpc); fi
fi
for target in ${STREAM_TARGETS[@]+"${STREAM_TARGETS[@]}"}; do
    for rep in $(seq "$REPEAT"); do
        log "mom-bench stream --target $target, prefetch $STREAM_PREFETCH ($rep/$REPEAT)"
        wait_for "an idle AOF (no rewrite running)" 120 aof_idle
        rcli CONFIG RESETSTAT >/dev/null
        "$BENCH" stream --target "$target" --url "$BROKER_URL" --grpc "127.0.0.1:$GRPC_PORT" "${stream_common[@]}" \
            --watch "broker=$BROKER_PID" --watch "redis=$REDIS_PID" --json "$RESULTS/stream-$target-$rep.json" >&2
        rcli INFO commandstats >"$WORK/commandstats-stream-$target-$rep.txt"
    done
done

# --- FIFO and fair queues (issue 21) on the same broker ---------------------------------------------
IFS=, read -r -a fifo_list <<<"$FIFO_SCENARIOS"
for sc in ${fifo_list[@]+"${fifo_list[@]}"}; do
    for rep in $(seq "$REPEAT"); do
        wait_for "an idle AOF (no rewrite running)" 120 aof_idle
        case $sc in
        fifo)
            log "mom-bench fifo: standard queue and FIFO with $FIFO_GROUPS groups, sends of $FIFO_BATCHES ($rep/$REPEAT)"
            "$BENCH" fifo --url "$BROKER_URL" --groups "$FIFO_GROUPS" --batches "$FIFO_BATCHES" \
                --producers "$FIFO_PRODUCERS" --consumers "$FIFO_CONSUMERS" --warmup "$FIFO_WARMUP" \
                --duration "$FIFO_DURATION" --body-bytes "$BODY" --watch "broker=$BROKER_PID" --watch "redis=$REDIS_PID" \
                --json "$RESULTS/fifo-$rep.json" >&2
            ;;
        fair)
            log "mom-bench fair: a backlog of $FAIR_BACKLOG, with groups and without ($rep/$REPEAT)"
            "$BENCH" fair --url "$BROKER_URL" --backlog "$FAIR_BACKLOG" --consumers "$FIFO_CONSUMERS" \
                --duration "$FAIR_DURATION" --json "$RESULTS/fair-$rep.json" >&2
            ;;
        *)
            log "BENCH_FIFO_SCENARIOS: unknown entry $sc (fifo, fair)"
            exit 1
            ;;
        esac
    done
done

if [[ ${BENCH_PROFILE:-0} != 0 ]] && command -v perf >/dev/null; then
    PROFILE_SCENARIO=send
    [[ $BENCH_PROFILE == lifecycle ]] && PROFILE_SCENARIO=lifecycle
    PROFILE_OUT=$PROFILE_DIR/profile-$PROFILE_SCENARIO.txt
    log "profiling the broker (perf record, cpu-clock) during a closed-loop $PROFILE_SCENARIO"
    perf record -e cpu-clock -F 999 -p "$BROKER_PID" -o "$WORK/perf.data" -- sleep "$((DURATION + WARMUP))" 2>"$WORK/perf.log" &
    PERF_PID=$!
    "$BENCH" http --url "$BROKER_URL" --scenario "$PROFILE_SCENARIO" --concurrency "$CONC" --duration "$DURATION" \
        --warmup "$WARMUP" --body-bytes "$BODY" >/dev/null
    wait "$PERF_PID" || true
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep '%' | sed 's/  */ /g' | head -60 >"$PROFILE_OUT" || true
    log "profile written to $PROFILE_OUT"
fi

# --- RabbitMQ: Debian's package, our own node, started only now so that it does not share
# the CPU with the broker's runs (Erlang schedulers spin for a while after work) ------------------
RABBIT_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
RABBIT_CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
AMQP_URL=
if [[ ${BENCH_SKIP_AMQP:-0} != 1 ]]; then
    if [[ ! -x $RABBIT_SERVER ]]; then
        log "installing rabbitmq-server (apt-get)"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >&2
    fi
    had_epmd=$(pgrep -x epmd || true)
    AMQP_PORT=$(free_port)
    RDIR=$WORK/rabbitmq
    mkdir -p "$RDIR"
    echo '[].' >"$RDIR/enabled_plugins"
    echo 'loopback_users = none' >"$RDIR/rabbitmq.conf"
    export RABBITMQ_NODENAME=mombench$$@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT=$AMQP_PORT RABBITMQ_DIST_PORT=$(free_port) \
        RABBITMQ_MNESIA_BASE=$RDIR/mnesia RABBITMQ_LOG_BASE=$RDIR/log \
        RABBITMQ_ENABLED_PLUGINS_FILE=$RDIR/enabled_plugins RABBITMQ_PID_FILE=$RDIR/pid \
        RABBITMQ_CONFIG_FILE=$RDIR/rabbitmq ERL_EPMD_ADDRESS=127.0.0.1
    # No systemd here: the package's own script, detached, as root; no invoke-rc.d.
    "$RABBIT_SERVER" -detached
    RABBIT_STOP=("$RABBIT_CTL" -n "$RABBITMQ_NODENAME" stop)
    timeout 120 "$RABBIT_CTL" -n "$RABBITMQ_NODENAME" wait "$RDIR/pid" >&2
    RABBIT_PID=$(cat "$RDIR/pid")
    if [[ -z $had_epmd ]]; then EPMD_PID=$(pgrep -x epmd || true); fi
    AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
    log "RabbitMQ $("$RABBIT_CTL" -n "$RABBITMQ_NODENAME" version 2>/dev/null) on $AMQP_PORT (pid $RABBIT_PID)"
fi

if [[ -n $AMQP_URL ]]; then
    for sc in "${scenario_list[@]}"; do
        [[ $sc == stream ]] && continue
        for rep in $(seq "$REPEAT"); do
            log "mom-bench amqp $sc ($rep/$REPEAT)"
            "$BENCH" amqp --url "$AMQP_URL" --scenario "$sc" "${common[@]}" \
                --amqp-connections "${BENCH_AMQP_CONNECTIONS:-4}" \
                --watch "rabbitmq=$RABBIT_PID" --json "$RESULTS/amqp-$sc-$rep.json" >&2
        done
    done
    # The streamed lifecycle's baseline: basic.consume at the same prefetch values and producers.
    if ((${#STREAM_TARGETS[@]})); then
        for rep in $(seq "$REPEAT"); do
            log "mom-bench stream --target amqp, prefetch $STREAM_PREFETCH ($rep/$REPEAT)"
            "$BENCH" stream --target amqp --url "$AMQP_URL" "${stream_common[@]}" \
                --amqp-connections "${BENCH_AMQP_CONNECTIONS:-4}" \
                --watch "rabbitmq=$RABBIT_PID" --json "$RESULTS/stream-amqp-$rep.json" >&2
        done
    fi
fi

# --- report ---------------------------------------------------------------------------------------
"$BENCH" report --dir "$RESULTS" --json "$RESULTS_JSON" >"$WORK/tables.md"
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
mem=$(free -h | awk '/^Mem:/ {print $2}')
{
    echo "<!-- BEGIN GENERATED by bench/run.sh; edit outside these markers -->"
    echo "## Figures"
    echo
    # The command as it was run: the knobs set in the environment, then the script.
    knobs=$(env | grep -E '^BENCH_[A-Z_]+=' | grep -vE '^BENCH_(OUT_DIR|KEEP)=' | sort | sed "s/=\(.*\)/='\1'/" | tr '\n' ' ' || true)
    echo "Generated $(date -u +%Y-%m-%dT%H:%MZ) by \`${knobs}bench/run.sh\`."
    echo
    echo "**Machine:** $(nproc) cores ($cpu_model), $mem RAM, $(uname -sr); Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'),"
    echo "RabbitMQ ${AMQP_URL:+$("$RABBIT_CTL" -n "$RABBITMQ_NODENAME" version 2>/dev/null)}, broker at commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet -- broker || echo ' (+ uncommitted broker changes)')."
    echo "Load generator, broker, Redis and RabbitMQ all share these cores; other builds may have been running."
    echo
    echo "**Settings:** concurrency $CONC (connections / channels / redis-benchmark clients), ${BODY}-byte bodies,"
    echo "batches of $BATCH, ${WARMUP} s warm-up + ${DURATION} s measured per mom-bench run, redis-benchmark -n $REDIS_N;"
    echo "$REPEAT run(s) of each benchmark: every figure below is the median of its runs, with their range (min–max)"
    echo "in brackets, and the ratios are of the medians (every run is in \`bench/results.json\`);"
    echo "Redis \`appendonly yes\`, \`appendfsync everysec\`, \`$REDIS_TUNING${BENCH_REDIS_ARGS:+ $BENCH_REDIS_ARGS}\`; RabbitMQ durable classic queue, persistent messages,"
    echo "publisher confirms, manual acks (prefetch 1 in the lifecycle), the $CONC channels over ${BENCH_AMQP_CONNECTIONS:-4} connections."
    echo "Broker: auth on (an ordinary user's bearer token), rate limit on but set out of reach${BENCH_BROKER_ENV:+, environment \`$BENCH_BROKER_ENV\`}."
    if ((${#STREAM_TARGETS[@]})); then
        echo "Consume streams (\`mom-bench stream\`): $CONC producers, $STREAM_CONSUMERS consumers, prefetch $STREAM_PREFETCH, ${STREAM_WARMUP} s warm-up + ${STREAM_DURATION} s measured per run."
    fi
    echo "Load average when the run started: $LOAD_AT_START (anything above ~0.5 means others were using the cores)."
    echo
    echo "### Each benchmark: median (min–max) of its runs"
    echo
    cat "$WORK/tables.md"
    echo "<!-- END GENERATED -->"
} >"$WORK/generated.md"

if [[ -f $OUT ]] && grep -q '<!-- BEGIN GENERATED' "$OUT" && grep -q '<!-- END GENERATED -->' "$OUT"; then
    awk -v gen="$WORK/generated.md" '
        /<!-- BEGIN GENERATED/ { while ((getline line < gen) > 0) print line; skip = 1; next }
        /<!-- END GENERATED -->/ { skip = 0; next }
        !skip { print }' "$OUT" >"$WORK/BENCHMARKS.md"
    mv "$WORK/BENCHMARKS.md" "$OUT"
else
    { echo "# Benchmarks"; echo; cat "$WORK/generated.md"; } >"$OUT"
fi
log "wrote $OUT and $RESULTS_JSON"

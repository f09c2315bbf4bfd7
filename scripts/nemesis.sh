#!/usr/bin/env bash
# A long soak of the nemesis (tests/src/nemesis, RELIABILITY.md): a seeded schedule of faults
# against three brokers, a private Redis and a private ZooKeeper under a mixed workload, then a
# check of the whole history. It runs the ignored `soak` test of tests/tests/nemesis.rs.
#
#   scripts/nemesis.sh [--minutes N] [--seed S] [--zk 1|3]
#
# --minutes: how long faults keep coming (default 10); --seed: the schedule (default: random,
# printed); --zk: one ZooKeeper server or an ensemble of three (default 1). Needs root for the
# network namespaces of the partitions (without them the brokers run on 127.0.0.1 and no
# partition is scheduled), redis-server and ZooKeeper (/usr/share/zookeeper, as .ci/run installs).
# The history is written to $TMPDIR/mom-nemesis-seed<S>-zk<N>.history.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

minutes=10
seed=""
zk=1
usage() {
  echo "usage: $0 [--minutes N] [--seed S] [--zk 1|3]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) [ $# -ge 2 ] || usage; minutes="$2"; shift 2 ;;
    --seed) [ $# -ge 2 ] || usage; seed="$2"; shift 2 ;;
    --zk) [ $# -ge 2 ] || usage; zk="$2"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "nemesis: unknown argument $1" >&2; usage ;;
  esac
done
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "nemesis: --minutes takes a number" >&2; exit 2; }
[[ -z "$seed" || "$seed" =~ ^[0-9]+$ ]] || { echo "nemesis: --seed takes a non-negative integer" >&2; exit 2; }
[[ "$zk" = 1 || "$zk" = 3 ]] || { echo "nemesis: --zk is 1 or 3" >&2; exit 2; }
[ -n "$seed" ] || seed="$(shuf -i 1-999999 -n 1)"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mom-target}"
cd "$ROOT"
echo "nemesis: building the broker and the tests" >&2
cargo build -q -p mom-broker
cargo test -q -p mom-tests --test nemesis --no-run

echo "nemesis: seed $seed, $minutes minute(s), $zk ZooKeeper server(s)" >&2
MOM_NEMESIS_SEED="$seed" MOM_NEMESIS_MINUTES="$minutes" MOM_NEMESIS_ZK="$zk" \
  exec cargo test -q -p mom-tests --test nemesis -- --ignored --exact soak --nocapture

#!/usr/bin/env bash
# The whole benchmark suite at full size, one workload after another, then BENCHMARKS.md's
# section for this machine and commit on stdout (and in target/bench/section.md).
#
#   bash benches/run.sh            # W1 (1M on SQLite and PostgreSQL), W2, W3, W4, start-up
#   W1_PG_MEMBERS=10000000 bash benches/run.sh   # W1 on PostgreSQL at 10M as well
#   ONLY=w2_http bash benches/run.sh             # one workload
#
# Every load goes to 127.0.0.1 (PostgreSQL on 127.0.0.1:5432; the HTTP and SMTP sinks are local
# processes); every workload is bounded by its own --seconds. Run it on a quiet machine: the
# numbers are wall time and CPU time of this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

run() {
  local bench="$1"; shift
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$bench" ]; then return; fi
  echo "== $bench $*" >&2
  cargo bench --locked --bench "$bench" -- "$@"
}

cargo bench --locked --bench summary -- --clear
run startup --members "${STARTUP_MEMBERS:-1000000}"
run w1_evaluate --members "${W1_MEMBERS:-1000000}" --backend sqlite --cold
run w1_evaluate --members "${W1_MEMBERS:-1000000}" --backend postgres --cold
if [ -n "${W1_PG_MEMBERS:-}" ]; then
  run w1_evaluate --members "$W1_PG_MEMBERS" --backend postgres --cold
fi
run w2_http --messages "${W2_MESSAGES:-100000}" --backend sqlite
run w2_http --messages "${W2_MESSAGES:-100000}" --backend postgres
# The same burst with bigger batches and more sends in flight (`[dispatch]` batch_size and
# concurrency): fewer transactions per message.
run w2_http --messages "${W2_MESSAGES:-100000}" --backend both --batch-size 500 --concurrency 128
run w3_smtp --messages "${W3_MESSAGES:-100000}" --connections 1,8,16,32
run w4_holiday --members "${W4_MEMBERS:-1000000}"
mkdir -p target/bench
cargo bench --locked --bench summary | tee target/bench/section.md

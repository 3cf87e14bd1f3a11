#!/usr/bin/env bash
# Reproduces the BENCHMARKS.md figures: builds release herald and hookbench, then for
# each run starts `herald serve` on a fresh store, drives it with hookbench (extra
# arguments are passed to hookbench), and stops it.
#   scripts/bench.sh [runs] -- [hookbench args…]
# e.g. scripts/bench.sh 3 -- --messages 20000 --endpoints 5
# On PostgreSQL: HERALD_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
# (a fresh database is created beside it for each run) and HERALD_BENCH_NODES=2 for two
# nodes, which hookbench's messages are spread over. HERALD_BENCH_CONSOLE=1 keeps the
# operator console open and updating in headless Chromium during each run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
cargo build --release -q -p herald
cargo build --release -q --manifest-path ../shared/tools/hookbench/Cargo.toml --target-dir target/hookbench
token="bench-admin-token-$(date +%s)"
. scripts/serve-one.sh
# Nodes of one database share one main key (it seals endpoint secrets).
export HERALD_MAIN_KEY=${HERALD_MAIN_KEY:-$(target/release/herald keygen)}
admin_url=${HERALD_BENCH_DATABASE_URL:-}
nodes=${HERALD_BENCH_NODES:-1}
base_port=18071
for i in $(seq 1 "$runs"); do
    dir=$(mktemp -d /tmp/herald-bench.XXXXXX)
    db_url=""
    label="herald-sqlite-run$i"
    if [ -n "$admin_url" ]; then
        db="herald_bench_$$_$i"
        psql "$admin_url" -qc "CREATE DATABASE $db"
        db_url="${admin_url%/*}/$db"
        label="herald-postgres-${nodes}node-run$i"
    elif [ "$nodes" != 1 ]; then
        echo "HERALD_BENCH_NODES needs HERALD_BENCH_DATABASE_URL" >&2
        exit 1
    fi
    pids=()
    apis=()
    for n in $(seq 1 "$nodes"); do
        port=$((base_port + n - 1))
        start_node target/release/herald "$dir/node$n" "$port" "$db_url"
        pids+=("$node_pid")
        apis+=("http://127.0.0.1:$port")
    done
    api_list=$(IFS=,; echo "${apis[*]}")
    watcher=""
    if [ "${HERALD_BENCH_CONSOLE:-0}" = 1 ]; then
        mkfifo "$dir/watch"
        NODE_PATH=target/js-sdk/node_modules node scripts/console-watch.cjs "${apis[0]}" "$token" >"$dir/watch" &
        watcher=$!
        # Chromium's start-up is not part of the measurement: wait until it is signed in.
        read -r _ <"$dir/watch"
        label="$label-console-open"
    fi
    target/hookbench/release/hookbench --api "$api_list" --token "$token" --label "$label" "$@"
    [ -n "$watcher" ] && kill "$watcher" 2>/dev/null && wait "$watcher" 2>/dev/null || true
    for pid in "${pids[@]}"; do
        rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
        echo "{\"run\": $i, \"pid\": $pid, \"herald_peak_rss_mb\": $((rss_kb / 1024))}"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$admin_url" ]; then
        psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    fi
    rm -rf "$dir"
done

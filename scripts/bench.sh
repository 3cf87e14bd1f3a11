#!/usr/bin/env bash
# Reproduces the BENCHMARKS.md figures: builds release herald and hookbench, then for
# each run starts `herald serve` on a fresh data directory, drives it with hookbench
# (extra arguments are passed to hookbench), and stops it.
#   scripts/bench.sh [runs] -- [hookbench args…]
# e.g. scripts/bench.sh 3 -- --messages 20000 --endpoints 5
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
cargo build --release -q -p herald
cargo build --release -q --manifest-path ../shared/tools/hookbench/Cargo.toml --target-dir target/hookbench
token="bench-admin-token-$(date +%s)"
port=18071
for i in $(seq 1 "$runs"); do
    dir=$(mktemp -d /tmp/herald-bench.XXXXXX)
    HERALD_ADMIN_TOKEN=$token HERALD_LOG_LEVEL=warn target/release/herald serve --data-dir "$dir" --listen 127.0.0.1:$port >"$dir/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/api/v1/health/ping" >/dev/null && break
        sleep 0.1
    done
    target/hookbench/release/hookbench --api "http://127.0.0.1:$port" --token "$token" --label "herald-sqlite-run$i" "$@"
    rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    echo "{\"run\": $i, \"herald_peak_rss_mb\": $((rss_kb / 1024))}"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
done

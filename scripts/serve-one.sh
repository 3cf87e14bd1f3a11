# Sourced by the single-run benchmark scripts. `start_herald NAME PORT` builds hookbench,
# starts `$bin serve` (default target/release/herald) on a fresh data directory $dir
# (/tmp/herald-NAME.*) on 127.0.0.1:PORT with a new admin token $token, stops it and
# removes $dir on exit, and returns once it answers. Sets $server to its pid and exports
# the HERALD_MAIN_KEY it made.
start_herald() {
    local bin=${bin:-target/release/herald}
    cargo build --release -q --manifest-path ../shared/tools/hookbench/Cargo.toml --target-dir target/hookbench
    dir=$(mktemp -d "/tmp/herald-$1.XXXXXX")
    port=$2
    token="$1-token-$(date +%s)-$RANDOM"
    HERALD_MAIN_KEY=$("$bin" keygen)
    export HERALD_MAIN_KEY
    server=""
    trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
    start_node "$bin" "$dir/data" "$port"
    server=$node_pid
}

# `start_node BIN DATA_DIR PORT [DATABASE_URL]` starts `BIN serve --dev` on
# 127.0.0.1:PORT with the admin token $token and the caller's HERALD_MAIN_KEY, on
# DATABASE_URL or else SQLite in DATA_DIR, logging to DATA_DIR.log. Sets $node_pid and
# returns once it answers; if it never does, stops it, prints its log and returns 1.
start_node() {
    HERALD_ADMIN_TOKEN=$token HERALD_LOG_LEVEL=warn HERALD_DATABASE_URL=${4:-} \
        "$1" serve --dev --data-dir "$2" --listen "127.0.0.1:$3" >"$2.log" 2>&1 &
    node_pid=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$3/api/v1/health/ping" >/dev/null && return 0
        sleep 0.1
    done
    kill "$node_pid" 2>/dev/null || true
    echo "herald did not start on port $3; its log:" >&2
    cat "$2.log" >&2
    return 1
}

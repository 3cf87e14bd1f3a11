# Sourced by the single-run benchmark scripts. `start_herald NAME PORT` builds hookbench,
# starts `$bin serve` (default target/release/herald) on a fresh data directory $dir
# (/tmp/herald-NAME.*) on 127.0.0.1:PORT with a new admin token $token, stops it and
# removes $dir on exit, and returns once it answers. Sets $server to its pid.
start_herald() {
    local bin=${bin:-target/release/herald}
    cargo build --release -q --manifest-path ../shared/tools/hookbench/Cargo.toml --target-dir target/hookbench
    dir=$(mktemp -d "/tmp/herald-$1.XXXXXX")
    port=$2
    token="$1-token-$(date +%s)-$RANDOM"
    HERALD_MAIN_KEY=$("$bin" keygen) HERALD_ADMIN_TOKEN=$token HERALD_LOG_LEVEL=warn \
        "$bin" serve --dev --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/serve.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/api/v1/health/ping" >/dev/null && return 0
        sleep 0.1
    done
    echo "herald did not start; its log:" >&2
    cat "$dir/serve.log" >&2
    return 1
}

#!/usr/bin/env bash
# Flat as the store grows (issue 21, target 3; BENCHMARKS.md): the same hookbench run on
# an empty store and on one that already holds millions of delivered messages, and the
# cost of a retention sweep deleting millions of rows while hookbench runs.
#
#   scripts/bench-grown.sh fill DIR [messages] [days]
#       makes DIR/data, a store of `messages` (default 10,000,000) delivered messages of
#       one application spread over the last `days` (default 30): a real `herald serve`
#       delivers 1,000 hookbench messages, then `fill_store` copies them (see
#       crates/herald-store/examples/fill_store.rs). Keeps the server's main key and
#       token in DIR, so the store opens again as it was written.
#   scripts/bench-grown.sh compare DIR [rounds] -- [hookbench args…]
#       alternates a fresh empty store and DIR's, `rounds` times each (default 3), and
#       prints the medians and the grown / empty ratios.
#   scripts/bench-grown.sh sweep DIR [rounds] [fraction] -- [hookbench args…]
#       alternates runs on DIR with no retention due and runs whose retention
#       (message_retention_days) makes the oldest `fraction` (default 0.1) of DIR's
#       messages due, so that the sweep deletes them while hookbench runs; prints the
#       medians, the ratio, and how long each sweep ran against how long hookbench ran.
# Set bin=path/to/herald to measure another build (default: this checkout's, built).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${bin:-}" ]; then
    cargo build --release -q -p herald --bins
    bin=target/release/herald
fi
bin=$(realpath "$bin")
mode=${1:?usage: bench-grown.sh fill|compare|sweep DIR ...}
dir=$(realpath -m "${2:?usage: bench-grown.sh fill|compare|sweep DIR ...}")
shift 2
port=18078
cargo build --release -q --manifest-path ../shared/tools/hookbench/Cargo.toml --target-dir target/hookbench
hookbench=target/hookbench/release/hookbench

# serve DATA_DIR LOG [VAR=VALUE…]: starts $bin on DATA_DIR with DIR's key and token.
serve() {
    local data=$1 log=$2
    shift 2
    env HERALD_MAIN_KEY="$(cat "$dir/main-key")" HERALD_ADMIN_TOKEN="$(cat "$dir/token")" \
        HERALD_LOG_LEVEL=info "$@" \
        "$bin" serve --dev --data-dir "$data" --listen "127.0.0.1:$port" >"$log" 2>&1 &
    server=$!
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/api/v1/health/ping" >/dev/null && return 0
        kill -0 $server 2>/dev/null || break
        sleep 0.1
    done
    echo "herald did not start; its log:" >&2
    cat "$log" >&2
    exit 1
}
stop() {
    kill $server && wait $server 2>/dev/null || true
}
trap 'kill ${server:-} 2>/dev/null || true' EXIT

if [ "$mode" = fill ]; then
    messages=${1:-10000000}
    days=${2:-30}
    cargo build --release -q -p herald-store --example fill_store
    [ ! -e "$dir/data" ] || { echo "$dir/data exists; give a new directory" >&2; exit 1; }
    mkdir -p "$dir"
    "$bin" keygen >"$dir/main-key"
    echo "grown-token-$(date +%s)-$RANDOM" >"$dir/token"
    serve "$dir/data" "$dir/fill.log"
    "$hookbench" --api "http://127.0.0.1:$port" --token "$(cat "$dir/token")" \
        --messages 1000 --endpoints 1 | tail -1 >"$dir/templates.json"
    stop
    target/release/examples/fill_store "$dir/data/herald.db" "$messages" "$days"
    du -sh "$dir/data"
    exit 0
fi

rounds=${1:-3}
shift || true
fraction=0.1
if [ "$mode" = sweep ] && [ "${1:-}" != "--" ] && [ -n "${1:-}" ]; then
    fraction=$1
    shift
fi
[ "${1:-}" = "--" ] && shift
[ -f "$dir/data/herald.db" ] || { echo "no store in $dir: run bench-grown.sh fill $dir first" >&2; exit 1; }
out=$(mktemp -d /tmp/herald-grown.XXXXXX)

# run LABEL DATA_DIR [VAR=VALUE…]: one hookbench run; appends its result to $out/runs.
run() {
    local label=$1 data=$2
    shift 2
    serve "$data" "$out/serve.log" "$@"
    "$hookbench" --api "http://127.0.0.1:$port" --token "$(cat "$dir/token")" \
        --label "$label" "${hookbench_args[@]}" | tail -1 >"$out/result"
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$server/stat")
    stop
    python3 - "$out/result" "$ticks" "$(getconf CLK_TCK)" >>"$out/runs" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
if "delivery_rps" not in r or r.get("lost"):
    sys.exit(f"hookbench failed or lost messages: {r}")
r["server_cpu_us_per_msg"] = round(int(sys.argv[2]) / int(sys.argv[3]) / r["messages"] * 1e6, 1)
print(json.dumps(r))
PY
    tail -1 "$out/runs"
}

hookbench_args=("$@")
for i in $(seq 1 "$rounds"); do
    if [ "$mode" = compare ]; then
        rm -rf "$out/empty"
        run empty "$out/empty"
        run grown "$dir/data"
    else
        run steady "$dir/data"
        # The retention that makes the oldest `fraction` of what is left due now.
        cut=$(sqlite3 "$dir/data/herald.db" "SELECT created_at FROM message ORDER BY seq LIMIT 1 OFFSET \
            (SELECT CAST(count(*) * $fraction AS INTEGER) FROM message)")
        keep_days=$(python3 -c "import time; print((time.time() * 1000 - $cut) / 86_400_000)")
        due() { sqlite3 "$dir/data/herald.db" "SELECT count(*) FROM message WHERE created_at < $cut"; }
        before=$(due)
        run sweeping "$dir/data" HERALD_MESSAGE_RETENTION_DAYS="$keep_days" HERALD_RETENTION_SWEEP_SECS=1
        echo "the sweep deleted $((before - $(due))) of the $before messages due while hookbench ran"
    fi
done

python3 - "$out/runs" "$mode" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["label"], []).append(r)
def med(label, key, sub=None):
    return statistics.median(r[key][sub] if sub else r[key] for r in runs[label])
for label, rs in runs.items():
    each = " · ".join(f"{r['delivery_rps']:,.0f}" for r in rs)
    print(f"{label}: ingest {med(label, 'ingest_rps'):,.0f}/s, deliveries {med(label, 'delivery_rps'):,.0f}/s, "
          f"ingest p99 {med(label, 'ingest_ms', 'p99'):.2f} ms, server CPU {med(label, 'server_cpu_us_per_msg'):.1f} µs/msg, "
          f"a run took {med(label, 'e2e_secs'):.1f} s "
          f"(deliveries/s of each run: {each})")
a, b = ("empty", "grown") if sys.argv[2] == "compare" else ("steady", "sweeping")
print(f"{b} / {a}: ingest {med(b, 'ingest_rps') / med(a, 'ingest_rps'):.2f}x, "
      f"deliveries {med(b, 'delivery_rps') / med(a, 'delivery_rps'):.2f}x, "
      f"ingest p99 {med(b, 'ingest_ms', 'p99') / med(a, 'ingest_ms', 'p99'):.2f}x")
PY
rm -rf "$out"

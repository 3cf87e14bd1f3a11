#!/usr/bin/env bash
# Target 5 of issue 21: what a message costs on PostgreSQL next to the embedded store,
# and what several nodes on one database deliver next to one. Each round runs hookbench
# three times, in turn: one `herald serve` on SQLite, one on a fresh PostgreSQL database,
# and $nodes nodes on another fresh database (hookbench spreads its messages over them).
# CPU per message counts Herald's processes and, on PostgreSQL, every PostgreSQL process
# (the backends serving Herald's connections, which exit when Herald stops, are read from
# the postmaster's counters of its exited children, /proc/PID/stat fields 16-17).
#   scripts/bench-postgres.sh [rounds] [nodes] -- [hookbench args…]
# e.g. scripts/bench-postgres.sh 3 3 -- --messages 50000 --concurrency 64
# Needs the local PostgreSQL (HERALD_BENCH_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres) on this machine, so its CPU can be read.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
nodes=3
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then nodes=$1; shift; fi
[ "${1:-}" = "--" ] && shift
admin_url=${HERALD_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
bin=${bin:-target/release/herald}
[ "$bin" != target/release/herald ] || cargo build --release -q -p herald --bins
cargo build --release -q --manifest-path ../shared/tools/hookbench/Cargo.toml --target-dir target/hookbench
export HERALD_MAIN_KEY=${HERALD_MAIN_KEY:-$("$bin" keygen)}
token="bench-pg-token-$(date +%s)"
. scripts/serve-one.sh
out=$(mktemp -d /tmp/herald-pg.XXXXXX)
postmaster=$(pgrep -o -x postgres -u postgres || true)
[ -n "$postmaster" ] || { echo "no local PostgreSQL postmaster to read the CPU of" >&2; exit 1; }

# CPU ticks spent so far by PostgreSQL: the postmaster, its exited children and its
# live ones.
pg_ticks() {
    local total live
    total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
    for child in $(pgrep -P "$postmaster"); do
        live=$(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)
        total=$((total + live))
    done
    echo "$total"
}
pg_children() { pgrep -c -P "$postmaster" || true; }

# run LABEL NODES DB_URL HOOKBENCH_ARGS…: starts NODES servers (on DB_URL, or SQLite
# when it is empty), drives them with hookbench, stops them, and prints hookbench's JSON
# result with the CPU per message added.
run() {
    local label=$1 count=$2 db_url=$3
    shift 3
    local dir pids=() apis=() children_before pg_before herald_ticks=0
    dir=$(mktemp -d /tmp/herald-pg-run.XXXXXX)
    children_before=$(pg_children)
    pg_before=$(pg_ticks)
    for n in $(seq 1 "$count"); do
        local port=$((18090 + n))
        start_node "$bin" "$dir/node$n" "$port" "$db_url"
        pids+=("$node_pid")
        apis+=("http://127.0.0.1:$port")
    done
    target/hookbench/release/hookbench --api "$(IFS=,; echo "${apis[*]}")" --token "$token" \
        --label "$label" "$@" | tail -1 >"$dir/result"
    for pid in "${pids[@]}"; do
        herald_ticks=$((herald_ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
    # The backends that served the nodes exit once their connections close; wait until
    # the postmaster has reaped them, so that their CPU is in its counters.
    for _ in $(seq 1 100); do
        [ "$(pg_children)" -le "$children_before" ] && break
        sleep 0.1
    done
    python3 - "$dir/result" "$herald_ticks" "$(($(pg_ticks) - pg_before))" "$(getconf CLK_TCK)" "$label" "$count" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
if "delivery_rps" not in r or r.get("lost", 1) != 0:
    sys.exit(f"hookbench failed or lost messages: {r}")
herald, pg, hz, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), r["messages"]
r.update(server=sys.argv[5], nodes=int(sys.argv[6]),
         herald_cpu_us_per_msg=round(herald / hz / n * 1e6, 1),
         postgres_cpu_us_per_msg=round(pg / hz / n * 1e6, 1) if sys.argv[5] != "sqlite" else 0.0)
r["total_cpu_us_per_msg"] = round(r["herald_cpu_us_per_msg"] + r["postgres_cpu_us_per_msg"], 1)
print(json.dumps(r))
PY
    rm -rf "$dir"
}

fresh_db() {
    local db="herald_pg_bench_$$_$1"
    PGOPTIONS="-c client_min_messages=warning" psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -qc "CREATE DATABASE $db"
    echo "${admin_url%/*}/$db"
}

for i in $(seq 1 "$rounds"); do
    run sqlite 1 "" "$@" | tee -a "$out/runs"
    run postgres-1 1 "$(fresh_db 1)" "$@" | tee -a "$out/runs"
    run "postgres-$nodes" "$nodes" "$(fresh_db "$nodes")" "$@" | tee -a "$out/runs"
done
for db in 1 "$nodes"; do
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS herald_pg_bench_$$_$db WITH (FORCE)"
done

python3 - "$out/runs" "$nodes" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
nodes = sys.argv[2]
med = lambda name, key: statistics.median(r[key] for r in runs if r["server"] == name)
print(f"{'':<14}{'deliveries/s':>14}{'herald µs/msg':>15}{'postgres µs/msg':>17}{'total µs/msg':>14}")
for name in ("sqlite", "postgres-1", f"postgres-{nodes}"):
    print(f"{name:<14}{med(name, 'delivery_rps'):>14,.0f}{med(name, 'herald_cpu_us_per_msg'):>15.1f}"
          f"{med(name, 'postgres_cpu_us_per_msg'):>17.1f}{med(name, 'total_cpu_us_per_msg'):>14.1f}")
print(f"PostgreSQL, 1 node / SQLite: {med('postgres-1', 'total_cpu_us_per_msg') / med('sqlite', 'total_cpu_us_per_msg'):.2f}x "
      f"the CPU per message (target <= 2x)")
print(f"{nodes} nodes / 1 node on PostgreSQL: {med(f'postgres-{nodes}', 'delivery_rps') / med('postgres-1', 'delivery_rps'):.2f}x "
      f"the deliveries/s (target >= 1x), {med(f'postgres-{nodes}', 'total_cpu_us_per_msg') / med('postgres-1', 'total_cpu_us_per_msg'):.2f}x the CPU per message")
PY

#!/usr/bin/env bash
# One hookbench run against a fresh `herald serve`, reporting where the time went rather
# than only how fast it was: CPU and run-queue wait per server thread and for hookbench
# (from /proc/<pid>/task/*/schedstat), how busy the machine was, and the store's group
# commit counters and mean operation latencies from /metrics.
#   scripts/bench-threads.sh [hookbench args…]
# e.g. scripts/bench-threads.sh --messages 100000 --concurrency 64
# HERALD_BIN=path/to/herald compares another build. BENCHMARKS.md ("Where the latency
# goes") reads its output.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${HERALD_BIN:-target/release/herald}
[ -n "${HERALD_BIN:-}" ] || cargo build --release -q -p herald
. scripts/serve-one.sh
start_herald threads 18072

# "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal …
before=$(head -1 /proc/stat)
target/hookbench/release/hookbench --api "http://127.0.0.1:$port" --token "$token" "$@" >"$dir/result" &
bench=$!
# A thread's schedstat is "time on CPU, time runnable but waiting, timeslices" (ns);
# hookbench's is read until it exits, since its threads are gone after.
threads() { for t in /proc/"$1"/task/*; do echo "$(cat "$t/comm") $(cat "$t/schedstat")"; done 2>/dev/null; }
hookbench_stat=""
while kill -0 $bench 2>/dev/null; do
    now=$(threads $bench)
    [ -n "$now" ] && hookbench_stat=$now
    sleep 0.2
done
wait $bench
after=$(head -1 /proc/stat)
server_stat=$(threads $server)
metrics=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics")

python3 - "$before" "$after" "$dir/result" "$server_stat" "$hookbench_stat" "$metrics" <<'PY'
import json, sys, collections
before, after, result, server, hookbench, metrics = sys.argv[1:7]
r = json.loads(open(result).read().strip().splitlines()[-1])
if "delivery_rps" not in r:
    sys.exit(f"hookbench failed: {r}")
a = list(map(int, before.split()[1:])); b = list(map(int, after.split()[1:]))
d = [y - x for x, y in zip(a, b)]; total = sum(d)
n = r["messages"]
print(f"{r['delivery_rps']:,.0f} deliveries/s; e2e p50 {r['e2e_ms']['p50']} ms, p99 {r['e2e_ms']['p99']} ms; "
      f"ingest p50 {r['ingest_ms']['p50']} ms; lost {r['lost']}, duplicates {r['duplicates']}, bad signatures {r['bad_signatures']}")
print(f"machine: {100 * (d[3] + d[4]) / total:.0f} % idle, {100 * d[0] / total:.0f} % user, "
      f"{100 * d[2] / total:.0f} % system, {100 * d[6] / total:.0f} % softirq, {100 * d[7] / total:.0f} % steal")
print(f"{'thread':<26} {'CPU µs/msg':>10} {'run-queue wait µs/msg':>22}")
def table(text, prefix=""):
    cpu, wait = collections.Counter(), collections.Counter()
    for line in text.splitlines():
        name, on_cpu, waiting, _ = line.rsplit(" ", 3)
        cpu[prefix + name] += int(on_cpu); wait[prefix + name] += int(waiting)
    for name in sorted(cpu, key=lambda k: -cpu[k]):
        print(f"{name:<26} {cpu[name] / n / 1000:>10.1f} {wait[name] / n / 1000:>22.1f}")
table(server)
table(hookbench, "hookbench:")
values = {}
for line in metrics.splitlines():
    if line and not line.startswith("#"):
        key, value = line.rsplit(" ", 1)
        values[key] = float(value)
jobs, commits = values.get("herald_store_write_jobs_total", 0), values.get("herald_store_commits_total", 0)
syncs, sync_s = values.get("herald_store_wal_syncs_total", 0), values.get("herald_store_wal_sync_seconds_total", 0)
if commits:
    print(f"group commit: {jobs:,.0f} writes in {commits:,.0f} commits ({jobs / commits:.1f} each), "
          f"{syncs:,.0f} WAL syncs of {1000 * sync_s / max(syncs, 1):.2f} ms on average")
for op in ["message_create", "record_attempts"]:
    s = values.get(f'herald_store_operation_seconds_sum{{op="{op}"}}')
    c = values.get(f'herald_store_operation_seconds_count{{op="{op}"}}')
    if c:
        print(f"store {op}: {c:,.0f} calls, {1000 * s / c:.2f} ms on average from submit to durable answer")
PY

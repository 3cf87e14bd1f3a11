#!/usr/bin/env bash
# Two builds of Herald measured in the same minutes, their runs alternating (the machine's
# speed drifts; alternation shares the drift between them). Each run starts a fresh
# `herald serve` of one build, drives it with hookbench, and records deliveries/s and the
# server's CPU per message. How every change of the cost-per-message work was judged
# against the commit before it (BENCHMARKS.md).
#   scripts/bench-compare.sh OLD_BIN NEW_BIN [rounds] -- [hookbench args…]
# e.g. git worktree add /tmp/before HEAD~1 && (cd /tmp/before && cargo build --release -p herald)
#      scripts/bench-compare.sh /tmp/before/target/release/herald target/release/herald 3 -- --messages 100000 --concurrency 64
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1")
new=$(realpath "$2")
shift 2
rounds=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
out=$(mktemp -d /tmp/herald-compare.XXXXXX)

for i in $(seq 1 "$rounds"); do
    for which in old new; do
        bin=${!which}
        . scripts/serve-one.sh
        start_herald "compare-$which" 18074
        target/hookbench/release/hookbench --api "http://127.0.0.1:$port" --token "$token" \
            --label "$which" "$@" | tail -1 >"$out/result"
        ticks=$(awk '{print $14 + $15}' "/proc/$server/stat")
        python3 - "$out/result" "$ticks" "$(getconf CLK_TCK)" "$which" >>"$out/runs" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
if "delivery_rps" not in r or r.get("lost"):
    sys.exit(f"hookbench failed or lost messages: {r}")
r["build"] = sys.argv[4]
r["server_cpu_us_per_msg"] = round(int(sys.argv[2]) / int(sys.argv[3]) / r["messages"] * 1e6, 1)
print(json.dumps(r))
PY
        tail -1 "$out/runs"
        kill $server && wait $server 2>/dev/null || true
        rm -rf "$dir"
        trap - EXIT
    done
done

python3 - "$out/runs" <<'PY'
import json, statistics, sys
runs = {"old": [], "new": []}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[r["build"]].append(r)
def med(name, key):
    return statistics.median(r[key] for r in runs[name])
for name in runs:
    each = " · ".join(f"{r['delivery_rps']:,.0f}" for r in runs[name])
    print(f"{name}: deliveries/s {each} (median {med(name, 'delivery_rps'):,.0f}), "
          f"server CPU {med(name, 'server_cpu_us_per_msg'):.1f} µs/msg, "
          f"ingest p99 {statistics.median(r['ingest_ms']['p99'] for r in runs[name]):.2f} ms")
print(f"new / old: {med('new', 'delivery_rps') / med('old', 'delivery_rps'):.2f}x the deliveries/s, "
      f"{med('new', 'server_cpu_us_per_msg') / med('old', 'server_cpu_us_per_msg'):.2f}x the server CPU per message")
PY
rm -rf "$out"

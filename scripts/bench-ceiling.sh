#!/usr/bin/env bash
# Herald against the ceiling of this machine, measured in the same minutes. Each round
# runs hookbench once against `examples/ceiling` (a server that speaks just enough of the
# v1 API, stores nothing and delivers over hand-written HTTP: the least work any webhook
# server must do) and once against a fresh `herald serve`, and reports deliveries/s with
# the CPU each side spent per message. The machine's speed drifts by up to 2x between
# sessions; the ratio to the ceiling does not drift with it.
#   scripts/bench-ceiling.sh [rounds] -- [hookbench args…]
# e.g. scripts/bench-ceiling.sh 3 -- --messages 100000 --concurrency 64
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
cargo build --release -q -p herald --bins --example ceiling
bin=target/release/herald
. scripts/serve-one.sh
out=$(mktemp -d /tmp/herald-ceiling.XXXXXX)

# Runs hookbench against $1 (base URL) with token $2 and prints its JSON result with
# what server $3 (name $4) and hookbench spent in CPU per message, and the server's peak
# RSS, added.
measure() {
    /usr/bin/time -f "%U %S" -o "$out/time" target/hookbench/release/hookbench \
        --api "$1" --token "$2" --label "$4" "${@:5}" >"$out/result"
    local ticks rss_kb
    ticks=$(awk '{print $14 + $15}' "/proc/$3/stat")
    rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$3/status")
    python3 - "$out/result" "$out/time" "$ticks" "$(getconf CLK_TCK)" "$4" "$rss_kb" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
if "delivery_rps" not in r:
    sys.exit(f"hookbench failed: {r}")
user, system = map(float, open(sys.argv[2]).read().split()[-2:])
n = r["messages"]
r["server"] = sys.argv[5]
r["server_cpu_us_per_msg"] = round(int(sys.argv[3]) / int(sys.argv[4]) / n * 1e6, 1)
r["hookbench_cpu_us_per_msg"] = round((user + system) / n * 1e6, 1)
r["server_peak_rss_mb"] = int(sys.argv[6]) // 1024
print(json.dumps(r))
PY
}

for i in $(seq 1 "$rounds"); do
    # The ceiling gets the same runtime threads as Herald's default (cores - 1).
    TOKIO_WORKER_THREADS=$(($(nproc) > 1 ? $(nproc) - 1 : 1)) target/release/examples/ceiling 18079 2>"$out/ceiling.log" &
    ceiling=$!
    for _ in $(seq 1 50); do
        curl -s -o /dev/null "http://127.0.0.1:18079/" && break
        sleep 0.1
    done
    measure http://127.0.0.1:18079 none $ceiling ceiling "$@" | tee -a "$out/runs"
    kill $ceiling && wait $ceiling 2>/dev/null || true

    start_herald ceiling-round 18078
    measure "http://127.0.0.1:$port" "$token" $server herald "$@" | tee -a "$out/runs"
    kill $server && wait $server 2>/dev/null || true
    rm -rf "$dir"
done

python3 - "$out/runs" <<'PY'
import json, statistics, sys
runs = {"ceiling": [], "herald": []}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[r["server"]].append(r)
def median(name, key):
    return statistics.median(r[key] for r in runs[name])
print(f"{'server':<8} {'deliveries/s (runs)':<30} {'median':>8} {'lost':>5} {'bad sig':>7} {'server CPU µs/msg':>18} {'hookbench CPU µs/msg':>21}")
for name in runs:
    each = " · ".join(f"{r['delivery_rps']:,.0f}" for r in runs[name])
    print(f"{name:<8} {each:<30} {median(name, 'delivery_rps'):>8,.0f} {sum(r['lost'] for r in runs[name]):>5} "
          f"{sum(r['bad_signatures'] for r in runs[name]):>7} {median(name, 'server_cpu_us_per_msg'):>18.1f} "
          f"{median(name, 'hookbench_cpu_us_per_msg'):>21.1f}")
print(f"herald / ceiling: {100 * median('herald', 'delivery_rps') / median('ceiling', 'delivery_rps'):.0f} % of the deliveries/s, "
      f"{median('herald', 'server_cpu_us_per_msg') / median('ceiling', 'server_cpu_us_per_msg'):.1f}x the server CPU per message")
PY
rm -rf "$out"

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

# Runs hookbench against $1 (base URL) with token $2, then prints one line:
# "deliveries/s lost bad server-CPU-µs/msg hookbench-CPU-µs/msg" for server pid $3.
measure() {
    /usr/bin/time -f "%U %S" -o "$out/time" target/hookbench/release/hookbench \
        --api "$1" --token "$2" "${@:4}" >"$out/result"
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$3/stat")
    python3 - "$out/result" "$out/time" "$ticks" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
if "delivery_rps" not in r:
    sys.exit(f"hookbench failed: {r}")
user, system = map(float, open(sys.argv[2]).read().split()[-2:])
n = r["messages"]
server_us = int(sys.argv[3]) / int(sys.argv[4]) / n * 1e6
print(f"{r['delivery_rps']:.0f} {r['lost']} {r['bad_signatures']} {server_us:.1f} {(user + system) / n * 1e6:.1f}")
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
    echo "ceiling $(measure http://127.0.0.1:18079 none $ceiling "$@")" >>"$out/runs"
    kill $ceiling && wait $ceiling 2>/dev/null || true

    start_herald ceiling-round 18078
    echo "herald $(measure "http://127.0.0.1:$port" "$token" $server "$@")" >>"$out/runs"
    kill $server && wait $server 2>/dev/null || true
    rm -rf "$dir"
    tail -2 "$out/runs" >&2
done

python3 - "$out/runs" <<'PY'
import statistics, sys
runs = {"ceiling": [], "herald": []}
for line in open(sys.argv[1]):
    name, *values = line.split()
    runs[name].append(list(map(float, values)))
def median(name, i):
    return statistics.median(r[i] for r in runs[name])
print(f"{'server':<8} {'deliveries/s (runs)':<30} {'median':>8} {'lost':>5} {'bad sig':>7} {'server CPU µs/msg':>18} {'hookbench CPU µs/msg':>21}")
for name in runs:
    each = " · ".join(f"{r[0]:,.0f}" for r in runs[name])
    print(f"{name:<8} {each:<30} {median(name, 0):>8,.0f} {sum(r[1] for r in runs[name]):>5.0f} "
          f"{sum(r[2] for r in runs[name]):>7.0f} {median(name, 3):>18.1f} {median(name, 4):>21.1f}")
print(f"herald / ceiling: {100 * median('herald', 0) / median('ceiling', 0):.0f} % of the deliveries/s, "
      f"{median('herald', 3) / median('ceiling', 3):.1f}x the server CPU per message")
PY
rm -rf "$out"

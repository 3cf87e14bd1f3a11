#!/usr/bin/env bash
# The transformations benchmark of BENCHMARKS.md ("Transformations"): hookbench's
# deliveries/s in rounds that alternate a plain run with a run whose endpoint has a
# typical transformation (it renames a field, adds one, and adds a header). The
# transformation is set as soon as hookbench's endpoint appears; at the end of the run
# the server's herald_transformations_total says how many deliveries went through it,
# printed beside the run's figures (`transformed`).
#   scripts/bench-transformations.sh [rounds] -- [hookbench args…]
# e.g. scripts/bench-transformations.sh 3 -- --messages 50000 --concurrency 64
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
cargo build --release -q -p herald --bin herald
. scripts/serve-one.sh

# Sets the transformation on hookbench's endpoint the moment it exists. hookbench's sink
# reads `seq` and `sent_ns` from the body, so those keep their names.
attach() {
    exec python3 - "$1" "$2" <<'PY'
import json, sys, time, urllib.request
api, token = sys.argv[1] + "/api/v1", sys.argv[2]
CODE = """
function handler(webhook) {
    const p = webhook.payload;
    webhook.payload = { seq: p.seq, sent_ns: p.sent_ns, data: p.pad, kind: webhook.eventType };
    webhook.headers = { "X-Herald-Transformed": "1" };
    return webhook;
}
"""
def call(method, path, body=None):
    req = urllib.request.Request(api + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": "Bearer " + token, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
while True:
    apps = call("GET", "/app?limit=10")["data"]
    app = next((a["id"] for a in apps if a["name"].startswith("hookbench")), None)
    if app:
        eps = call("GET", f"/app/{app}/endpoint?limit=10")["data"]
        if eps:
            call("PATCH", f"/app/{app}/endpoint/{eps[0]['id']}/transformation", {"code": CODE})
            break
    time.sleep(0.001)
PY
}

transformed() {
    curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" |
        awk '/^herald_transformations_total\{outcome="sent"\}/ {print $2}'
}

out=$(mktemp -d /tmp/herald-transformations.XXXXXX)
for i in $(seq 1 "$rounds"); do
    for variant in plain transformed; do
        start_herald "transform-$variant" 18095
        if [ "$variant" = transformed ]; then
            attach "http://127.0.0.1:$port" "$token" &
            attacher=$!
        fi
        target/hookbench/release/hookbench --api "http://127.0.0.1:$port" --token "$token" \
            --label "$variant" "$@" | tail -1 >"$out/result"
        if [ "$variant" = transformed ]; then
            wait $attacher 2>/dev/null || true
            n=$(transformed)
            python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read()); r["transformed"]=int(float(sys.argv[2] or 0)); print(json.dumps(r))' "$out/result" "${n:-0}"
        else
            cat "$out/result"
        fi
        kill $server && wait $server 2>/dev/null || true
        rm -rf "$dir"
    done
done | tee "$out/runs"
python3 - "$out/runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\nvariant        deliveries/s (median)   e2e p99 ms (median)   runs")
med = {}
for label in ("plain", "transformed"):
    rs = [r for r in runs if r.get("label") == label]
    if not rs: continue
    med[label] = statistics.median(r["delivery_rps"] for r in rs)
    p99 = statistics.median(r["e2e_ms"]["p99"] for r in rs)
    each = ", ".join(format(r["delivery_rps"], ",.0f") for r in rs)
    print(f"{label:<14} {med[label]:>20,.0f}   {p99:>19.2f}   {each}")
if len(med) == 2:
    print(f"\ntransformed / plain: {med['transformed'] / med['plain']:.2f}")
PY

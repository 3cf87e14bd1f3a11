#!/usr/bin/env bash
# The destinations benchmarks of BENCHMARKS.md ("Destinations"), in the same minutes:
#  1. examples/streams: one poller reading a stream of 100,000 messages by batches of
#     100, and a fifoEndpoint (batchSize 100) draining the same stream.
#  2. hookbench's figures in rounds that alternate a plain run with a run that has
#     destinations beside the endpoints: as soon as hookbench's application appears, two
#     fifoEndpoints (to a local sink) and a poller whose consumer group reads all along
#     are added to it, so every message also goes through three streams.
#  3. Given a second herald binary (say a build of the commit before destinations), its
#     plain run joins the rotation.
#   scripts/bench-destinations.sh [rounds] [other-binary|-] -- [hookbench args…]
# e.g. scripts/bench-destinations.sh 3 /tmp/herald-before -- --messages 50000 --concurrency 64
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
other=${1:--}
shift || true
[ "${1:-}" = "--" ] && shift
cargo build --release -q -p herald --bin herald --example streams
. scripts/serve-one.sh

echo "== examples/streams: one poller and one fifoEndpoint over 100,000 messages"
target/release/examples/streams target/release/herald 100000 100 2>/dev/null | tail -1

# Adds the destinations to hookbench's application once it exists, then keeps a
# consumer group reading until it is killed. Prints what the streams got when it stops.
attach() {
    exec python3 - "$1" "$2" <<'PY'
import json, signal, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
api, token = sys.argv[1] + "/api/v1", sys.argv[2]
got = {"fifo": 0, "polled": 0, "errors": 0}
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        got["fifo"] += int(self.headers.get("herald-batch-size", "0"))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
threading.Thread(target=sink.serve_forever, daemon=True).start()
def call(method, path, body=None, tok=token):
    req = urllib.request.Request(api + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": "Bearer " + tok, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
def stop(*_):
    print(json.dumps({"stream_messages_fifo": got["fifo"], "stream_messages_polled": got["polled"],
                      "stream_poll_errors": got["errors"]}), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    apps = call("GET", "/app?limit=10")["data"]
    app = next((a["id"] for a in apps if a["name"].startswith("hookbench")), None)
    if app: break
    time.sleep(0.005)
for _ in range(2):
    call("POST", f"/app/{app}/destination", {"type": "fifoEndpoint", "batchSize": 100,
         "config": {"url": f"http://127.0.0.1:{sink.server_port}/fifo"}})
poller = call("POST", f"/app/{app}/destination", {"type": "pollingEndpoint"})["id"]
key = call("GET", f"/app/{app}/destination/{poller}/secret")["key"]
while True:
    try:
        page = call("GET", f"/app/{app}/poller/{poller}/consumer/bench?limit=100&wait=1", tok=key)
    except Exception as e:  # counted and shown: a read that failed is read again
        got["errors"] += 1
        print(f"poll failed: {e!r}", file=sys.stderr, flush=True)
        time.sleep(0.05)
        continue
    got["polled"] += len(page["data"])
PY
}

out=$(mktemp -d /tmp/herald-destinations.XXXXXX)
for i in $(seq 1 "$rounds"); do
    for variant in plain destinations other; do
        [ "$variant" = other ] && [ "$other" = - ] && continue
        if [ "$variant" = other ]; then bin=$other; else bin=target/release/herald; fi
        start_herald "dest-$variant" 18094
        if [ "$variant" = destinations ]; then
            attach "http://127.0.0.1:$port" "$token" >"$out/attach" &
            attacher=$!
        fi
        target/hookbench/release/hookbench --api "http://127.0.0.1:$port" --token "$token" \
            --label "$variant" "$@" | tail -1 >"$out/result"
        if [ "$variant" = destinations ]; then
            # Let the streams catch up with the run's last messages, then count.
            sleep 2
            kill -TERM $attacher && wait $attacher 2>/dev/null || true
            python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read()); r.update(json.loads(open(sys.argv[2]).read() or "{}")); print(json.dumps(r))' "$out/result" "$out/attach"
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
for label in ("other", "plain", "destinations"):
    rs = [r for r in runs if r.get("label") == label]
    if not rs: continue
    rps = statistics.median(r["delivery_rps"] for r in rs)
    p99 = statistics.median(r["e2e_ms"]["p99"] for r in rs)
    each = ", ".join(format(r["delivery_rps"], ",.0f") for r in rs)
    print(f"{label:<14} {rps:>20,.0f}   {p99:>19.2f}   {each}")
PY

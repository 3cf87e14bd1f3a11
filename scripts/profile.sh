#!/usr/bin/env bash
# Where the server's CPU goes during one hookbench run: samples `herald serve` with perf
# (call graphs from DWARF), then sorts every sample of the runtime thread and of the
# store writer into what it was doing, by the innermost frame that names an activity.
#   scripts/profile.sh [hookbench args…]      (default: --messages 30000 --concurrency 64)
# Needs perf (Debian's linux-perf). The release profile keeps line tables
# (debug = "line-tables-only"), which is what the call graphs need. BENCHMARKS.md
# ("Where the time goes") reads its output.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- --messages 30000 --concurrency 64
cargo build --release -q -p herald
. scripts/serve-one.sh
start_herald profile 18073
perf record -q -F 999 --call-graph dwarf,16384 -o "$dir/perf.data" -p $server 2>/dev/null &
recorder=$!
sleep 0.5
target/hookbench/release/hookbench --api "http://127.0.0.1:$port" --token "$token" "$@" | tail -1
kill -INT $recorder
wait $recorder || true
perf script -i "$dir/perf.data" 2>/dev/null | python3 -c '
import collections, re, sys
# Activities, most specific first; a sample counts for the first one its innermost
# matching frame names.
ACTIVITIES = {
    "tokio-rt-worker": [
        ("ingest: token check", r"herald_api::router::authenticate|herald_core::token|sha2::"),
        ("ingest: idempotency layer", r"herald_api::idempotency"),
        ("ingest: handler (validation, JSON)", r"herald_api::routes::messages|herald_api::extract|serde_json"),
        ("signing", r"herald_core::signing|hmac::"),
        ("memory allocation", r"\bmi_|_mi_|mimalloc|\bje_|jemalloc|tikv_jemalloc"),
        ("store calls (channel to the writer)", r"herald_store::"),
        ("delivery: attempt logic", r"herald_engine::attempt|herald_engine::Engine|herald_engine::gate"),
        ("delivery: HTTP client (reqwest, hyper, sockets)", r"reqwest::|hyper_util::client|hyper::client|role::Client"),
        ("ingest: HTTP server (hyper, axum, sockets)", r"serve_http|hyper::server|role::Server|axum::|tower::"),
        ("scheduler", r"herald_engine::scheduler"),
        ("runtime: parking, polling the I/O driver, timers", r"worker::Context::park|::park::|io::driver::Driver::turn|time::Driver|epoll_wait"),
    ],
    "herald-store-wr": [
        ("checkpoint (WAL into the database file)", r"sqlite3WalCheckpoint|walCheckpoint|sqlite3Checkpoint"),
        ("commit (WAL frames written)", r"sqlite3VdbeHalt|sqlite3BtreeCommitPhase|sqlite3PagerCommitPhase|sqlite3WalFrames"),
        ("savepoint per job", r"in_savepoint"),
        ("message insert (message, payload, deliveries)", r"insert_message"),
        ("attempt records (attempt, delivery update)", r"herald_store::sqlite::queue::record"),
        ("claims", r"claim_due"),
        ("other jobs", r"herald_store::"),
        ("writer loop", r"herald_store::sqlite::writer"),
    ],
}
counts = collections.defaultdict(collections.Counter)
in_kernel = collections.defaultdict(collections.Counter)
thread, stack = None, []
def done():
    rules = ACTIVITIES.get(thread)
    if rules is None or not stack:
        return
    kernel = "[kernel.kallsyms]" in stack[0]
    for frame in stack:
        for name, pattern in rules:
            if re.search(pattern, frame):
                counts[thread][name] += 1
                in_kernel[thread][name] += kernel
                return
    counts[thread]["other"] += 1
    in_kernel[thread]["other"] += kernel
for line in sys.stdin:
    if not line.strip():
        done(); thread, stack = None, []
    elif line[0] in " \t":
        stack.append(line.strip())
    else:
        thread = line.split()[0] if line.split() else None
done()
for thread, c in counts.items():
    total = sum(c.values())
    print(f"\n{thread}: {total} samples")
    print(f"  share   in kernel  activity")
    for name, n in c.most_common():
        print(f"  {100 * n / total:5.1f} %  {100 * in_kernel[thread][name] / n:5.0f} %    {name}")
'

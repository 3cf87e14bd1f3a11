#!/usr/bin/env bash
# Disk per delivered message on the embedded store. A fresh `herald serve` takes N
# messages with P bytes of padding from hookbench and delivers each to one endpoint;
# once every delivery has arrived the server stops, the WAL is checkpointed into the
# file, and SQLite's dbstat gives the bytes of every table and index, divided by the
# number of messages. The attempt log is included (one successful attempt per message).
#   scripts/bench-disk.sh [messages] [payload bytes]     (default: 100000 256)
# Set bin=path/to/herald to measure another build (say the commit before). With
# HERALD_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres the server runs
# on a fresh PostgreSQL database made beside that one, and the sizes are
# pg_total_relation_size of each table and of each index, after a VACUUM.
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-100000}
padding=${2:-256}
[ -n "${bin:-}" ] || cargo build --release -q -p herald --bins
admin_url=${HERALD_BENCH_DATABASE_URL:-}
if [ -n "$admin_url" ]; then
    db="herald_disk_$$"
    psql "$admin_url" -qc "CREATE DATABASE $db"
    export HERALD_DATABASE_URL="${admin_url%/*}/$db"
fi
. scripts/serve-one.sh
start_herald disk 18077
target/hookbench/release/hookbench --api "http://127.0.0.1:$port" --token "$token" \
    --messages "$messages" --concurrency 64 --payload-bytes "$padding" | tail -1 >"$dir/result"
kill $server && wait $server 2>/dev/null || true
if [ -n "$admin_url" ]; then
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(f"hookbench lost messages: {r}" if r.get("lost", 1) else 0)' "$dir/result"
    psql "$HERALD_DATABASE_URL" -qc "VACUUM ANALYZE"
    psql "$HERALD_DATABASE_URL" -qAt -F ' ' -c "
        WITH n AS (SELECT count(*)::numeric AS n FROM message),
        sizes AS (SELECT c.relname AS name, pg_total_relation_size(c.oid) - CASE WHEN c.relkind = 'r'
                    THEN pg_indexes_size(c.oid) ELSE 0 END AS bytes
                  FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                  WHERE s.nspname = 'public' AND c.relkind IN ('r', 'i'))
        SELECT 'total', (SELECT n FROM n), round(sum(bytes) / (SELECT n FROM n), 1) FROM sizes
        UNION ALL (SELECT name, NULL, round(bytes / (SELECT n FROM n), 1) FROM sizes
                   WHERE bytes / (SELECT n FROM n) >= 0.5 ORDER BY bytes DESC)" |
        awk -v p="$padding" 'NR == 1 { printf "%s messages on PostgreSQL, %s bytes of padding: %s bytes/message, tables (with TOAST) and indexes (target 2 x %s + 300 = %d)\n", $2, p, $3, p, 2 * p + 300; next }
             { printf "%-36s %14s\n", $1, $NF }'
    psql "$admin_url" -qc "DROP DATABASE $db"
    exit 0
fi
python3 - "$dir/data/herald.db" "$dir/result" "$padding" <<'PY'
import json, os, sqlite3, sys
db, result, padding = sys.argv[1], json.loads(open(sys.argv[2]).read()), int(sys.argv[3])
if result.get("lost", 1) != 0:
    sys.exit(f"hookbench lost messages: {result}")
con = sqlite3.connect(db)
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
n = con.execute("SELECT count(*) FROM message").fetchone()[0]
payload = con.execute("SELECT avg(length(payload)) FROM message_payload").fetchone()[0]
rows = con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
used = sum(size for _, size in rows)
print(f"{n:,} messages, {padding} bytes of padding ({payload:.0f}-byte JSON payloads); "
      f"file {os.path.getsize(db) / n:,.1f} bytes/message, tables and indexes {used / n:,.1f} "
      f"(target 2 x {padding} + 300 = {2 * padding + 300})")
print(f"{'table or index':<36} {'bytes/message':>14}")
for name, size in rows:
    if size / n >= 0.5:
        print(f"{name:<36} {size / n:>14.1f}")
print(json.dumps({"messages": n, "padding": padding, "payload_json": round(payload),
                  "bytes_per_message": round(used / n, 1),
                  "file_bytes_per_message": round(os.path.getsize(db) / n, 1)}))
PY

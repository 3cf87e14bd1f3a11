#!/usr/bin/env bash
# Makes the SQLite upgrade fixture (crates/herald-store/tests/fixtures/store-v10.sql):
# a store written by a real `herald serve` of schema version 10, dumped as SQL. It holds
# messages delivered, failed and retrying, scheduled, expunged, with event ids and
# channels, over two applications and three endpoints.
# crates/herald-store/tests/upgrade.rs opens it with today's store and checks that every
# message, payload, delivery and attempt is still there.
#   scripts/make-upgrade-fixture.sh path/to/herald-of-version-10 [out.sql]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1
out=${2:-crates/herald-store/tests/fixtures/store-v10.sql}
. scripts/serve-one.sh
start_herald fixture 18076
api="http://127.0.0.1:$port/api/v1"
call() { curl -sf -X "$1" "$api$2" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+-d "$3"}; }

# A receiver that answers 200 on /ok and 500 on /fail.
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200 if self.path == "/ok" else 500); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18075), H).serve_forever()' &
receiver=$!
trap 'kill $receiver $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT

call POST /app/ '{"name":"Shop","uid":"shop"}' >/dev/null
call POST /app/ '{"name":"Blog","uid":"blog"}' >/dev/null
call POST /app/shop/endpoint/ '{"url":"http://127.0.0.1:18075/ok","uid":"ok"}' >/dev/null
call POST /app/shop/endpoint/ '{"url":"http://127.0.0.1:18075/fail","uid":"fail","channels":["eu"]}' >/dev/null
call POST /app/blog/endpoint/ '{"url":"http://127.0.0.1:18075/ok","uid":"ordered"}' >/dev/null
for i in $(seq 1 40); do
    call POST /app/shop/msg/ "{\"eventType\":\"order.created\",\"eventId\":\"evt-$i\",\"channels\":[\"$([ $((i % 3)) = 0 ] && echo eu || echo us)\"],\"payload\":{\"order\":$i,\"note\":\"n$i\"}}" >/dev/null
done
for i in $(seq 1 20); do
    call POST /app/blog/msg/ "{\"eventType\":\"post.published\",\"payload\":{\"post\":$i}}" >/dev/null
done
# One scheduled far ahead (pending), one expunged.
call POST /app/blog/msg/ "{\"eventType\":\"post.scheduled\",\"payload\":{\"later\":true},\"deliverAt\":\"$(date -u -d '+60 days' +%Y-%m-%dT%H:%M:%SZ)\"}" >/dev/null
gone=$(call POST /app/blog/msg/ '{"eventType":"post.deleted","payload":{"secret":"x"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 3
call DELETE "/app/blog/msg/$gone/content/" >/dev/null || true
kill $server && wait $server 2>/dev/null || true
python3 - "$dir/data/herald.db" "$out" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
version = con.execute("PRAGMA user_version").fetchone()[0]
with open(sys.argv[2], "w") as f:
    f.write(f"-- A store of schema version {version} made by scripts/make-upgrade-fixture.sh.\n")
    for line in con.iterdump():
        f.write(line + "\n")
    f.write(f"PRAGMA user_version = {version};\n")
print(f"wrote {sys.argv[2]} (schema version {version}):",
      {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("message", "message_payload", "delivery", "attempt")})
PY

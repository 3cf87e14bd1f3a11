//! Fills an embedded store with delivered messages, fast, for the "flat as it grows"
//! benchmark (`scripts/bench-grown.sh`, BENCHMARKS.md). The store must already hold
//! some delivered messages written by a real `herald serve` (a short hookbench run):
//! those are the templates. Each new message copies one template's rows (the message,
//! its payload, its succeeded delivery and its attempt) with new keys, new ids and
//! earlier times, spread evenly over the last DAYS days; the templates are deleted at
//! the end, so every message in the store is in the order the server itself keeps
//! (ids and `seq` rise together). It writes the tables directly, in transactions of
//! 100,000 messages without fsync, so it is only for a store no server has open.
//!
//!   cargo build --release -p herald-store --example fill_store
//!   target/release/examples/fill_store DATA_DIR/herald.db 10000000 30

use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension};

/// The schema version these statements write (`sqlite/schema.sql`).
const SCHEMA_VERSION: i64 = 11;
const PER_TRANSACTION: u64 = 100_000;

/// One delivered message as the server wrote it.
struct Template {
    seq: i64,
    app_id: String,
    event_type: String,
    channels: Option<String>,
    payload_ttl_ms: i64,
    payload: String,
    headers: Option<String>,
    ep: i64,
    delivery_attempts: i64,
    delivery_trigger: i64,
    url: String,
    attempt_status: i64,
    response_status_code: i64,
    response: String,
    response_duration_ms: i64,
    attempt_trigger: i64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fill_store HERALD_DB MESSAGES [DAYS]";
    let path = args.next().expect(usage);
    let count: u64 = args.next().expect(usage).parse().expect(usage);
    let days: f64 = args.next().map_or(30.0, |d| d.parse().expect(usage));

    let mut c = Connection::open(&path).expect("open the database");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    if version != SCHEMA_VERSION {
        eprintln!("{path} has schema version {version}; this tool writes version {SCHEMA_VERSION}. Open it with this build's `herald serve` first.");
        std::process::exit(1);
    }
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF; \
         PRAGMA cache_size = -262144;",
    )
    .unwrap();

    let templates = load_templates(&c);
    if templates.is_empty() {
        eprintln!("{path} holds no delivered message to copy: run hookbench against it first");
        std::process::exit(1);
    }
    let last_template = templates.iter().map(|t| t.seq).max().unwrap();
    let first_seq: i64 = c
        .query_row("SELECT coalesce(max(seq), 0) + 1 FROM message", [], |r| {
            r.get(0)
        })
        .unwrap();

    // Times: evenly spread from DAYS ago to an hour ago, at least 2 ms apart so that a
    // message's attempt (a millisecond after it) sorts before the next message's.
    let now = herald_core::time::now_ms();
    let end = now - 3_600_000;
    let start = end - (days * 86_400_000.0) as i64;
    let step = ((end - start) / count.max(1) as i64).max(2);

    let started = Instant::now();
    let mut done = 0u64;
    while done < count {
        let n = PER_TRANSACTION.min(count - done);
        let tx = c.transaction().unwrap();
        {
            let mut message = tx
                .prepare(
                    "INSERT INTO message (seq, id, app_id, event_type, channels, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .unwrap();
            let mut payload = tx
                .prepare(
                    "INSERT INTO message_payload (msg_seq, payload, headers) VALUES (?1, ?2, ?3)",
                )
                .unwrap();
            let mut delivery = tx
                .prepare(
                    "INSERT INTO delivery (msg_seq, ep, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
                     VALUES (?1, ?2, 0, ?3, NULL, 0, ?4, ?5, ?6)",
                )
                .unwrap();
            let mut attempt = tx
                .prepare(
                    "INSERT INTO attempt (msg_seq, id, ep, url, status, response_status_code, response, response_duration_ms, trigger_type, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .unwrap();
            for i in done..done + n {
                let t = &templates[(i % templates.len() as u64) as usize];
                let seq = first_seq + i as i64;
                let created = start + i as i64 * step;
                let attempted = created + 1;
                message
                    .execute(params![
                        seq,
                        herald_core::ids::generate_at(herald_core::ids::MESSAGE, created as u64),
                        t.app_id,
                        t.event_type,
                        t.channels,
                        created,
                        created + t.payload_ttl_ms,
                    ])
                    .unwrap();
                payload.execute(params![seq, t.payload, t.headers]).unwrap();
                delivery
                    .execute(params![
                        seq,
                        t.ep,
                        t.delivery_attempts,
                        t.delivery_trigger,
                        created,
                        attempted
                    ])
                    .unwrap();
                attempt
                    .execute(params![
                        seq,
                        herald_core::ids::generate_at(herald_core::ids::ATTEMPT, attempted as u64),
                        t.ep,
                        t.url,
                        t.attempt_status,
                        t.response_status_code,
                        t.response,
                        t.response_duration_ms,
                        t.attempt_trigger,
                        attempted,
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        done += n;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{done} of {count} messages ({:.0}/s)",
            done as f64 / secs.max(0.001)
        );
    }

    // The templates were written after the copies' times: drop them, so that ids and
    // seqs rise together through the whole store (their deliveries and attempts go
    // with them, by the foreign keys' cascade).
    c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let deleted = c
        .execute("DELETE FROM message WHERE seq <= ?1", [last_template])
        .unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    println!(
        "{}",
        serde_json::json!({
            "filled": count,
            "templates_removed": deleted,
            "oldest_ms": start,
            "newest_ms": start + (count.max(1) as i64 - 1) * step,
            "secs": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    );
}

fn load_templates(c: &Connection) -> Vec<Template> {
    let mut stmt = c
        .prepare(
            "SELECT m.seq, m.app_id, m.event_type, m.channels, m.expires_at - m.created_at, \
                    p.payload, p.headers, d.ep, d.attempts, d.trigger_type, \
                    a.url, a.status, a.response_status_code, a.response, a.response_duration_ms, a.trigger_type \
             FROM message m \
             JOIN message_payload p ON p.msg_seq = m.seq \
             JOIN delivery d ON d.msg_seq = m.seq AND d.status = 0 \
             JOIN attempt a ON a.msg_seq = m.seq AND a.ep = d.ep AND a.status = 0 \
             ORDER BY m.seq LIMIT 1000",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(Template {
                seq: r.get(0)?,
                app_id: r.get(1)?,
                event_type: r.get(2)?,
                channels: r.get(3)?,
                payload_ttl_ms: r.get(4)?,
                payload: r.get(5)?,
                headers: r.get(6)?,
                ep: r.get(7)?,
                delivery_attempts: r.get(8)?,
                delivery_trigger: r.get(9)?,
                url: r.get(10)?,
                attempt_status: r.get(11)?,
                response_status_code: r.get(12)?,
                response: r.get(13)?,
                response_duration_ms: r.get(14)?,
                attempt_trigger: r.get(15)?,
            })
        })
        .unwrap();
    let templates: Vec<Template> = rows.map(|r| r.unwrap()).collect();
    // A message with more than one delivery would be copied with only one.
    let more: Option<i64> = c
        .query_row(
            "SELECT msg_seq FROM delivery GROUP BY msg_seq HAVING count(*) > 1 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .unwrap();
    if more.is_some() {
        eprintln!("the templates must have one endpoint each (run hookbench with --endpoints 1)");
        std::process::exit(1);
    }
    templates
}
